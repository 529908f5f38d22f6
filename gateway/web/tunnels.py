"""Open websocket tunnels, each tied to the session (or bearer token) that opened it.

Only the upgrade passes the pipeline; after it, a tunnel could outlive the access that
let it in. So every tunnel is re-judged, with the same code as a request, when:

- its session changes anywhere (logout, ``sessions revoke``, a revalidation, a touch):
  the invalidation channel that keeps warm caches honest also reaches this registry,
  on every replica, and local changes are reported directly;
- its session reaches a moment that can change the answer: the idle or absolute
  expiry, the revalidation that re-reads orgs and roles; a token tunnel when the token
  check's cache would expire;
- every second while the invalidation channel is down (polling replaces pushing);
- at least once a minute, when client frames since the last check count as activity
  (the session's last-seen is written, as a request would): an open tab in use keeps
  its session, an idle one reaches idle_timeout.

A tunnel whose check says no is ended with 1008 (policy violation) and the reason; one
whose check cannot be made (store or provider down) with 1011: any doubt ends it. When
the gateway stops, tunnels end with 1001 (going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from gateway.metrics import OPEN_WEBSOCKETS

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
"""Seconds between passes over the tunnels that are due (and the polling interval)."""
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
GOING_AWAY = 1001
UNNAMED_ROUTE = "unknown"


class Tunnel:
    """One relayed websocket: its pump tasks, its client activity, how it ended."""

    def __init__(self) -> None:
        self._tasks: tuple[asyncio.Task[None], ...] = ()
        self.ending: tuple[int, str] | None = None
        self.client_frames = 0
        """Data frames the client sent: activity that keeps the session alive."""

    def attach(self, *tasks: asyncio.Task[None]) -> None:
        self._tasks = tasks
        if self.ending is not None:
            self._stop()

    def client_frame(self) -> None:
        self.client_frames += 1

    def end(self, code: int, reason: str) -> None:
        """Close both sides with ``code`` and ``reason`` (the relay does the closing)."""
        if self.ending is None:
            self.ending = (code, reason)
            self._stop()

    def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's answer: why the tunnel must end (None: it may stay), and when to ask again
    (a ``loop.time()`` instant), and the close code to use."""

    reason: str | None
    next_check: float
    code: int = POLICY_VIOLATION


@dataclass(eq=False)
class Binding:
    """What a tunnel was let in with: the credential's cache key and what to re-check."""

    key: str
    """Session store key, or the bearer token's hash."""
    check: Callable[[Binding], Awaitable[Verdict]]
    tunnel: Tunnel
    next_check: float = 0.0
    checking: bool = False
    frames_seen: int = 0
    """``tunnel.client_frames`` at the last check: more since means the user is active."""
    route: str = UNNAMED_ROUTE
    """The route's name, for the open-websockets gauge."""

    def active_since_last_check(self) -> bool:
        active = self.tunnel.client_frames != self.frames_seen
        self.frames_seen = self.tunnel.client_frames
        return active


class TunnelRegistry:
    def __init__(self) -> None:
        self._by_key: dict[str, set[Binding]] = {}
        self._polling = True
        """True while no invalidation channel is known to be listening."""
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._gauges: dict[str, Gauge] = {}

    def __len__(self) -> int:
        return sum(len(bindings) for bindings in self._by_key.values())

    def add(self, binding: Binding) -> Callable[[], None]:
        """Track a tunnel; returns the function that forgets it (once; again does nothing)."""
        self._by_key.setdefault(binding.key, set()).add(binding)
        gauge = self._gauge(binding.route)
        gauge.inc()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

        def forget() -> None:
            bindings = self._by_key.get(binding.key)
            if bindings is not None and binding in bindings:
                bindings.remove(binding)
                gauge.dec()
                if not bindings:
                    del self._by_key[binding.key]

        return forget

    def invalidated(self, key: str) -> None:
        """A session changed somewhere: re-judge its tunnels now."""
        for binding in self._by_key.get(key, ()):
            self._check_soon(binding)

    def channel_state(self, listening: bool) -> None:
        """While the invalidation channel is down, every tunnel is checked every second."""
        self._polling = not listening
        if not listening:
            for bindings in self._by_key.values():
                for binding in bindings:
                    self._check_soon(binding)

    def listening_locally(self) -> None:
        """A single-process store reports every change directly: no polling needed."""
        self._polling = False

    def end_all(self, code: int, reason: str) -> None:
        for bindings in self._by_key.values():
            for binding in bindings:
                binding.tunnel.end(code, reason)

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._checks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ internals

    def _gauge(self, route: str) -> Gauge:
        gauge = self._gauges.get(route)
        if gauge is None:
            gauge = self._gauges[route] = OPEN_WEBSOCKETS.labels(route)
        return gauge

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            now = loop.time()
            for bindings in list(self._by_key.values()):
                for binding in list(bindings):
                    if self._polling or now >= binding.next_check:
                        self._check_soon(binding)

    def _check_soon(self, binding: Binding) -> None:
        if binding.checking or binding.tunnel.ending is not None:
            return
        binding.checking = True
        task = asyncio.get_running_loop().create_task(self._check(binding))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, binding: Binding) -> None:
        try:
            verdict = await binding.check(binding)
        except Exception:  # the check itself failed: fail closed
            log.exception("websocket access check failed")
            verdict = Verdict("access could not be checked", 0.0, INTERNAL_ERROR)
        finally:
            binding.checking = False
        if verdict.reason is not None:
            log.info("ending websocket tunnel: %s", verdict.reason)
            binding.tunnel.end(verdict.code, verdict.reason)
        else:
            binding.next_check = verdict.next_check
