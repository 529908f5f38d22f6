"""The SessionStore contract, run against the memory store and a real redis-server."""

from __future__ import annotations

import asyncio

from gateway.session.store import SessionStore


async def test_missing_keys_read_as_none(store: SessionStore) -> None:
    """A key never written reads as None and deleting it reports False."""
    assert await store.get("s:absent") is None
    assert await store.delete("s:absent") is False


async def test_values_round_trip_as_bytes(store: SessionStore) -> None:
    """Bytes written come back unchanged, including non-UTF-8 bytes."""
    value = bytes(range(256))
    await store.set("s:one", value, ttl=30)
    assert await store.get("s:one") == value


async def test_set_replaces_the_previous_value(store: SessionStore) -> None:
    """A second write under the same key wins."""
    await store.set("s:k", b"first", ttl=30)
    await store.set("s:k", b"second", ttl=30)
    assert await store.get("s:k") == b"second"


async def test_values_expire_after_their_ttl(store: SessionStore) -> None:
    """A value is gone once its time to live has passed, and not before."""
    await store.set("s:short", b"x", ttl=1)
    await store.set("s:long", b"y", ttl=30)
    assert await store.get("s:short") == b"x"
    await asyncio.sleep(1.2)
    assert await store.get("s:short") is None
    assert await store.get("s:long") == b"y"


async def test_delete_removes_a_value(store: SessionStore) -> None:
    """delete() removes the value and reports that it existed."""
    await store.set("s:gone", b"x", ttl=30)
    assert await store.delete("s:gone") is True
    assert await store.get("s:gone") is None


async def test_take_is_single_use_even_under_concurrency(store: SessionStore) -> None:
    """Of many concurrent take() calls, exactly one receives the value."""
    await store.set("p:state", b"pending", ttl=30)
    results = await asyncio.gather(*(store.take("p:state") for _ in range(20)))
    assert results.count(b"pending") == 1
    assert results.count(None) == 19
    assert await store.get("p:state") is None


async def test_user_index_tracks_members(store: SessionStore) -> None:
    """An index lists what was added, minus what was removed."""
    await store.index_add("u:alice", "s:1", ttl=30)
    await store.index_add("u:alice", "s:2", ttl=30)
    await store.index_add("u:bob", "s:3", ttl=30)
    assert await store.index_members("u:alice") == ["s:1", "s:2"]
    await store.index_remove("u:alice", "s:1")
    assert await store.index_members("u:alice") == ["s:2"]
    assert await store.index_members("u:nobody") == []


async def test_user_index_expires(store: SessionStore) -> None:
    """An index not refreshed within its ttl disappears."""
    await store.index_add("u:carol", "s:9", ttl=1)
    await asyncio.sleep(1.2)
    assert await store.index_members("u:carol") == []


async def test_lock_is_exclusive_until_released(store: SessionStore) -> None:
    """Only one holder at a time; a wrong token cannot release someone else's lock."""
    token = await store.lock("l:session", ttl=10)
    assert token is not None
    assert await store.lock("l:session", ttl=10) is None
    await store.unlock("l:session", "not-the-token")
    assert await store.lock("l:session", ttl=10) is None
    await store.unlock("l:session", token)
    assert await store.lock("l:session", ttl=10) is not None


async def test_lock_expires_by_itself(store: SessionStore) -> None:
    """A holder that dies does not block others past the lock's ttl."""
    assert await store.lock("l:crash", ttl=1) is not None
    await asyncio.sleep(1.2)
    assert await store.lock("l:crash", ttl=1) is not None


async def test_scan_lists_keys_by_prefix(store: SessionStore) -> None:
    """scan() finds live keys under a logical prefix only."""
    await store.set("s:a", b"1", ttl=30)
    await store.set("s:b", b"2", ttl=30)
    await store.set("p:c", b"3", ttl=30)
    assert await store.scan("s:") == ["s:a", "s:b"]


async def test_ping_answers_when_up(store: SessionStore) -> None:
    """A reachable store answers ping without raising."""
    await store.ping()
