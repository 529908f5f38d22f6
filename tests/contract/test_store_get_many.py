"""SessionStore.get_many: the batched read the warm cache re-checks its entries with."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.errors import StoreError
from gateway.metrics import REGISTRY
from gateway.session.redis import RedisStore
from gateway.session.store import SessionStore
from tests.support.redis_server import RedisServer


async def test_get_many_answers_in_the_order_asked(store: SessionStore) -> None:
    """Each key's value in the order of the keys, None for a key never written; the same
    key twice answers twice; no keys, no values."""
    await store.set("s:a", b"alpha", ttl=30)
    await store.set("s:b", bytes(range(256)), ttl=30)
    got = await store.get_many(["s:b", "s:absent", "s:a", "s:b"])
    assert got == [bytes(range(256)), None, b"alpha", bytes(range(256))]
    assert await store.get_many([]) == []


async def test_get_many_reads_keys_of_every_slot(store: SessionStore) -> None:
    """Two hundred keys (on a Cluster: spread over its three masters' slots) come back
    each with its own value, as get() reads them one by one."""
    keys = [f"s:{n:04d}" for n in range(200)]
    for key in keys[::2]:
        await store.set(key, key.encode() * 3, ttl=30)
    got = await store.get_many(keys)
    assert got == [key.encode() * 3 if n % 2 == 0 else None for n, key in enumerate(keys)]
    assert got == [await store.get(key) for key in keys]


async def test_get_many_sees_deletions_and_expiry(store: SessionStore) -> None:
    """A deleted key and an expired one read as None, a rewritten one as its new value."""
    await store.set("s:gone", b"x", ttl=30)
    await store.set("s:short", b"y", ttl=1)
    await store.set("s:changed", b"old", ttl=30)
    assert await store.get_many(["s:gone", "s:short", "s:changed"]) == [b"x", b"y", b"old"]
    await store.delete("s:gone")
    await store.set("s:changed", b"new", ttl=30)
    await asyncio.sleep(1.2)
    assert await store.get_many(["s:gone", "s:short", "s:changed"]) == [None, None, b"new"]


def _observed(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "hf_gateway_store_duration_seconds_count", {"operation": operation}
    )
    return value or 0.0


async def test_get_many_is_one_command_and_one_operation(redis_server: RedisServer) -> None:
    """Fifty keys on a standalone Redis: one MGET, no GET, and one get_many in the store's
    duration series (the batch is one operation, not fifty reads)."""
    store = RedisStore(aioredis.Redis.from_url(redis_server.url), prefix="many-one:")
    try:
        keys = [f"s:{n}" for n in range(50)]
        for key in keys:
            await store.set(key, b"v", ttl=30)
        async with aioredis.Redis.from_url(redis_server.url) as admin:
            await admin.config_resetstat()
            observed = _observed("get_many"), _observed("get")
            assert await store.get_many(keys) == [b"v"] * 50
            stats = await admin.info("commandstats")
        assert stats["cmdstat_mget"]["calls"] == 1
        assert "cmdstat_get" not in stats
        assert (_observed("get_many"), _observed("get")) == (observed[0] + 1, observed[1])
    finally:
        await store.close()


async def test_get_many_fails_closed_while_redis_is_down() -> None:
    """The twin of the tests above: with Redis stopped the batch raises StoreError (and is
    counted as a failed get_many), it never answers as if the keys were absent."""
    server = RedisServer().start()
    store = RedisStore(aioredis.Redis.from_url(server.url), prefix="many-down:")
    try:
        await store.set("s:1", b"v", ttl=30)
        assert await store.get_many(["s:1"]) == [b"v"]
        server.stop()
        errors = REGISTRY.get_sample_value(
            "hf_gateway_store_errors_total", {"operation": "get_many"}
        )
        with pytest.raises(StoreError):
            await store.get_many(["s:1"])
        assert (
            REGISTRY.get_sample_value("hf_gateway_store_errors_total", {"operation": "get_many"})
            == (errors or 0.0) + 1
        )
    finally:
        await store.close()
        server.cleanup()
