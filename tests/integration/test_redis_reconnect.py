"""Reconnecting to Redis with backoff, against real servers that stop and start again: a
standalone redis-server (request path and invalidation listener), a node of a real
Cluster, and a store that waits for the min-replicas-to-write refusal of its master."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from gateway.config import SessionConfig
from gateway.errors import StoreError
from gateway.session.redis import RedisStore
from tests.support.redis_server import RedisServer
from tests.support.redis_topology import ClusterTopology, wait_for

SECRET = "reconnect-test-session-secret-0123456789abcdef"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def store_for(prefix: str | None = None, **redis: object) -> RedisStore:
    """A store as ``hf-gateway run`` builds it from ``session``."""
    config = SessionConfig.model_validate(
        {
            "store": "redis",
            "redis_prefix": prefix or f"reconnect-{secrets.token_hex(4)}:",
            "secret": SECRET,
            **redis,
        }
    )
    return RedisStore.from_config(config)


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def answers(store: RedisStore, key: str) -> bool:
    try:
        await store.get(key)
    except StoreError:
        return False
    return True


async def test_a_redis_that_went_down_is_retried_with_backoff_and_logged_once(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stops: 200 concurrent requests fail at once (503); of the 200 after them at
    most one tries (a probe), the others are refused while reconnecting; one ERROR line for
    the outage. Redis starts
    again: requests succeed within the backoff's cap, with one line saying so."""
    caplog.set_level(logging.INFO, "gateway.session")
    store = store_for(redis_url=own_redis.url)
    try:
        await store.set("s:kept", b"x", 60)
        own_redis.stop()
        started = time.monotonic()
        in_flight = await asyncio.gather(
            *(store.get("s:kept") for _ in range(200)), return_exceptions=True
        )
        after = await asyncio.gather(
            *(store.get("s:kept") for _ in range(200)), return_exceptions=True
        )
        assert time.monotonic() - started < 2.0
        assert all(isinstance(o, StoreError) for o in in_flight + after)
        tried = [o for o in after if "reconnecting" not in str(o)]
        assert len(tried) <= 1  # one probe once the first backoff delay (25-50 ms) is over
        await asyncio.to_thread(own_redis.start)
        back = time.monotonic()
        while not await answers(store, "s:kept"):
            assert time.monotonic() - back < 5.0, "Redis is back but the store does not use it"
            await asyncio.sleep(0.02)
    finally:
        await store.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("redis unreachable")]) == 1
    assert messages.count("redis reachable again") == 1


async def test_a_redis_that_is_down_answers_every_call_with_store_error(
    own_redis: RedisServer,
) -> None:
    """The twin of the test above: no call pretends to succeed while Redis is down, reads
    and writes alike (fail closed)."""
    store = store_for(redis_url=own_redis.url)
    own_redis.stop()
    try:
        calls = {
            "get": store.get("s:x"),
            "set": store.set("s:x", b"v", 10),
            "delete": store.delete("s:x"),
            "lock": store.lock("l:x", 5),
            "index_members": store.index_members("u:x"),
            "ping": store.ping(),
        }
        for name, call in calls.items():
            with pytest.raises(StoreError):
                await call
            assert name
    finally:
        await store.close()


async def test_the_invalidation_listener_resubscribes_after_redis_restarts(
    own_redis: RedisServer,
) -> None:
    """The listener reports the lost channel (warm caches off), reconnects with backoff
    once Redis is back, and hears what is published afterwards."""
    prefix = f"reconnect-{secrets.token_hex(4)}:"
    store = store_for(prefix, redis_url=own_redis.url)
    publisher = store_for(prefix, redis_url=own_redis.url)
    heard: list[str] = []
    states: list[bool] = []
    task = asyncio.create_task(store.listen_invalidations(heard.append, states.append))
    try:
        await until(lambda: states == [True])
        own_redis.stop()
        await until(lambda: states[-1] is False)
        await asyncio.to_thread(own_redis.start)
        await until(lambda: states[-1] is True)
        await publisher.publish_invalidation("s:after-restart")
        await until(lambda: "s:after-restart" in heard)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        await publisher.close()


async def test_a_cluster_node_that_restarts_is_used_again() -> None:
    """A key on a stopped Cluster master fails (StoreError); once the node is back (same
    id, same slots) the store uses it again without being rebuilt."""
    cluster = await asyncio.to_thread(ClusterTopology().start)
    prefix = f"reconnect-{secrets.token_hex(4)}:"
    store = store_for(prefix, redis_cluster=True, redis_url=cluster.url)
    try:
        node = cluster.nodes[1]
        async with aioredis.RedisCluster.from_url(cluster.url) as probe:
            await probe.initialize()
            key = next(
                f"s:{n}"
                for n in range(10_000)
                if probe.get_node_from_key(f"{prefix}s:{n}").port == node.port
            )
        await store.set(key, b"on node 1", 60)
        node.stop()
        with pytest.raises(StoreError):
            await store.get(key)
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(wait_for, cluster.ok, "the cluster to recover")
        deadline = time.monotonic() + 20
        while not await answers(store, key):
            assert time.monotonic() < deadline, "the restarted node is never used again"
            await asyncio.sleep(0.1)
        assert await store.get(key) is None  # no persistence in tests: the node came back empty
        await store.set(key, b"again", 60)
        assert await store.get(key) == b"again"
    finally:
        await store.close()
        cluster.cleanup()


async def test_a_master_refusing_writes_for_want_of_replicas_is_reported_as_unreplicated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """min-replicas-to-write on the server (recommended) refuses at once with NOREPLICAS:
    a StoreError and the same warning as a WAIT that fell short; reads go on."""
    caplog.set_level(logging.WARNING, "gateway.session")
    server = RedisServer(args=["--min-replicas-to-write", "1"]).start()
    store = store_for(redis_url=server.url)
    try:
        with pytest.raises(StoreError, match="not replicated: NOREPLICAS"):
            await store.set("s:x", b"v", 10)
        assert await store.get("s:x") is None
    finally:
        await store.close()
        server.cleanup()
    assert any("NOREPLICAS" in r.getMessage() for r in caplog.records)
