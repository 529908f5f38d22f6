"""Connection pools to upstreams: one per route, bounded, with a bounded wait.

Each route has its own pool, so one route's slow or stuck upstream can never take the
connections another route needs, even when both name the same host:port, and no
connection ever carries two routes' traffic. A pool holds at most ``max_connections``
(busy + idle); a request that finds none free waits at most ``pool_timeout`` and then
gets ``PoolExhausted`` (503 with Retry-After), never an unbounded hang. Websocket
tunnels are not drawn from these pools at all.

Idle connections are reused last-in first-out (the most recently used is the least
likely to have been closed by the upstream), only while younger than
``keepalive_timeout`` and only when nothing is waiting on their socket. One sweeper
task per client closes idle connections that outlived their keep-alive and fails
exchanges whose upstream stayed silent past the route's ``read_timeout``: no timer is
armed per request or per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.config import RouteConfig
from gateway.web.upstream_connection import UpstreamConnection, UpstreamFailure

SWEEP_INTERVAL = 0.25
"""Seconds between sweeps: the resolution of keep-alive and read timeouts."""


class PoolExhausted(UpstreamFailure):
    """No connection to the upstream became free within the route's pool_timeout."""

    status = 503


class ConnectFailed(UpstreamFailure):
    """The upstream refused or did not accept a connection (timeout: 504)."""


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """Where a route's upstream is, parsed once."""

    host: str
    port: int
    unix_path: str | None
    tls: bool
    base_path: str
    """The upstream URL's own path prefix ("" when none), put before every forwarded path."""
    authority: str
    """The Host header when the client's is not preserved."""

    @classmethod
    def parse(cls, upstream: str) -> UpstreamAddress:
        if upstream.startswith("unix:"):
            return cls("localhost", 0, upstream[len("unix:") :], False, "", "localhost")
        parts = urlsplit(upstream)
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        default = port == (443 if tls else 80)
        authority = shown if default else f"{shown}:{port}"
        return cls(host, port, None, tls, parts.path.rstrip("/"), authority)


class RoutePool:
    def __init__(self, route: RouteConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.route_name = route.name
        self.address = UpstreamAddress.parse(route.upstream)
        self.limit = route.max_connections
        self.wait = float(route.pool_timeout)
        self.keepalive = float(route.keepalive_timeout)
        self.connect_timeout = float(route.connect_timeout) or None
        self.read_timeout = float(route.read_timeout)
        self._loop = loop
        self._ssl = ssl.create_default_context() if self.address.tls else None
        self._idle: list[UpstreamConnection] = []
        self.busy: set[UpstreamConnection] = set()
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.total = 0
        """Connections this pool holds or is opening (busy + idle + connecting)."""

    async def acquire(self) -> UpstreamConnection:
        """A connection to carry one exchange; PoolExhausted / ConnectFailed otherwise."""
        connection = self._reuse()
        if connection is None:
            if self.total < self.limit:
                self.total += 1
                connection = await self._open_slot()
            else:
                connection = await self._wait_for_one()
        self.busy.add(connection)
        return connection

    def release(self, connection: UpstreamConnection, reusable: bool) -> None:
        """Give a connection back after its exchange (closed unless ``reusable``)."""
        self.busy.discard(connection)
        if reusable and self.keepalive > 0 and not connection.closed:
            connection.idle_since = self._loop.time()
            if self._hand_over(connection):
                return
            self._idle.append(connection)
            return
        connection.close()
        if not self._hand_over(None):  # a waiter takes over the slot, or it is freed
            self.total -= 1

    def sweep(self, now: float) -> None:
        """Close idle connections past keep-alive; time out silent exchanges."""
        if self._idle:
            stale = [c for c in self._idle if now - c.idle_since >= self.keepalive]
            for connection in stale:
                self._idle.remove(connection)
                connection.close()
                if not self._hand_over(None):
                    self.total -= 1
        if self.read_timeout > 0:
            for connection in list(self.busy):
                connection.check_stall(now, self.read_timeout)

    def close(self) -> None:
        for connection in [*self._idle, *self.busy]:
            connection.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    # ------------------------------------------------------------------ internals

    def _reuse(self) -> UpstreamConnection | None:
        now = self._loop.time()
        while self._idle:
            connection = self._idle.pop()
            if (
                connection.closed
                or now - connection.idle_since >= self.keepalive
                or connection.has_pending_bytes()
            ):
                self.total -= 1
                connection.close()
                continue
            return connection
        return None

    def _forget(self, connection: UpstreamConnection) -> None:
        """The upstream closed a connection: an idle one leaves the pool at once."""
        if connection in self._idle:
            self._idle.remove(connection)
            if not self._hand_over(None):
                self.total -= 1

    def _hand_over(self, connection: UpstreamConnection | None) -> bool:
        """Give a connection (or, with None, a free slot) to the oldest live waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    async def _wait_for_one(self) -> UpstreamConnection:
        waiter: asyncio.Future[UpstreamConnection | None] = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait):
                handed = await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                # Handed over in the same instant the wait ran out: pass it on.
                self._give_back(waiter.result())
            raise PoolExhausted(
                f"all {self.limit} connections to the upstream stayed busy for {self.wait:g}s"
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if handed is not None:
            return handed
        return await self._open_slot()

    def _give_back(self, handed: UpstreamConnection | None) -> None:
        if handed is not None:
            self.release(handed, reusable=True)
        elif not self._hand_over(None):
            self.total -= 1

    async def _open_slot(self) -> UpstreamConnection:
        """Connect in a slot already counted in ``total``; the slot is freed on failure."""
        try:
            return await self._connect()
        except BaseException:
            if not self._hand_over(None):
                self.total -= 1
            raise

    async def _connect(self) -> UpstreamConnection:
        loop = self._loop
        address = self.address

        def protocol() -> UpstreamConnection:
            return UpstreamConnection(loop, self._forget)

        try:
            async with asyncio.timeout(self.connect_timeout):
                if address.unix_path is not None:
                    _, connection = await loop.create_unix_connection(protocol, address.unix_path)
                else:
                    _, connection = await loop.create_connection(
                        protocol,
                        address.host,
                        address.port,
                        ssl=self._ssl,
                        server_hostname=address.host if self._ssl else None,
                    )
        except TimeoutError:
            failure = ConnectFailed("the upstream did not accept a connection in time")
            failure.status = 504
            raise failure from None
        except OSError as exc:
            raise ConnectFailed(f"the upstream is unreachable ({type(exc).__name__})") from exc
        return connection


class UpstreamPools:
    """Every route's pool, and the one sweeper that keeps their timeouts."""

    def __init__(self, routes: tuple[RouteConfig, ...] | list[RouteConfig]) -> None:
        self._routes = {route.name: route for route in routes}
        self._pools: dict[str, RoutePool] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def pool(self, route: RouteConfig) -> RoutePool:
        pool = self._pools.get(route.name)
        if pool is None:
            pool = RoutePool(route, asyncio.get_running_loop())
            self._pools[route.name] = pool
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return pool

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = loop.time()
            for pool in self._pools.values():
                pool.sweep(now)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for pool in self._pools.values():
            pool.close()
