"""Batched re-checks of the warm cache (session/recheck.py): an entry in use is confirmed by
a batch that saw its very bytes, from the moment that read began, and by nothing else."""

from __future__ import annotations

import asyncio

from gateway.identity import Identity
from gateway.providers.base import TokenSet
from gateway.session.cache import SERVED_LIMIT, WarmCache
from gateway.session.manager import LoadedSession, SessionManager
from gateway.session.memory import MemoryStore
from gateway.session.model import SessionKeys, SessionTimes
from gateway.session.recheck import BATCH_KEYS, keep_rechecking, recheck
from tests.unit.test_warm_cache import SIZE, Clock, listening_cache

TIMES = SessionTimes(idle_timeout=3600, max_lifetime=86400, revalidate_after=300)
TOKENS = TokenSet("hf_oauth_" + "a" * 34, "hf_oauth_" + "r" * 34, None, frozenset())


class Warm:
    """A session manager over a real memory store, with a listening warm cache on a
    hand-driven clock (the sessions' own clock is the real one)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.cache: WarmCache[LoadedSession] = WarmCache(max_age=1.0, clock=self.clock)
        self.cache.channel_state(True)
        self.manager = SessionManager(self.store, SessionKeys.derive(["r" * 32]), TIMES)
        self.manager.cache = self.cache

    async def signed_in(self, name: str = "alice") -> tuple[str, str]:
        """A new session's cookie and store key, read once (so it is cached)."""
        identity = Identity(sub=name + "-sub", username=name, name=name.title())
        cookie = await self.manager.create(identity, TOKENS)
        key = self.manager.key_for(cookie)
        assert key is not None
        assert await self.manager.load(cookie) is not None
        assert self.cache.get(key) is not None
        return cookie, key


async def test_a_batch_that_saw_the_same_bytes_extends_from_its_start() -> None:
    """Confirmed at 100.8 (when the batch began): served until 101.8, not a moment after,
    though the entry was first stored at 100.0."""
    warm = Warm()
    _, key = await warm.signed_in()
    warm.clock.now = 100.8
    assert await recheck(warm.cache, warm.store) == 1
    warm.clock.now = 101.79
    assert warm.cache.get(key) is not None
    warm.clock.now = 101.8
    assert warm.cache.get(key) is None


async def test_without_a_recheck_the_entry_ends_after_a_second() -> None:
    """The twin: the same entry, never re-checked, is not served at 101.0."""
    warm = Warm()
    _, key = await warm.signed_in()
    warm.clock.now = 100.99
    assert warm.cache.get(key) is not None
    warm.clock.now = 101.0
    assert warm.cache.get(key) is None


async def test_changed_or_missing_bytes_drop_the_entry() -> None:
    """A record rewritten or deleted behind the cache's back (no invalidation) is dropped
    by the next batch: the next request reads the store (and finds the session gone)."""
    warm = Warm()
    cookie_a, key_a = await warm.signed_in("alice")
    cookie_b, key_b = await warm.signed_in("bob")
    _, key_c = await warm.signed_in("carol")
    stored = await warm.store.get(key_a)
    assert stored is not None
    await warm.store.set(key_a, stored + b" ", ttl=60)
    await warm.store.delete(key_b)
    warm.clock.now = 100.5
    assert await recheck(warm.cache, warm.store) == 1  # carol's only
    assert warm.cache.get(key_a) is None
    assert warm.cache.get(key_b) is None
    assert warm.cache.get(key_c) is not None
    assert await warm.manager.load(cookie_b) is None


async def test_entries_not_used_lately_are_left_to_expire() -> None:
    """An entry nobody asks for is re-checked by the next two batches at most, then no
    more; one in use keeps being re-checked."""
    warm = Warm()
    _, idle = await warm.signed_in("alice")
    _, busy = await warm.signed_in("bob")
    checked: list[set[str]] = []
    for step in range(4):
        warm.clock.now = 100.5 + step * 0.5
        assert warm.cache.get(busy) is not None
        due = warm.cache.recheck_due(100)
        checked.append({key for key, _ in due})
        for key, loaded in due:  # what recheck() does when the bytes are the same
            warm.cache.confirm(key, loaded, warm.clock.now)
    assert [idle in keys for keys in checked] == [True, True, False, False]
    assert all(busy in keys for keys in checked)
    assert warm.cache.get(idle) is None  # its last confirmation was at 101.0


async def test_a_round_reads_its_keys_in_bounded_batches() -> None:
    """recheck_due never hands out more than asked; a round of more than BATCH_KEYS keys is
    confirmed whole, batch by batch."""
    cache: WarmCache[str] = listening_cache(Clock(), max_entries=1000, max_bytes=10**9)
    for n in range(10):
        cache.put(f"s:{n}", "v", cache.epoch, SIZE)
    assert len(cache.recheck_due(3)) == 3
    warm = Warm()
    keys = [(await warm.signed_in(f"user{n}"))[1] for n in range(BATCH_KEYS + 5)]
    warm.clock.now = 100.9
    assert await recheck(warm.cache, warm.store) == len(keys)
    warm.clock.now = 101.5
    assert all(warm.cache.get(key) is not None for key in keys)


def test_a_confirmation_never_shortens_and_never_revives_what_was_dropped() -> None:
    """A confirmation older than the entry's own read leaves it; an entry invalidated while
    the batch was out, or replaced by a newer read, is not touched by that batch."""
    clock = Clock()
    cache = listening_cache(clock)
    cache.put("s:1", "v1", cache.epoch, SIZE, read_at=100.0)
    due = dict(cache.recheck_due(10))
    began = clock.now = 100.4
    clock.now = 100.5
    cache.put("s:1", "v1 again", cache.epoch, SIZE, read_at=100.5)  # a direct read meanwhile
    assert cache.confirm("s:1", due["s:1"], began) is False  # not the value it began with
    cache.discard("s:1", due["s:1"])
    clock.now = 101.45
    assert cache.get("s:1") == "v1 again"  # still the direct read's 100.5 + 1 s
    due = dict(cache.recheck_due(10))
    cache.invalidate("s:1")  # arrives while the batch is out
    assert cache.confirm("s:1", due["s:1"], 101.45) is False
    assert cache.get("s:1") is None
    assert cache.last("s:1") is None
    cache.put("s:2", "b", cache.epoch, SIZE, read_at=101.45)
    due = dict(cache.recheck_due(10))
    assert cache.confirm("s:2", due["s:2"], 101.0) is True  # older than its read: kept
    clock.now = 102.44
    assert cache.get("s:2") == "b"


def test_a_channel_that_broke_during_the_batch_confirms_nothing() -> None:
    """The channel failed and came back while the batch was out: what it began with is
    gone (the cache was emptied), so nothing is confirmed; a disabled cache hands out
    nothing to re-check."""
    cache = listening_cache(Clock())
    cache.put("s:1", "v", cache.epoch, SIZE)
    due = cache.recheck_due(10)
    cache.channel_state(False)
    assert cache.recheck_due(10) == []
    cache.channel_state(True)
    assert not cache.confirm("s:1", due[0][1], 100.0)
    assert cache.get("s:1") is None


def test_a_read_slower_than_max_age_is_not_cached() -> None:
    """An entry counts from its read's start: a read that took over a second is stale on
    arrival and not stored; a quick one is."""
    clock = Clock()
    cache = listening_cache(clock)
    clock.now = 101.2
    cache.put("s:slow", "v", cache.epoch, SIZE, read_at=100.1)
    cache.put("s:quick", "v", cache.epoch, SIZE, read_at=101.1)
    assert cache.get("s:slow") is None
    assert cache.last("s:slow") is None
    assert cache.get("s:quick") == "v"
    clock.now = 102.1
    assert cache.get("s:quick") is None


async def test_the_recheck_task_stops_at_once_when_cancelled() -> None:
    """keep_rechecking runs until cancelled, and a cancel ends it within a few ms."""
    warm = Warm()
    _, key = await warm.signed_in()
    task = asyncio.create_task(keep_rechecking(warm.cache, warm.store, interval=0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert loop.time() - cancelled_at < 0.05


def test_hits_are_counted_across_rounds_and_the_use_record_stays_bounded() -> None:
    """Hits survive the rotation of the use record (the metric loses none); with nothing
    re-checking, a put starts a new interval once the record is full."""
    cache = listening_cache(Clock())
    cache.put("s:1", "v", cache.epoch, SIZE)
    for _ in range(3):
        cache.get("s:1")
    cache.recheck_due(10)
    cache.get("s:1")
    assert cache.hits == 4
    for _ in range(SERVED_LIMIT + 1):
        cache.get("s:1")
    cache.put("s:2", "v", cache.epoch, SIZE)
    assert cache.hits == SERVED_LIMIT + 5
    assert len(cache._served) == 0  # the record of use was handed on, not kept growing
