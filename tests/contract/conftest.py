"""Every SessionStore adapter runs the same contract suite."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.session.memory import MemoryStore
from gateway.session.redis import RedisStore
from gateway.session.store import SessionStore
from tests.support.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[SessionStore]:
    """A fresh store of each kind; the Redis one under a prefix of its own."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory
        await memory.close()
        return
    client = aioredis.Redis.from_url(redis_server.url)
    redis_store = RedisStore(client, prefix=f"test-{secrets.token_hex(4)}:")
    yield redis_store
    await redis_store.close()
