"""``hf-gateway sessions list|revoke``: look at and end sessions in a shared store.

Works on the store the configuration names (Redis). Revocation goes through the session
manager, so every running gateway process drops the session from its warm cache at once.
Session ids never leave the store (only their hashes are keys); sessions are shown and
chosen by a prefix of that hash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.app import build_store
from gateway.config import GatewayConfig
from gateway.session.manager import SessionManager
from gateway.session.model import RecordError, SessionKeys, SessionTimes, decode_record

MIN_ID_PREFIX = 8


class AdminError(Exception):
    """A request the administration verbs cannot carry out (wrong store, ambiguous id)."""


@dataclass(frozen=True, slots=True)
class SessionSummary:
    id: str
    """The first 16 hex digits of the session's store key (a hash of its id)."""
    key: str
    username: str
    sub: str
    orgs: tuple[str, ...]
    created_at: float
    last_seen: float
    expires_at: float


def _manager(config: GatewayConfig) -> SessionManager:
    if config.session.store == "memory":
        raise AdminError(
            "with store: memory the sessions live inside the gateway process; "
            "use store: redis to list or revoke them from outside"
        )
    return SessionManager(
        build_store(config),
        SessionKeys.derive([s.get_secret_value() for s in config.session.secret]),
        SessionTimes(
            config.session.idle_timeout,
            config.session.max_lifetime,
            config.session.revalidate_after,
        ),
    )


async def list_sessions(config: GatewayConfig, user: str | None = None) -> list[SessionSummary]:
    """Live sessions, newest first; ``user`` filters by username (any case) or sub."""
    manager = _manager(config)
    try:
        return await _summaries(manager, user)
    finally:
        await manager.store.close()


async def _summaries(manager: SessionManager, user: str | None) -> list[SessionSummary]:
    found = []
    now = time.time()
    for key in await manager.store.scan("s:"):
        data = await manager.store.get(key)
        if data is None:
            continue
        try:
            record = decode_record(data)
        except RecordError:
            continue
        identity = record.identity
        if user is not None and user.lower() not in (identity.username.lower(), identity.sub):
            continue
        if now >= record.expires_at:
            continue
        found.append(
            SessionSummary(
                id=key[2:18],
                key=key,
                username=identity.username,
                sub=identity.sub,
                orgs=tuple(o.slug for o in identity.counting_orgs),
                created_at=record.created_at,
                last_seen=record.last_seen,
                expires_at=record.expires_at,
            )
        )
    return sorted(found, key=lambda s: s.created_at, reverse=True)


async def revoke_sessions(
    config: GatewayConfig, *, user: str | None = None, session_id: str | None = None
) -> int:
    """End every session of ``user`` (username or sub), or the one session ``session_id``
    (a unique prefix of at least 8 hex digits, as ``list`` shows). Returns how many."""
    manager = _manager(config)
    try:
        if user is not None:
            subs = {s.sub for s in await _summaries(manager, user)} or {user}
            return sum([await manager.revoke_user(sub) for sub in sorted(subs)])
        if session_id is None or len(session_id) < MIN_ID_PREFIX:
            raise AdminError(f"give --user, or --id with at least {MIN_ID_PREFIX} characters")
        matches = [s for s in await _summaries(manager, None) if s.id.startswith(session_id)]
        if len(matches) > 1:
            raise AdminError(f"--id {session_id} matches {len(matches)} sessions; give more")
        for summary in matches:
            loaded = await manager.reload(summary.key)
            if loaded is not None:
                await manager.end(loaded)
        return len(matches)
    finally:
        await manager.store.close()
