"""Batched re-checks of the warm cache: Redis read once per half second per process, not
once per session per second.

Every RECHECK_INTERVAL the entries used lately (WarmCache.recheck_due) are read back in
one ``get_many`` per BATCH_KEYS keys. Same bytes: the entry is served until max_age after
the moment that read *began* (WarmCache.confirm). Other bytes, or none: the entry is
dropped, and the next request reads the store itself. A failed or slow batch confirms
nothing, so the entries age out as they would without re-checks and requests read Redis
directly (503 while it is down): the one-second bound never depends on this task.

It runs beside the invalidation listener (app.py): the cache is only on while that
channel listens, and a re-check of a disabled cache reads nothing.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import StoreError
from gateway.logs import log_fault
from gateway.session.cache import WarmCache
from gateway.session.manager import LoadedSession
from gateway.session.store import SessionStore

log = logging.getLogger(__name__)

RECHECK_INTERVAL = 0.5
"""Seconds between the starts of two re-checks: half of max_age, so an entry in steady use
is confirmed twice a second and one late or failed batch does not make it miss."""
BATCH_KEYS = 256
"""Keys per ``get_many`` (one MGET): at ~5 KiB a record, replies stay near 1 MiB."""
MAX_KEYS = 4096
"""Keys re-checked per round, per process: beyond that, entries are left to expire and
their sessions read Redis when next used (as without re-checks)."""


async def recheck(cache: WarmCache[LoadedSession], store: SessionStore) -> int:
    """One round; how many entries it confirmed."""
    due = cache.recheck_due(MAX_KEYS)
    confirmed = 0
    for first in range(0, len(due), BATCH_KEYS):
        batch = due[first : first + BATCH_KEYS]
        began = cache.now()
        try:
            found = await store.get_many([key for key, _ in batch])
        except StoreError:
            return confirmed  # logged by the store; these entries simply age out
        for (key, loaded), data in zip(batch, found, strict=True):
            if data is not None and data == loaded.stored:
                confirmed += cache.confirm(key, loaded, began)
            else:
                cache.discard(key, loaded)
    return confirmed


async def keep_rechecking(
    cache: WarmCache[LoadedSession], store: SessionStore, interval: float = RECHECK_INTERVAL
) -> None:
    """Re-check every ``interval`` until cancelled."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    failed = False
    while True:
        began = loop.time()
        try:
            await recheck(cache, store)
        except Exception as exc:  # the task must outlive any surprise; entries age out
            if not failed:  # the traceback once, then rate-limited lines
                log.exception("warm cache re-check failed; its entries age out meanwhile")
            else:
                log_fault(log, logging.ERROR, "warm cache re-check failed (%s)", type(exc).__name__)
            failed = True
        if task is not None and task.cancelling():
            # A cancel the Redis client swallowed (as in RedisStore._follow): stop now.
            raise asyncio.CancelledError
        await asyncio.sleep(max(0.0, began + interval - loop.time()))
