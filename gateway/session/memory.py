"""In-process SessionStore: the single-process development default.

Values expire by the injected clock. Nothing is shared between processes, which is why
the configuration refuses ``store: memory`` with ``workers > 1``.
"""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Callable


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[bytes, float]] = {}
        self._sets: dict[str, tuple[builtins.set[str], float]] = {}

    def _expired(self, deadline: float) -> bool:
        return self._clock() >= deadline

    async def get(self, key: str) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if self._expired(entry[1]):
            del self._values[key]
            return None
        return entry[0]

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._values[key] = (value, self._clock() + ttl)
        self._sweep()

    async def replace(self, key: str, value: bytes, ttl: float) -> bool:
        if await self.get(key) is None:
            return False
        await self.set(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        found = await self.get(key) is not None
        self._values.pop(key, None)
        return found

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)
        self._values.pop(key, None)
        return value

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        members, deadline = self._live_set(index)
        members.add(member)
        self._sets[index] = (members, max(deadline, self._clock() + ttl))

    async def index_remove(self, index: str, member: str) -> None:
        members, _ = self._live_set(index)
        members.discard(member)

    async def index_members(self, index: str) -> list[str]:
        return sorted(self._live_set(index)[0])

    def _live_set(self, index: str) -> tuple[builtins.set[str], float]:
        entry = self._sets.get(index)
        if entry is None or self._expired(entry[1]):
            entry = (builtins.set(), 0.0)
            self._sets[index] = entry
        return entry

    async def lock(self, key: str, ttl: float) -> str | None:
        if await self.get(key) is not None:
            return None
        token = secrets.token_hex(16)
        await self.set(key, token.encode(), ttl)
        return token

    async def unlock(self, key: str, token: str) -> None:
        if await self.get(key) == token.encode():
            self._values.pop(key, None)

    async def take_allowance(self, key: str, rate: float, burst: float) -> float:
        # The bucket is the moment it will be full again (GCRA), kept until that moment.
        now = self._clock()
        entry = self._values.get(key)
        full_at = float(entry[0]) if entry is not None and not self._expired(entry[1]) else now
        after = max(full_at, now) + 1.0 / rate
        wait = (after - now) - burst / rate
        if wait > 1e-6:  # float rounding must not cost the last unit of a burst
            return wait
        self._values[key] = (repr(after).encode(), after)
        self._sweep()
        return 0.0

    async def publish_invalidation(self, key: str) -> None:
        """Nothing to tell: no other process can see this store."""
        del key

    async def scan(self, prefix: str) -> list[str]:
        return sorted(
            key
            for key, (_, deadline) in self._values.items()
            if key.startswith(prefix) and not self._expired(deadline)
        )

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._values.clear()
        self._sets.clear()

    def _sweep(self) -> None:
        """Drop expired values now and then so an idle gateway does not grow forever."""
        if len(self._values) % 256:
            return
        now = self._clock()
        for key in [k for k, (_, deadline) in self._values.items() if now >= deadline]:
            del self._values[key]
