"""A per-process cache of warm sessions, safe for many processes and replicas.

DESIGN §6 allows it only with invalidation pushed to every process (Redis pub/sub) within
a second, and never while that channel is down. So:

- entries live at most ``max_age`` (1 s): even an invalidation that never arrives cannot
  keep a logged-out session alive longer than that;
- every session write or delete, here or on any replica, drops the entry (pub/sub);
- the cache is off (and empty) until the channel confirms it is listening, and again as
  soon as the channel fails;
- a read that raced with an invalidation is not cached (the epoch moved meanwhile).

No I/O here: the session manager feeds it, the store's listener switches it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WarmCache(Generic[T]):
    def __init__(
        self,
        max_age: float = 1.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._enabled = False
        self.epoch = 0
        """Moves on every invalidation; a read started in an older epoch is not cached."""
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    def get(self, key: str) -> T | None:
        if not self._enabled:
            return None
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._max_age:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def last(self, key: str) -> T | None:
        """The value last cached for ``key``, however old (never to serve by itself: to
        recognise that a fresh read brought back the very same record)."""
        entry = self._entries.get(key) if self._enabled else None
        return entry[1] if entry is not None else None

    def put(self, key: str, value: T, read_epoch: int) -> None:
        """Cache a value read from the store in ``read_epoch`` (skipped if it may be stale)."""
        if not self._enabled or read_epoch != self.epoch:
            return
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: str) -> None:
        self.epoch += 1
        self._entries.pop(key, None)

    def channel_state(self, listening: bool) -> None:
        """The invalidation channel came up (cache on) or broke (cache off and emptied)."""
        self.epoch += 1
        self._entries.clear()
        self._enabled = listening
