"""The warm-session cache serves only fresh entries, only while its channel listens."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.session.cache import WarmCache
from gateway.session.manager import warm_entry_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


SIZE = 1000
"""Every entry's estimated size in these tests, unless a test says otherwise."""


def listening_cache(
    clock: Clock, max_entries: int = 100, max_bytes: int = 1_000_000, **options: Any
) -> WarmCache[str]:
    cache: WarmCache[str] = WarmCache(
        max_age=1.0, max_entries=max_entries, clock=clock, max_bytes=max_bytes, **options
    )
    cache.channel_state(True)
    return cache


def test_a_fresh_entry_is_served_and_an_old_one_is_not() -> None:
    """Entries live max_age: a logout nobody heard of still ends within a second."""
    clock = Clock()
    cache = listening_cache(clock)
    cache.put("s:1", "alice", cache.epoch, SIZE)
    clock.now += 0.9
    assert cache.get("s:1") == "alice"
    clock.now += 0.1
    assert cache.get("s:1") is None


def test_nothing_is_cached_until_the_channel_listens() -> None:
    """Without a working invalidation channel the cache is off."""
    cache: WarmCache[str] = WarmCache(clock=Clock())
    cache.put("s:1", "alice", cache.epoch, SIZE)
    assert cache.get("s:1") is None
    assert not cache.enabled


def test_a_broken_channel_empties_and_disables_the_cache() -> None:
    """When the channel fails, what was cached is dropped and nothing new is kept."""
    cache = listening_cache(Clock())
    cache.put("s:1", "alice", cache.epoch, SIZE)
    cache.channel_state(False)
    assert cache.get("s:1") is None
    cache.put("s:2", "bob", cache.epoch, SIZE)
    assert cache.get("s:2") is None


def test_an_invalidation_drops_the_entry() -> None:
    """A write or delete anywhere removes the key here."""
    cache = listening_cache(Clock())
    cache.put("s:1", "alice", cache.epoch, SIZE)
    cache.put("s:2", "bob", cache.epoch, SIZE)
    cache.invalidate("s:1")
    assert cache.get("s:1") is None
    assert cache.get("s:2") == "bob"


def test_a_read_that_raced_with_an_invalidation_is_not_cached() -> None:
    """A value read before an invalidation arrived may be stale: it is not kept."""
    cache = listening_cache(Clock())
    epoch = cache.epoch
    cache.invalidate("s:1")  # arrives while the read for s:1 is in flight
    cache.put("s:1", "stale alice", epoch, SIZE)
    assert cache.get("s:1") is None


def test_the_cache_is_bounded() -> None:
    """Past max_entries the least recently stored entry goes first."""
    cache = listening_cache(Clock(), max_entries=2)
    for key in ("s:1", "s:2", "s:3"):
        cache.put(key, key, cache.epoch, SIZE)
    assert cache.get("s:1") is None
    assert cache.get("s:3") == "s:3"


def test_expired_entries_leave_memory() -> None:
    """An entry past max_age plus the grace is dropped by the next put, not kept until the
    count cap: memory follows the sessions of the last seconds, not of the whole day."""
    clock = Clock()
    cache = listening_cache(clock, grace=1.0)
    for n in range(50):
        cache.put(f"s:{n}", "old", cache.epoch, SIZE)
    assert cache.size == (50, 50 * SIZE)
    clock.now += 1.5  # past max_age, within the grace: held (recognisable), never served
    cache.put("s:fresh", "new", cache.epoch, SIZE)
    assert cache.get("s:0") is None
    assert cache.last("s:0") == "old"
    assert cache.size == (51, 51 * SIZE)
    clock.now += 0.6  # the first fifty are 2.1 s old: gone on this put
    cache.put("s:newer", "new", cache.epoch, SIZE)
    assert cache.size == (2, 2 * SIZE)
    assert cache.last("s:0") is None
    assert cache.get("s:newer") == "new"


def test_a_stored_again_entry_moves_to_the_back() -> None:
    """Re-storing a key refreshes it: the older neighbours expire first, it stays."""
    clock = Clock()
    cache = listening_cache(clock, grace=0.0)
    cache.put("s:1", "a", cache.epoch, SIZE)
    cache.put("s:2", "b", cache.epoch, SIZE)
    clock.now += 0.5
    cache.put("s:1", "a2", cache.epoch, SIZE)
    clock.now += 0.6  # s:2 is 1.1 s old, s:1 0.6 s
    cache.put("s:3", "c", cache.epoch, SIZE)
    assert cache.last("s:2") is None
    assert cache.get("s:1") == "a2"
    assert cache.size == (2, 2 * SIZE)


def test_the_byte_budget_evicts_the_oldest() -> None:
    """Past max_bytes the oldest entries go, however few entries that is."""
    cache = listening_cache(Clock(), max_entries=1000, max_bytes=10_000, max_entry_bytes=5000)
    for n in range(10):
        cache.put(f"s:{n}", str(n), cache.epoch, 1000)
    assert cache.size == (10, 10_000)
    cache.put("s:big", "big", cache.epoch, 3500)  # needs room for 3.5 entries: four go
    assert cache.size == (7, 9500)
    assert [cache.get(f"s:{n}") for n in range(5)] == [None, None, None, None, "4"]
    assert cache.get("s:big") == "big"


def test_a_huge_entry_is_not_cached_at_all() -> None:
    """One record over max_entry_bytes is never stored, so it pushes nobody out; storing it
    over an older, smaller version of the same key drops that version too."""
    cache = listening_cache(Clock(), max_bytes=10_000, max_entry_bytes=2000)
    cache.put("s:1", "alice", cache.epoch, 1000)
    cache.put("s:huge", "huge", cache.epoch, 2001)
    assert cache.get("s:huge") is None
    assert cache.get("s:1") == "alice"
    assert cache.size == (1, 1000)
    cache.put("s:1", "alice in 500 orgs", cache.epoch, 2001)
    assert cache.get("s:1") is None
    assert cache.size == (0, 0)
    cache.put("s:2", "bob", cache.epoch, 2000)  # at the limit: cached
    assert cache.get("s:2") == "bob"


@pytest.mark.parametrize(
    ("budget", "limit"), [(256 * 1024 * 1024, 1024 * 1024), (1024 * 1024, 64 * 1024)]
)
def test_the_default_per_entry_limit_is_a_256th_of_the_budget_or_64_kib(
    budget: int, limit: int
) -> None:
    """A small budget still caches ordinary records (about 5 KiB each)."""
    cache = listening_cache(Clock(), max_bytes=budget)
    cache.put("s:1", "fits", cache.epoch, limit)
    cache.put("s:2", "too big", cache.epoch, limit + 1)
    assert cache.get("s:1") == "fits"
    assert cache.get("s:2") is None


def test_invalidation_and_a_broken_channel_give_the_bytes_back() -> None:
    cache = listening_cache(Clock())
    cache.put("s:1", "alice", cache.epoch, 700)
    cache.put("s:2", "bob", cache.epoch, 300)
    cache.invalidate("s:1")
    assert cache.size == (1, 300)
    cache.channel_state(False)
    assert cache.size == (0, 0)


def test_hits_and_misses_are_reported_in_batches_on_a_miss() -> None:
    """The metric is fed on misses only (a store read follows anyway), with every hit
    since the previous report."""
    reports: list[tuple[int, int]] = []
    cache = listening_cache(Clock(), report=lambda hits, misses: reports.append((hits, misses)))
    cache.put("s:1", "alice", cache.epoch, SIZE)
    for _ in range(5):
        assert cache.get("s:1") == "alice"
    assert reports == []
    assert cache.get("s:2") is None
    assert cache.get("s:1") == "alice"
    assert cache.get("s:3") is None
    assert reports == [(5, 1), (1, 1)]
    assert sum(h for h, _ in reports) + sum(m for _, m in reports) == cache.hits + cache.misses


def test_the_estimate_grows_with_the_record() -> None:
    """warm_entry_bytes is the measured fit (about 3.9 x the record + 220 B), rounded up."""
    assert warm_entry_bytes(0) >= 220
    assert warm_entry_bytes(1189) >= 3.9 * 1189 + 220
    assert warm_entry_bytes(7614) >= 3.9 * 7614 + 220


@pytest.mark.parametrize(
    "options", [{"max_age": 0}, {"max_entries": 0}, {"max_bytes": 0}, {"grace": -1}]
)
def test_bounds_must_be_positive(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        WarmCache(**options)  # type: ignore[arg-type]
