"""SessionStore.take_allowance: a token bucket shared by everyone using the store,
run against the memory store and a real redis-server."""

from __future__ import annotations

import asyncio
import secrets

from gateway.session.store import SessionStore


def bucket() -> str:
    return f"q:test-{secrets.token_hex(4)}"


async def test_a_burst_is_taken_then_the_bucket_says_how_long_to_wait(
    store: SessionStore,
) -> None:
    """Five units at once, then none: the answer is the wait for the next one."""
    key = bucket()
    taken = [await store.take_allowance(key, rate=2.0, burst=5) for _ in range(5)]
    assert taken == [0.0] * 5
    wait = await store.take_allowance(key, rate=2.0, burst=5)
    assert 0.4 < wait <= 0.5


async def test_the_bucket_refills_at_its_rate(store: SessionStore) -> None:
    """After the announced wait one more unit is there, and only one."""
    key = bucket()
    for _ in range(3):
        assert await store.take_allowance(key, rate=5.0, burst=3) == 0.0
    wait = await store.take_allowance(key, rate=5.0, burst=3)
    assert wait > 0
    await asyncio.sleep(wait + 0.02)
    assert await store.take_allowance(key, rate=5.0, burst=3) == 0.0
    assert await store.take_allowance(key, rate=5.0, burst=3) > 0


async def test_a_refused_take_takes_nothing(store: SessionStore) -> None:
    """Asking an empty bucket again and again does not push the refill further away."""
    key = bucket()
    for _ in range(2):
        assert await store.take_allowance(key, rate=4.0, burst=2) == 0.0
    waits = [await store.take_allowance(key, rate=4.0, burst=2) for _ in range(20)]
    assert all(0 < w <= 0.25 for w in waits)


async def test_a_smaller_burst_leaves_a_reserve_for_the_full_one(store: SessionStore) -> None:
    """Callers passing burst 3 stop while 2 units remain; callers passing 5 take them."""
    key = bucket()
    for _ in range(3):
        assert await store.take_allowance(key, rate=1.0, burst=3) == 0.0
    assert await store.take_allowance(key, rate=1.0, burst=3) > 0
    assert await store.take_allowance(key, rate=1.0, burst=5) == 0.0
    assert await store.take_allowance(key, rate=1.0, burst=5) == 0.0
    assert await store.take_allowance(key, rate=1.0, burst=5) > 0


async def test_buckets_are_independent(store: SessionStore) -> None:
    """Emptying one bucket leaves another full."""
    first, second = bucket(), bucket()
    assert await store.take_allowance(first, rate=1.0, burst=1) == 0.0
    assert await store.take_allowance(first, rate=1.0, burst=1) > 0
    assert await store.take_allowance(second, rate=1.0, burst=1) == 0.0


async def test_concurrent_takes_never_exceed_the_burst(store: SessionStore) -> None:
    """Of fifty takes at once from a bucket of ten, exactly ten succeed (atomic)."""
    key = bucket()
    waits = await asyncio.gather(
        *(store.take_allowance(key, rate=0.5, burst=10) for _ in range(50))
    )
    assert waits.count(0.0) == 10


async def test_a_refilled_bucket_leaves_no_key_behind(store: SessionStore) -> None:
    """Buckets cost nothing once full again: the key is gone after burst / rate."""
    key = bucket()
    assert await store.take_allowance(key, rate=4.0, burst=2) == 0.0
    assert await store.scan(key) == [key]
    await asyncio.sleep(0.3)
    assert await store.scan(key) == []
