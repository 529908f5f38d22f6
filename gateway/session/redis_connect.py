"""How the Redis store reaches Redis: one client for a standalone server or a Cluster, and
for Sentinel a client that follows the master through failovers.

redis-py's own retries are off for standalone and Sentinel: the store repeats only the
commands that may be repeated, on a client that may have moved meanwhile. redis-py's
Sentinel pool is not used either: it keeps handing out pooled connections to a demoted
master, which go on reading its stale data (and, without a WAIT check, accepting writes
that its resync discards) for the ~10 s until Sentinel reconfigures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from gateway.config import SessionConfig
from gateway.session.backoff import Backoff

log = logging.getLogger("gateway.session.redis")

SOCKET_TIMEOUT = 2.0
"""Seconds before a silent Redis counts as down (the request then gets a 503); a write
that waits for replicas gets its WAIT timeout on top."""
SENTINEL_TIMEOUT = 1.0
"""Seconds a Sentinel gets to say where the master is before the next one is asked."""
WATCH_INTERVAL = 0.5
"""Seconds between asking the Sentinels where the master is (a failover is followed
within this long of Sentinel announcing it)."""


class RedisLink(Protocol):
    """Where the store's commands go."""

    async def client(self) -> Any:
        """The client to use now (``redis.asyncio.Redis`` or ``RedisCluster``)."""
        ...

    def is_current(self, client: Any) -> bool:
        """Whether ``client`` is still the one to use (False once the master moved)."""
        ...

    async def moved(self, failed_on: Any) -> bool:
        """After a failure on ``failed_on``: whether the master is elsewhere now (the
        next ``client()`` then talks to it)."""
        ...

    async def close(self) -> None: ...


class FixedLink:
    """One client for the store's whole life: standalone Redis or a Cluster (whose client
    follows slot moves and failovers itself)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def client(self) -> Any:
        return self._client

    def is_current(self, client: Any) -> bool:
        return client is self._client

    async def moved(self, failed_on: Any) -> bool:
        del failed_on
        return False

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()


class ClusterLink(FixedLink):
    """A Cluster client, initialized (slot map read) before its first use: its pub/sub
    needs the slot map but, unlike its commands, does not read it itself."""

    async def client(self) -> Any:
        await self._client.initialize()
        return self._client


class SentinelMaster:
    """The master Sentinel names for ``name``, as a plain client to that address.

    Asked again every WATCH_INTERVAL and after every failure; when the address changes, a
    new client replaces the old one, which is closed (its in-flight commands fail and are
    retried by the store on the new master, its pub/sub subscribers reconnect).
    """

    def __init__(self, sentinel: Sentinel, name: str, options: dict[str, Any]) -> None:
        self._sentinel = sentinel
        self._name = name
        self._options = options
        self._client: Any = None
        self._address: tuple[str, int] | None = None
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

    async def moved(self, failed_on: Any) -> bool:
        if failed_on is not self._client:
            return True  # someone else already followed the master
        try:
            await self._locate()
        except (RedisError, OSError, TimeoutError):
            return False
        return failed_on is not self._client

    async def _locate(self) -> None:
        async with self._lock:
            host, port = await self._sentinel.discover_master(self._name)
            address = (str(host), int(port))
            if address == self._address:
                return
            old, old_address = self._client, self._address
            self._client = aioredis.Redis(host=address[0], port=address[1], **self._options)
            self._address = address
        if old is not None:
            log.warning(
                "redis master %s moved from %s:%s to %s:%s (Sentinel failover)",
                self._name,
                *(old_address or ("?", "?")),
                *address,
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
                    log.warning("no Sentinel says where master %s is (%s)", self._name, exc)
                failing, delay = True, backoff.delay()
                continue
            if failing:
                log.info("Sentinels answer again for master %s", self._name)
            failing, delay = False, WATCH_INTERVAL
            backoff.reset()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for client in [self._client, *self._sentinel.sentinels]:
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()


def connect(config: SessionConfig) -> RedisLink:
    """The link the configuration describes (validated: exactly one way to reach Redis)."""
    socket_timeout = SOCKET_TIMEOUT + config.redis_wait_timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "health_check_interval": 30,
    }
    if config.redis_sentinel is not None:
        sentinel_cfg = config.redis_sentinel
        nodes = [(h, int(p)) for h, _, p in (n.rpartition(":") for n in sentinel_cfg.nodes)]
        password = sentinel_cfg.password.get_secret_value() if sentinel_cfg.password else None
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            nodes,
            sentinel_kwargs={
                "password": password,
                "socket_timeout": SENTINEL_TIMEOUT,
                "socket_connect_timeout": SENTINEL_TIMEOUT,
                "retry": Retry(NoBackoff(), 0),
            },
        )
        master_options = {**options, "password": password, "retry": Retry(NoBackoff(), 0)}
        return SentinelMaster(sentinel, sentinel_cfg.master, master_options)
    assert config.redis_url is not None  # guaranteed by config validation
    url = config.redis_url.get_secret_value()
    if config.redis_cluster:
        # The cluster client retries itself: it must re-read the slot map after a node
        # fails over, which only it knows how to do.
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3)
        return ClusterLink(RedisCluster.from_url(url, retry=retry, **options))
    no_retry = Retry(NoBackoff(), 0)
    return FixedLink(aioredis.Redis.from_url(url, retry=no_retry, **options))
