"""Following a Sentinel-watched master: where it is, and how many replicas a write must
reach so that whichever replica Sentinel promotes next has it.

Every Sentinel is asked; the answer with the highest config epoch wins, so a Sentinel that
has not heard of a failover yet cannot send the store back to the demoted master (whose
stale data would read as signed in whoever signed out since).

The replica count is the point. ``WAIT 1`` with two replicas is not enough: when Sentinel
promotes one, the old master goes on accepting writes for about a second and the *other*
replica acknowledges them, until it too is moved to the new master, which never had them
(measured: 210 of 2,670 acknowledged sign-ins lost, 72 of 100 sign-outs undone). So a
write waits for every replica that Sentinel could promote: those it sees up, in sync with
their master and with a non-zero priority. While the old master has lost its promoted
replica, that count cannot be reached there and its writes fail. A replica that dies
stops counting once Sentinel marks it down (``down-after-milliseconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.session.backoff import Backoff

log = logging.getLogger("gateway.session.redis")

WATCH_INTERVAL = 0.5
"""Seconds between asking the Sentinels where the master is (a failover is followed
within this long of Sentinel announcing it)."""


@dataclass(frozen=True, slots=True)
class Survey:
    """What one Sentinel says about the master."""

    address: tuple[str, int]
    epoch: int
    replicas: int
    """Replicas Sentinel could promote: up, linked to their master, priority above 0."""


def read_survey(master: Any, replicas: Sequence[Mapping[str, Any]]) -> Survey | None:
    """A Sentinel's answers to SENTINEL MASTER and SENTINEL REPLICAS; None when it does not
    see a master that is up."""
    if (
        not isinstance(master, Mapping)
        or not master.get("is_master")
        or master.get("is_sdown")
        or master.get("is_odown")
    ):
        return None
    promotable = [
        r
        for r in replicas
        if not r.get("is_sdown")
        and not r.get("is_odown")
        and r.get("master-link-status") == "ok"
        and int(r.get("slave-priority", 100)) > 0
    ]
    return Survey(
        (str(master["ip"]), int(master["port"])), int(master["config-epoch"]), len(promotable)
    )


def latest(surveys: list[Survey | None]) -> Survey | None:
    """The survey of the highest config epoch (the most replicas among equals: the safer)."""
    found = [s for s in surveys if s is not None]
    return max(found, key=lambda s: (s.epoch, s.replicas)) if found else None


class SentinelMaster:
    """The master Sentinel names for ``name``, as a plain client to that address.

    Surveyed every WATCH_INTERVAL and after failures; when the address changes a new
    client replaces the old one, which is closed (its in-flight commands fail and are
    retried by the store on the new master, its pub/sub subscribers reconnect).
    """

    def __init__(self, sentinels: list[aioredis.Redis], name: str, options: dict[str, Any]) -> None:
        self._sentinels = sentinels
        self._name = name
        self._options = options
        self._client: Any = None
        self._address: tuple[str, int] | None = None
        self._replicas = 0
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.on_move: list[Callable[[], None]] = []
        """Called (no arguments) whenever the master moved."""

    async def client(self) -> Any:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="redis-sentinel-watch")
        if self._client is None:
            await self._locate()
        return self._client

    def is_current(self, client: Any) -> bool:
        return client is self._client

    def replicas(self) -> int:
        return self._replicas

    async def moved(self, failed_on: Any) -> bool:
        if failed_on is not self._client:
            return True  # another call already followed the master
        try:
            await self._locate()
        except (RedisError, OSError, TimeoutError):
            return False
        return failed_on is not self._client

    async def _ask(self, sentinel: aioredis.Redis) -> Survey | None:
        try:
            master = await sentinel.sentinel_master(self._name)
            replicas = await sentinel.sentinel_slaves(self._name)
        except (RedisError, OSError, TimeoutError, KeyError, ValueError):
            return None
        return read_survey(master, replicas)

    async def _locate(self) -> None:
        async with self._lock:
            survey = latest(list(await asyncio.gather(*map(self._ask, self._sentinels))))
            if survey is None:
                raise ConnectionError(f"no Sentinel names a master {self._name} that is up")
            self._replicas = survey.replicas
            if survey.address == self._address:
                return
            old, old_address = self._client, self._address
            self._client = aioredis.Redis(
                host=survey.address[0], port=survey.address[1], **self._options
            )
            self._address = survey.address
        if old is not None:
            log.warning(
                "redis master %s moved from %s:%s to %s:%s (Sentinel failover)",
                self._name,
                *(old_address or ("?", "?")),
                *survey.address,
            )
            with contextlib.suppress(RedisError, OSError):
                await old.aclose()
            for callback in self.on_move:
                callback()

    async def _watch(self) -> None:
        backoff = Backoff(WATCH_INTERVAL, 5.0)
        delay, failing = WATCH_INTERVAL, False
        while True:
            await asyncio.sleep(delay)
            try:
                await self._locate()
            except (RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("cannot locate redis master %s (%s)", self._name, exc)
                failing, delay = True, backoff.delay()
                continue
            if failing:
                log.warning("Sentinels answer again for redis master %s", self._name)
            failing, delay = False, WATCH_INTERVAL
            backoff.reset()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for client in [self._client, *self._sentinels]:
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
