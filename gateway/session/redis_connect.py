"""How the Redis store reaches Redis: one client for a standalone server or a Cluster, and
for Sentinel a client that follows the master through failovers (redis_sentinel.py).

redis-py's own retries are off for standalone and Sentinel: the store repeats only the
commands that may be repeated, on a client that may have moved meanwhile. redis-py's
Sentinel pool is not used either: it keeps handing out pooled connections to a demoted
master, which go on reading its stale data (and, without a WAIT check, accepting writes
that its resync discards) for the ~10 s until Sentinel reconfigures it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from gateway.config import SessionConfig
from gateway.session.redis_sentinel import SentinelMaster

log = logging.getLogger("gateway.session.redis")

SOCKET_TIMEOUT = 2.0
"""Seconds before a silent Redis counts as down (the request then gets a 503); a write
that waits for replicas gets its WAIT timeout on top."""
SENTINEL_TIMEOUT = 1.0
"""Seconds a Sentinel gets to say where the master is before the next one is asked."""


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

    def replicas(self) -> int:
        """Replicas that could become master, as far as the link knows (0: unknown)."""
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

    def replicas(self) -> int:
        return 0

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()


class ClusterLink(FixedLink):
    """A Cluster client, initialized (slot map read) before its first use: its pub/sub
    needs the slot map but, unlike its commands, does not read it itself."""

    async def client(self) -> Any:
        await self._client.initialize()
        return self._client


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
        sentinels = [
            aioredis.Redis(
                host=host,
                port=port,
                password=password,
                socket_timeout=SENTINEL_TIMEOUT,
                socket_connect_timeout=SENTINEL_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            for host, port in nodes
        ]
        master_options = {**options, "password": password, "retry": Retry(NoBackoff(), 0)}
        return SentinelMaster(sentinels, sentinel_cfg.master, master_options)
    assert config.redis_url is not None  # guaranteed by config validation
    url = config.redis_url.get_secret_value()
    if config.redis_cluster:
        # The cluster client retries itself: it must re-read the slot map after a node
        # fails over, which only it knows how to do.
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3)
        return ClusterLink(RedisCluster.from_url(url, retry=retry, **options))
    no_retry = Retry(NoBackoff(), 0)
    return FixedLink(aioredis.Redis.from_url(url, retry=no_retry, **options))
