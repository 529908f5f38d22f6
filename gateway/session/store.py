"""The SessionStore protocol: what the gateway needs from a key-value store.

Adapters move bytes and nothing else: the session logic (ids, expiry, encryption) lives
in session/model.py and session/manager.py. Keys are logical (``s:...``, ``p:...``);
adapters add their own prefix. Every method raises StoreError when the store fails, so
callers can fail closed with a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


class SessionStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent or expired."""
        ...

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values under ``keys``, in their order (None where absent or expired): one
        round trip where the store allows it. Not atomic across keys (a Cluster reads each
        slot on its own); each value is as it was at some moment after the call began."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (replacing any previous value)."""
        ...

    async def replace(self, key: str, value: bytes, ttl: float) -> bool:
        """Overwrite ``key`` only while it exists; False, and nothing written, once it is gone.

        Updates of a live session use this, so a write racing a logout or a revocation
        cannot bring the deleted session back.
        """
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        ...

    async def take(self, key: str) -> bytes | None:
        """Atomically read and delete ``key`` (single-use values such as pending logins)."""
        ...

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        """Add ``member`` to the set ``index`` and keep the set at least ``ttl`` seconds."""
        ...

    async def index_remove(self, index: str, member: str) -> None: ...

    async def index_members(self, index: str) -> list[str]: ...

    async def lock(self, key: str, ttl: float) -> str | None:
        """Take a short exclusive lock; a token when acquired, None when someone holds it."""
        ...

    async def unlock(self, key: str, token: str) -> None:
        """Release a lock taken with ``token`` (a lock that expired meanwhile is left alone)."""
        ...

    async def take_allowance(self, key: str, rate: float, burst: float) -> float:
        """Take one unit from the token bucket ``key``: ``burst`` units, refilled at
        ``rate`` per second, shared by every process using the store. 0.0 when a unit was
        taken, else the seconds until one will be there (nothing is taken then).

        Callers may pass a smaller ``burst`` for the same key: they stop while the bucket
        still holds the difference, which stays for callers passing the full burst (a
        reserve). Atomic; a bucket that has refilled completely leaves no key behind.
        """
        ...

    async def publish_invalidation(self, key: str) -> None:
        """Tell every process and replica sharing the store that ``key`` changed, so warm
        caches drop it. A store only one process can see may do nothing."""
        ...

    async def scan(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (for administration, not the request path)."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the store answers."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class InvalidationSource(Protocol):
    """A store whose writes can be watched from every process (Redis pub/sub)."""

    async def listen_invalidations(
        self, on_key: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """Run until cancelled: ``on_key(key)`` for each invalidation, ``on_state(True)``
        once listening, ``on_state(False)`` as soon as the channel fails (it reconnects)."""
        ...
