"""A per-process cache of warm sessions, safe for many processes and replicas.

DESIGN §6 allows it only with invalidation pushed to every process (Redis pub/sub) within
a second, and never while that channel is down. So:

- entries are served at most ``max_age`` (1 s): even an invalidation that never arrives
  cannot keep a logged-out session alive longer than that;
- every session write or delete, here or on any replica, drops the entry (pub/sub);
- the cache is off (and empty) until the channel confirms it is listening, and again as
  soon as the channel fails;
- a read that raced with an invalidation is not cached (the epoch moved meanwhile);
- an entry is served until ``max_age`` after the *start* of the last read that saw its
  bytes: the read that stored it, or a later batched re-check (session/recheck.py) that
  found the same bytes (:meth:`confirm`). A re-check only extends the very entry it began
  with: one that an invalidation dropped (or a newer read replaced) meanwhile is left as
  it is, so a re-check racing with an invalidation cannot bring the old value back.

The entries used lately (served by :meth:`get` or stored by :meth:`put` since the
previous two calls of :meth:`recheck_due`) are what the re-check reads; the others are
left to expire.

Memory is bounded three ways, all checked on ``put`` (amortised O(1): the entries are kept
in the order they were stored, so whatever has to go is at the head, and each entry is
dropped once; no timer per entry):

- an entry leaves memory ``max_age`` plus ``grace`` seconds after it was stored (a grace
  during which it is never served, only recognised by :meth:`last`, so a session re-read
  with the very same bytes keeps its objects and the memos built on them);
- the entries' estimated sizes (given by the caller, once, when it stores one) add up to
  at most ``max_bytes``; the oldest go first;
- at most ``max_entries`` entries; an entry over ``max_entry_bytes`` (default
  ``max_bytes / 256``, at least 64 KiB) is not cached at all.

A hit's only bookkeeping is one list append of its key (the keys in use for the
re-check, and, by the list's length, the hit count). Hits and misses are handed to
``report`` (the metrics) on each miss, in a batch: a Prometheus increment costs more than
a hit itself.

No I/O here: the session manager feeds it, the store's listener switches it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_BYTES = 64 * 1024 * 1024
"""Default budget of one process's warm cache (``session.warm_cache_max_bytes``)."""
MIN_ENTRY_LIMIT = 64 * 1024
"""The default per-entry limit is max_bytes / 256, never below this (small budgets would
refuse every ordinary record, about 5 KiB each)."""
SERVED_LIMIT = 65_536
"""Hits remembered per interval when nothing calls :meth:`WarmCache.recheck_due`: past
that, a put starts a new interval (keys drop out of re-checks sooner, nothing worse)."""
GRACE = 1.0
"""Seconds an entry stays (unserved) after max_age, to recognise a same-bytes re-read."""


class WarmCache(Generic[T]):
    def __init__(
        self,
        max_age: float = 1.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int | None = None,
        grace: float = GRACE,
        report: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_age <= 0 or grace < 0 or max_entries < 1 or max_bytes < 1:
            raise ValueError("max_age, max_entries and max_bytes must be positive")
        self._max_age = max_age
        self._grace = grace
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        if max_entry_bytes is None:
            max_entry_bytes = max(max_bytes // 256, MIN_ENTRY_LIMIT)
        self._max_entry_bytes = min(max_bytes, max_entry_bytes)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, int, T]] = OrderedDict()
        """key -> (served until, estimated bytes, value), oldest first."""
        self._bytes = 0
        self._head_expires = 0.0
        """When the oldest entry is due to leave: puts before then skip the head."""
        self._enabled = False
        self._served: list[str] = []
        """The key of every hit since the last :meth:`recheck_due`: the keys in use, and
        (its length) the hits. A list append is the hit path's one piece of bookkeeping,
        cheaper than a set insertion plus a counter."""
        self._served_before: list[str] = []
        """The keys served in the interval before that."""
        self._mark = self._served.append
        """Bound once: no attribute lookups on the hit path."""
        self._stored: set[str] = set()
        """Keys stored (put) since the last :meth:`recheck_due`."""
        self._stored_before: set[str] = set()
        self._counted_hits = 0
        """Hits of the lists already rotated out."""
        self.epoch = 0
        """Moves on every invalidation; a read started in an older epoch is not cached."""
        self.misses = 0
        self._report = report
        self._reported = (0, 0)

    @property
    def hits(self) -> int:
        return self._counted_hits + len(self._served)

    def _rotate(self) -> None:
        """Start a new interval of use: the current one becomes the one before."""
        self._counted_hits += len(self._served)
        self._served_before, self._served = self._served, []
        self._mark = self._served.append
        self._stored_before, self._stored = self._stored, set()

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def size(self) -> tuple[int, int]:
        """(entries, estimated bytes) held now, expired ones not yet dropped included."""
        return len(self._entries), self._bytes

    def get(self, key: str) -> T | None:
        # No test of _enabled on a hit: a disabled cache holds nothing (channel_state).
        entry = self._entries.get(key)
        if entry is None or self._clock() >= entry[0]:
            if not self._enabled:
                return None
            self.misses += 1
            if self._report is not None:
                self._flush(self._report)
            return None
        self._mark(key)
        return entry[2]

    def now(self) -> float:
        """The cache's clock: a read's start, for :meth:`put` and :meth:`confirm`."""
        return self._clock()

    def last(self, key: str) -> T | None:
        """The value last cached for ``key`` if still held, however old (never to serve by
        itself: to recognise that a fresh read brought back the very same record)."""
        entry = self._entries.get(key) if self._enabled else None
        return entry[2] if entry is not None else None

    def put(
        self, key: str, value: T, read_epoch: int, size: int, read_at: float | None = None
    ) -> None:
        """Cache a value read from the store in ``read_epoch`` (skipped if it may be stale);
        ``size`` is its estimated memory in bytes, the cache's own overhead included;
        ``read_at`` (:meth:`now` when the read began; now if not given) starts its max_age:
        the read saw the value at some moment after that, not necessarily now."""
        if not self._enabled or read_epoch != self.epoch:
            return
        self._stored.add(key)
        if len(self._served) > SERVED_LIMIT:  # no re-checks rotating it (bounded anyway)
            self._rotate()
        now = self._clock()
        served_until = (now if read_at is None else min(now, read_at)) + self._max_age
        entries = self._entries
        old = entries.get(key)
        held = self._bytes - old[1] if old is not None else self._bytes
        if size > self._max_entry_bytes or served_until <= now:
            # Too big (one huge record would push out hundreds of ordinary ones), or a read
            # so slow that its value is past serving already.
            if old is not None:
                del entries[key]
                self._bytes = held
            return
        entries[key] = (served_until, size, value)
        if old is not None:
            entries.move_to_end(key)
        self._bytes = held = held + size
        if now >= self._head_expires or held > self._max_bytes or len(entries) > self._max_entries:
            self._trim(now)

    def recheck_due(self, limit: int) -> list[tuple[str, T]]:
        """The entries to re-check now, at most ``limit``: those held and used since the
        previous two calls (so an entry in steady use is read by two batches before it
        could age out, and one left alone is read at most twice more). Each with the value
        held now: :meth:`confirm` and :meth:`discard` act only on that very value."""
        recent = {*self._served, *self._served_before, *self._stored, *self._stored_before}
        self._rotate()
        if not self._enabled:
            return []
        entries = self._entries
        due: list[tuple[str, T]] = []
        for key in recent:
            entry = entries.get(key)
            if entry is not None:
                due.append((key, entry[2]))
                if len(due) >= limit:
                    break
        return due

    def confirm(self, key: str, value: T, read_at: float) -> bool:
        """A read that began at ``read_at`` found ``value``'s bytes still stored: serve it
        until ``read_at`` + max_age (never less than already allowed). Nothing happens
        unless the entry still holds ``value`` itself: an invalidation or a newer read
        since the re-check began has the last word. True when extended."""
        entry = self._entries.get(key)
        if entry is None or entry[2] is not value or not self._enabled:
            return False
        served_until = read_at + self._max_age
        if served_until > entry[0]:
            self._entries[key] = (served_until, entry[1], value)
            self._entries.move_to_end(key)  # roughly in expiry order, for _trim
        return True

    def discard(self, key: str, value: T) -> None:
        """A re-check found other bytes or none for ``key``: drop the entry if it still
        holds ``value`` (the next request reads the store)."""
        entry = self._entries.get(key)
        if entry is not None and entry[2] is value:
            del self._entries[key]
            self._bytes -= entry[1]

    def _trim(self, now: float) -> None:
        """Drop from the head (the oldest) what is past keeping or over a bound. The entry
        just stored is the newest and within every bound, so the loop ends before it."""
        entries = self._entries
        expired = now - self._grace
        while True:
            head = next(iter(entries))
            served_until, held, _ = entries[head]
            if (
                served_until > expired
                and self._bytes <= self._max_bytes
                and len(entries) <= self._max_entries
            ):
                self._head_expires = served_until + self._grace  # nothing to check before then
                return
            del entries[head]
            self._bytes -= held

    def _flush(self, report: Callable[[int, int], None]) -> None:
        """Hand the hits and misses since the last flush to ``report``. Done on a miss
        only (a store read follows anyway): a metric increment costs more than a hit."""
        hits, misses = self._reported
        report(self.hits - hits, self.misses - misses)
        self._reported = (self.hits, self.misses)

    def invalidate(self, key: str) -> None:
        self.epoch += 1
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1]

    def channel_state(self, listening: bool) -> None:
        """The invalidation channel came up (cache on) or broke (cache off and emptied)."""
        self.epoch += 1
        self._entries.clear()
        self._rotate()
        self._rotate()
        self._bytes = 0
        self._enabled = listening
