"""From a request's session cookie to a current Identity.

Every ``revalidate_after`` the identity is re-read from the provider's userinfo, so an
org removal or role change takes effect; an expiring access token is refreshed first
(under a store lock, because HF's refresh tokens are single use). A provider that says
the token is dead ends the session. Concurrent requests of one session share a single
revalidation in this process.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from gateway.errors import ProviderUnavailable, StoreError, TokenRejected
from gateway.identity import Identity
from gateway.metrics import REFRESHES_BY_RESULT as REFRESHED
from gateway.metrics import REVALIDATIONS_BY_RESULT as REVALIDATED
from gateway.providers.base import TokenSet
from gateway.session.manager import LoadedSession
from gateway.session.model import StoredTokens, lock_key, needs_revalidation, needs_touch
from gateway.singleflight import SingleFlight
from gateway.web.context import GatewayContext

log = logging.getLogger(__name__)

REFRESH_MARGIN = 300.0
"""Refresh an access token this many seconds before it expires."""
LOCK_TTL = 15.0
LOCK_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Resolved:
    identity: Identity | None
    session: LoadedSession | None = None


class SessionResolver:
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._revalidations: SingleFlight[str, LoadedSession | None] = SingleFlight()

    async def resolve(self, cookie: str | None, *, touch: bool = True) -> Resolved:
        """The identity behind a cookie; StoreError / ProviderUnavailable propagate (503).

        ``touch=False`` leaves last_seen alone (a check that is not the user's activity).
        """
        if not cookie:
            return Resolved(None)
        sessions = self._ctx.sessions
        loaded = await sessions.load(cookie)
        if loaded is None:
            return Resolved(None)
        now = self._ctx.clock()
        if needs_revalidation(loaded.record, now, sessions.times):
            loaded = await self._revalidate_once(loaded)
            if loaded is None:
                return Resolved(None)
        elif touch and needs_touch(loaded.record, now, sessions.times):
            touched = await sessions.touch(loaded)
            if touched is None:  # signed out or revoked since it was loaded
                return Resolved(None)
            loaded = touched
        return Resolved(loaded.record.identity, loaded)

    async def _revalidate_once(self, loaded: LoadedSession) -> LoadedSession | None:
        """Share one revalidation among concurrent requests of the same session."""
        return await self._revalidations.run(loaded.key, lambda: self._counted(loaded))

    async def _counted(self, loaded: LoadedSession) -> LoadedSession | None:
        """One revalidation, whose failures to reach the provider or the store are counted
        here (the outcomes it reaches are counted where they are decided)."""
        try:
            return await self._revalidate(loaded)
        except ProviderUnavailable:
            REVALIDATED["provider_unavailable"].inc()
            raise
        except StoreError:
            REVALIDATED["store_unavailable"].inc()
            raise

    async def _revalidate(self, loaded: LoadedSession) -> LoadedSession | None:
        sessions = self._ctx.sessions
        stored = sessions.tokens(loaded.record)
        refreshed: TokenSet | None = None
        now = self._ctx.clock()
        if stored.refresh_token is None:
            # Nothing to refresh with: the token serves until it really expires (the
            # record's expires_at ends the session then), not REFRESH_MARGIN earlier.
            if stored.expires_at is not None and stored.expires_at <= now:
                await sessions.end(loaded)
                REVALIDATED["expired"].inc()
                return None
        elif _expiring(stored, now):
            outcome = await self._refresh(loaded)
            if outcome is None or isinstance(outcome, LoadedSession):
                REVALIDATED["ok" if outcome is not None else "refresh_failed"].inc()
                return outcome
            refreshed = outcome
        tokens = refreshed or TokenSet(
            stored.access_token,
            stored.refresh_token,
            stored.expires_at,
            loaded.record.identity.scopes,
        )
        try:
            identity = await self._ctx.provider.fetch_identity(tokens)
        except TokenRejected:
            log.info("provider rejected the access token; ending the session")
            await sessions.end(loaded)
            REVALIDATED["token_rejected"].inc()
            return None
        if identity.sub != loaded.record.identity.sub:
            await sessions.end(loaded)
            REVALIDATED["user_changed"].inc()
            return None
        updated = await sessions.update(loaded, identity, refreshed)
        REVALIDATED["ok" if updated is not None else "gone"].inc()
        return updated

    async def _refresh(self, loaded: LoadedSession) -> TokenSet | LoadedSession | None:
        """Refresh under a lock. Returns new tokens, or the session another process
        already refreshed, or None when the refresh token no longer works."""
        try:
            return await self._refresh_locked(loaded)
        except _StillRefreshing:
            raise
        except ProviderUnavailable:
            REFRESHED["unavailable"].inc()
            raise

    async def _refresh_locked(self, loaded: LoadedSession) -> TokenSet | LoadedSession | None:
        sessions = self._ctx.sessions
        store = sessions.store
        lock = lock_key(loaded.key)
        token = await store.lock(lock, LOCK_TTL)
        if token is None:
            return await self._wait_for_other_refresh(loaded)
        try:
            current = await sessions.reload(loaded.key)
            if current is None:
                REFRESHED["gone"].inc()
                return None
            stored = sessions.tokens(current.record)
            if not _expiring(stored, self._ctx.clock()):
                REFRESHED["by_other"].inc()
                return current  # refreshed by someone else just before we took the lock
            if stored.refresh_token is None:
                await sessions.end(current)
                REFRESHED["rejected"].inc()
                return None
            try:
                tokens = await self._ctx.provider.refresh(
                    stored.refresh_token, current.record.identity.scopes, self._ctx.clock()
                )
            except TokenRejected:
                log.info("refresh token rejected; ending the session")
                await sessions.end(current)
                REFRESHED["rejected"].inc()
                return None
            # Save the rotated tokens while still holding the lock: the old refresh token
            # is spent, and whoever takes the lock next must find the new one.
            if await sessions.store_tokens(current, tokens) is None:
                REFRESHED["gone"].inc()
                return None  # signed out or revoked while refreshing
            REFRESHED["ok"].inc()
            return tokens
        finally:
            await store.unlock(lock, token)

    async def _wait_for_other_refresh(self, loaded: LoadedSession) -> LoadedSession | None:
        sessions = self._ctx.sessions
        deadline = self._ctx.clock() + LOCK_WAIT
        while self._ctx.clock() < deadline:
            await asyncio.sleep(0.1)
            current = await sessions.reload(loaded.key)
            if current is None:
                REFRESHED["gone"].inc()
                return None
            if current.record.revalidated_at > loaded.record.revalidated_at:
                REFRESHED["by_other"].inc()
                return current
        REFRESHED["lock_timeout"].inc()
        raise _StillRefreshing("another request is still refreshing this session's tokens")


class _StillRefreshing(ProviderUnavailable):
    """Counted as a lock timeout already, not as the provider being unavailable."""


def _expiring(tokens: StoredTokens, now: float) -> bool:
    return tokens.expires_at is not None and tokens.expires_at - REFRESH_MARGIN <= now


RESOLVER = web.AppKey("session_resolver", SessionResolver)
