"""Every SessionStore adapter runs the same contract suite: the memory store, and the Redis
store on a real standalone redis-server, a real three-master Redis Cluster and a real
master + replica watched by three Sentinels (writes waiting for the replica)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.config import SessionConfig
from gateway.session.memory import MemoryStore
from gateway.session.redis import RedisStore
from gateway.session.store import SessionStore
from tests.support.redis_server import RedisServer
from tests.support.redis_topology import MASTER_NAME, ClusterTopology, SentinelTopology

SECRET = "contract-test-session-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterTopology]:
    cluster = ClusterTopology().start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelTopology]:
    topology = SentinelTopology().start()
    yield topology
    topology.cleanup()


def _session_config(prefix: str, **redis: Any) -> SessionConfig:
    return SessionConfig.model_validate(
        {"store": "redis", "redis_prefix": prefix, "secret": SECRET, **redis}
    )


async def _redis_store(request: pytest.FixtureRequest, kind: str, prefix: str) -> RedisStore:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisStore(aioredis.Redis.from_url(server.url), prefix=prefix)
    if kind == "redis-cluster":
        cluster: ClusterTopology = request.getfixturevalue("redis_cluster")
        return RedisStore.from_config(
            _session_config(prefix, redis_cluster=True, redis_url=cluster.url)
        )
    topology: SentinelTopology = request.getfixturevalue("redis_sentinel")
    return RedisStore.from_config(
        _session_config(prefix, redis_sentinel={"master": MASTER_NAME, "nodes": topology.nodes})
    )


@pytest.fixture(params=["memory", "redis", "redis-cluster", "redis-sentinel"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    """A fresh store of each kind; the Redis ones under a prefix of their own."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.close()
        return
    redis_store = await _redis_store(request, request.param, f"test-{secrets.token_hex(4)}:")
    yield redis_store
    await redis_store.close()


@pytest.fixture(params=["redis", "redis-cluster", "redis-sentinel"])
async def shared_stores(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two Redis stores of each kind sharing one prefix: two processes of one gateway."""
    prefix = f"test-{secrets.token_hex(4)}:"
    first = await _redis_store(request, request.param, prefix)
    second = await _redis_store(request, request.param, prefix)
    yield first, second
    await first.close()
    await second.close()
