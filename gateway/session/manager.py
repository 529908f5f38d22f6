"""Session lifecycle over any SessionStore: create, load, touch, rotate, destroy, revoke,
and the pending logins of the sign-in flow.

The record format, cookie signing and expiry rules live in session/model.py; this module
adds the store round trips. StoreError passes through so callers answer 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.identity import Identity
from gateway.providers.base import TokenSet
from gateway.session.cache import WarmCache
from gateway.session.model import (
    PENDING_LOGIN_TTL,
    PendingLogin,
    RecordError,
    SessionKeys,
    SessionRecord,
    SessionTimes,
    StoredTokens,
    absolute_expiry,
    decode_record,
    decrypt_tokens,
    encode_record,
    encrypt_tokens,
    new_session_id,
    open_pending,
    pending_remaining,
    seal_pending,
    session_expired,
    sign_cookie,
    store_key,
    store_ttl,
    used_login_key,
    user_index_key,
    verify_cookie,
)
from gateway.session.store import SessionStore
from gateway.singleflight import SingleFlight

VERIFIED_COOKIES = 65_536
"""Verified cookies remembered per process (then forgotten all at once)."""


def warm_entry_bytes(record_bytes: int) -> int:
    """The memory one warm-cache entry holds for a record of ``record_bytes``: the record's
    bytes, the decoded objects (strings, the identity, its orgs and scopes) and the cache's
    key and node. Measured with tracemalloc for records of 0 to 50 orgs (772 to 7,614
    bytes): 3.9 times the record plus about 220 bytes; rounded up here
    (docs/architecture.md, "Memory per process")."""
    return 4 * record_bytes + 256


@dataclass(frozen=True, slots=True)
class LoadedSession:
    key: str
    record: SessionRecord
    stored: bytes = b""
    """The record's bytes as read from the store ("" when written here)."""


class SessionManager:
    def __init__(
        self,
        store: SessionStore,
        keys: SessionKeys,
        times: SessionTimes,
        clock: Callable[[], float] = time.time,
        cache: WarmCache[LoadedSession] | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.times = times
        self._clock = clock
        self.cache = cache
        self._loading: SingleFlight[str, LoadedSession | None] = SingleFlight()
        """Store reads in flight: concurrent requests of one session share one read."""
        self._verified: dict[str, str] = {}
        """Cookie -> store key for cookies that verified: a pure function, so remembered
        instead of paying base64, HMAC and SHA-256 on every request."""
        self.on_change: Callable[[str], None] | None = None
        """Told of every session this process writes or deletes (open tunnels listen)."""

    # ------------------------------------------------------------------ sessions

    async def create(
        self, identity: Identity, tokens: TokenSet, *, previous_cookie: str | None = None
    ) -> str:
        """Store a new session and return its cookie value.

        The id is always new (login rotates it); a previous session of this browser is
        deleted so a fixated or stale id never becomes signed in.
        """
        if previous_cookie:
            await self.destroy(previous_cookie)
        now = self._clock()
        has_refresh = tokens.refresh_token is not None
        record = SessionRecord(
            identity=identity,
            tokens=encrypt_tokens(
                StoredTokens(tokens.access_token, tokens.refresh_token, tokens.expires_at),
                self.keys,
            ),
            created_at=now,
            last_seen=now,
            revalidated_at=now,
            expires_at=absolute_expiry(now, self.times, tokens.expires_at, has_refresh),
            has_refresh_token=has_refresh,
            access_expires_at=tokens.expires_at,
        )
        session_id = new_session_id()
        key = store_key(session_id)
        await self.save(key, record)
        await self.store.index_add(user_index_key(identity.sub), key, self.times.max_lifetime)
        return sign_cookie(session_id, self.keys)

    async def load(self, cookie: str | None) -> LoadedSession | None:
        """The live session behind a cookie, or None (bad cookie, unknown, ended)."""
        key = self.key_for(cookie)
        if key is None:
            return None
        cached = self.cache.get(key) if self.cache else None
        if cached is not None and session_expired(cached.record, self._clock(), self.times) is None:
            return cached
        if self.cache is None:
            return await self._read(key)
        # Another request of this session may be reading it right now: share that read,
        # unless any session changed since it began (it might predate a logout).
        return await self._loading.run(key, lambda: self._read(key), tag=self.cache.epoch)

    async def _read(self, key: str) -> LoadedSession | None:
        epoch = self.cache.epoch if self.cache else 0
        began = self.cache.now() if self.cache else 0.0  # max_age counts from here
        data = await self.store.get(key)
        if data is None:
            return None
        last = self.cache.last(key) if self.cache else None
        if last is not None and last.stored == data:
            # The same bytes as last time: keep the same objects, so the decisions and
            # rendered headers remembered for this identity stay valid.
            record = last.record
        else:
            try:
                record = decode_record(data)
            except RecordError:
                await self.store.delete(key)
                await self._changed(key)
                return None
        if session_expired(record, self._clock(), self.times) is not None:
            await self._forget(key, record.identity.sub)
            return None
        loaded = (
            last if last is not None and last.record is record else LoadedSession(key, record, data)
        )
        if self.cache:
            self.cache.put(key, loaded, epoch, warm_entry_bytes(len(data)), began)
        return loaded

    def key_for(self, cookie: str | None) -> str | None:
        """The store key of a validly signed cookie, else None."""
        if not cookie:
            return None
        key = self._verified.get(cookie)
        if key is not None:
            return key
        session_id = verify_cookie(cookie, self.keys)
        if session_id is None:
            return None
        key = store_key(session_id)
        if len(self._verified) >= VERIFIED_COOKIES:
            self._verified.clear()
        self._verified[cookie] = key
        return key

    async def _changed(self, key: str) -> None:
        """A session was written or deleted: drop it here and on every other process."""
        if self.cache:
            self.cache.invalidate(key)
        if self.on_change is not None:
            self.on_change(key)
        await self.store.publish_invalidation(key)

    async def save(self, key: str, record: SessionRecord) -> None:
        ttl = store_ttl(record, self._clock(), self.times)
        await self.store.set(key, encode_record(record), ttl)
        await self._changed(key)

    async def _rewrite(
        self, key: str, change: Callable[[SessionRecord], SessionRecord]
    ) -> LoadedSession | None:
        """Apply ``change`` to the session as it is in the store now and write it back;
        None when the session is gone.

        Read-modify-write on the stored record, not on the caller's copy: that copy may be a
        second old (warm cache) or from before another request rotated the refresh token,
        and writing it back would revert newer tokens. Only overwrites: a request that
        loaded the session before a logout or revocation must not re-create it.
        """
        current = await self.reload(key)
        if current is None:
            return None
        record = change(current.record)
        ttl = store_ttl(record, self._clock(), self.times)
        replaced = await self.store.replace(key, encode_record(record), ttl)
        await self._changed(key)
        return LoadedSession(key, record) if replaced else None

    async def touch(self, loaded: LoadedSession) -> LoadedSession | None:
        """Record activity (last_seen); None when the session ended meanwhile."""
        now = self._clock()
        return await self._rewrite(loaded.key, lambda record: record.touched(now))

    async def update(
        self, loaded: LoadedSession, identity: Identity, tokens: TokenSet | None
    ) -> LoadedSession | None:
        """Store a revalidated identity (and refreshed tokens, if any); None when the
        session ended meanwhile."""
        now = self._clock()

        def revalidated(record: SessionRecord) -> SessionRecord:
            record = replace(record, identity=identity, revalidated_at=now, last_seen=now)
            return self._with_tokens(record, tokens) if tokens is not None else record

        return await self._rewrite(loaded.key, revalidated)

    async def store_tokens(self, loaded: LoadedSession, tokens: TokenSet) -> LoadedSession | None:
        """Store refreshed tokens at once, before the identity is re-read; None when the
        session ended meanwhile.

        Refresh tokens are single use: the rotated one must be in the store before the
        refresh lock is released (and even if the userinfo call that follows fails), or
        the next refresh would send the spent token and end the session.
        """
        return await self._rewrite(loaded.key, lambda record: self._with_tokens(record, tokens))

    def _with_tokens(self, record: SessionRecord, tokens: TokenSet) -> SessionRecord:
        has_refresh = tokens.refresh_token is not None
        return replace(
            record,
            tokens=encrypt_tokens(
                StoredTokens(tokens.access_token, tokens.refresh_token, tokens.expires_at),
                self.keys,
            ),
            has_refresh_token=has_refresh,
            access_expires_at=tokens.expires_at,
            expires_at=absolute_expiry(
                record.created_at, self.times, tokens.expires_at, has_refresh
            ),
        )

    def tokens(self, record: SessionRecord) -> StoredTokens:
        return decrypt_tokens(record.tokens, self.keys)

    async def reload(self, key: str) -> LoadedSession | None:
        data = await self.store.get(key)
        if data is None:
            return None
        try:
            return LoadedSession(key, decode_record(data))
        except RecordError:
            return None

    async def destroy(self, cookie: str | None) -> Identity | None:
        """Delete the session behind a cookie server-side; its identity, if there was one."""
        session_id = verify_cookie(cookie, self.keys)
        if session_id is None:
            return None
        key = store_key(session_id)
        loaded = await self.reload(key)
        if loaded is None:
            await self.store.delete(key)
            await self._changed(key)
            return None
        await self._forget(key, loaded.record.identity.sub)
        return loaded.record.identity

    async def end(self, loaded: LoadedSession) -> None:
        await self._forget(loaded.key, loaded.record.identity.sub)

    async def revoke_user(self, sub: str) -> int:
        """Delete every session of a user; how many there were."""
        index = user_index_key(sub)
        count = 0
        for key in await self.store.index_members(index):
            count += await self.store.delete(key)
            await self._changed(key)
            await self.store.index_remove(index, key)
        return count

    async def _forget(self, key: str, sub: str) -> None:
        await self.store.delete(key)
        await self._changed(key)
        await self.store.index_remove(user_index_key(sub), key)

    # ------------------------------------------------------------------ pending logins
    #
    # A pending login lives sealed in the browser's binding cookie, not in the store, so
    # anonymous requests for /_gateway/login cost the store nothing. Single use is kept by
    # a marker per state, written only after the provider accepted the code.

    def begin_login(self, pending: PendingLogin) -> str:
        """The binding-cookie value that carries ``pending`` (sealed; nothing is stored)."""
        return seal_pending(pending, self.keys)

    def open_login(self, sealed: str) -> PendingLogin | None:
        """The pending login sealed in ``sealed`` while it is fresh, else None (forged,
        altered, sealed with a retired secret, expired). The caller compares its state."""
        try:
            pending = open_pending(sealed, self.keys)
        except RecordError:
            return None
        if pending_remaining(pending, self._clock()) <= 0:
            return None
        return pending

    async def login_used(self, state: str) -> bool:
        """Whether a login with ``state`` has already finished (checked before the code is
        redeemed, so a replayed callback never reaches the provider)."""
        return await self.store.get(used_login_key(state)) is not None

    async def finish_login(self, pending: PendingLogin) -> bool:
        """Mark ``pending``'s state used for the rest of its life; False when it already
        was (a replay, or a racing callback won). Atomic: SET NX through the store's lock,
        a marker of a few bytes that is never released, only expires."""
        remaining = min(pending_remaining(pending, self._clock()), PENDING_LOGIN_TTL)
        if remaining <= 0:
            return False
        return await self.store.lock(used_login_key(pending.state), remaining) is not None
