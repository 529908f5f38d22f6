"""The warm-session cache serves only fresh entries, only while its channel listens."""

from __future__ import annotations

from gateway.session.cache import WarmCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listening_cache(clock: Clock, max_entries: int = 100) -> WarmCache[str]:
    cache: WarmCache[str] = WarmCache(max_age=1.0, max_entries=max_entries, clock=clock)
    cache.channel_state(True)
    return cache


def test_a_fresh_entry_is_served_and_an_old_one_is_not() -> None:
    """Entries live max_age: a logout nobody heard of still ends within a second."""
    clock = Clock()
    cache = listening_cache(clock)
    cache.put("s:1", "alice", cache.epoch)
    clock.now += 0.9
    assert cache.get("s:1") == "alice"
    clock.now += 0.1
    assert cache.get("s:1") is None


def test_nothing_is_cached_until_the_channel_listens() -> None:
    """Without a working invalidation channel the cache is off."""
    cache: WarmCache[str] = WarmCache(clock=Clock())
    cache.put("s:1", "alice", cache.epoch)
    assert cache.get("s:1") is None
    assert not cache.enabled


def test_a_broken_channel_empties_and_disables_the_cache() -> None:
    """When the channel fails, what was cached is dropped and nothing new is kept."""
    cache = listening_cache(Clock())
    cache.put("s:1", "alice", cache.epoch)
    cache.channel_state(False)
    assert cache.get("s:1") is None
    cache.put("s:2", "bob", cache.epoch)
    assert cache.get("s:2") is None


def test_an_invalidation_drops_the_entry() -> None:
    """A write or delete anywhere removes the key here."""
    cache = listening_cache(Clock())
    cache.put("s:1", "alice", cache.epoch)
    cache.put("s:2", "bob", cache.epoch)
    cache.invalidate("s:1")
    assert cache.get("s:1") is None
    assert cache.get("s:2") == "bob"


def test_a_read_that_raced_with_an_invalidation_is_not_cached() -> None:
    """A value read before an invalidation arrived may be stale: it is not kept."""
    cache = listening_cache(Clock())
    epoch = cache.epoch
    cache.invalidate("s:1")  # arrives while the read for s:1 is in flight
    cache.put("s:1", "stale alice", epoch)
    assert cache.get("s:1") is None


def test_the_cache_is_bounded() -> None:
    """Past max_entries the least recently stored entry goes first."""
    cache = listening_cache(Clock(), max_entries=2)
    for key in ("s:1", "s:2", "s:3"):
        cache.put(key, key, cache.epoch)
    assert cache.get("s:1") is None
    assert cache.get("s:3") == "s:3"
