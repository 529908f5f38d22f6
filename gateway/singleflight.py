"""Concurrent calls for one key share one run of the work (a store read, a revalidation,
a provider lookup), so a burst of requests for one session or token costs one round trip.

No I/O of its own: the work is the caller's coroutine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, tuple[object, asyncio.Future[V]]] = {}

    def running(self, key: K, tag: object = None) -> asyncio.Future[V] | None:
        """The run in flight for ``key`` begun under the same ``tag``, if any.

        A run begun under another tag (say, before an invalidation moved an epoch) is not
        joined: its result may predate what the caller must see.
        """
        found = self._running.get(key)
        return found[1] if found is not None and found[0] == tag else None

    async def run(self, key: K, work: Callable[[], Awaitable[V]], tag: object = None) -> V:
        """Join the run for ``key`` (same ``tag``), or start ``work`` as that run."""
        pending = self.running(key, tag)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = (tag, future)
        try:
            value = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the joiners, if any, re-raise it themselves
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if self._running.get(key, (None, None))[1] is future:
                del self._running[key]
