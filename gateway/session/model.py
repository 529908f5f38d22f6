"""Session records, pending logins and cookies: encode, decode, sign, verify. Pure.

Cookie: ``v1.<b64url 32-byte id>.<b64url HMAC-SHA256>``. The store key is a hash of
the id, so a dump of the store yields no usable cookie. Provider tokens are encrypted
at rest (AES-256-GCM) with a key derived from ``session.secret``; every key is derived
with HKDF under its own label, and a list of secrets rotates (the first signs, all verify).
A pending login is sealed (AES-256-GCM under its own key) into the browser's login-binding
cookie, so nothing is stored for a login until it comes back from the provider.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.identity import Identity

COOKIE_VERSION = "v1"
RECORD_VERSION = 1
SESSION_ID_BYTES = 32
MAX_COOKIE_LENGTH = 256
TOUCH_INTERVAL = 60.0
"""last_seen is written at most this often (seconds)."""
PENDING_LOGIN_TTL = 600
"""Pending logins and the login-binding cookie live 10 minutes."""
MAX_SEALED_LOGIN = 1800
"""Characters of one sealed pending login (one binding cookie's value). Four of them and
the session cookie stay under the 8 KiB a proxy in front commonly allows per header line."""


class RecordError(ValueError):
    """A stored record could not be read (corrupt, foreign version, wrong key)."""


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Keys derived from ``session.secret``; index 0 signs / encrypts, all verify / decrypt."""

    cookie: tuple[bytes, ...]
    tokens: tuple[bytes, ...]
    login: tuple[bytes, ...]
    """Seals pending logins into the login-binding cookie."""

    @classmethod
    def derive(cls, secrets_: Sequence[str]) -> SessionKeys:
        if not secrets_:
            raise ValueError("at least one session secret is required")
        return cls(
            cookie=tuple(_hkdf(s, b"hf-gateway/v1/cookie") for s in secrets_),
            tokens=tuple(_hkdf(s, b"hf-gateway/v1/tokens-at-rest") for s in secrets_),
            login=tuple(_hkdf(s, b"hf-gateway/v1/pending-login-seal") for s in secrets_),
        )


def _hkdf(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret.encode())


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def b64d(text: str) -> bytes:
    """Strict base64url decoding without padding; raises ValueError.

    Only the canonical encoding of a value is accepted. The standard decoder silently
    skips characters outside the alphabet and ignores unused trailing bits, which made
    ``<cookie>!!!!`` verify as the same session: every value must have one spelling.
    """
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if b64e(data) != text:
        raise ValueError("not canonical base64url")
    return data


# --------------------------------------------------------------------------- cookies


def new_session_id() -> bytes:
    return secrets.token_bytes(SESSION_ID_BYTES)


def sign_cookie(session_id: bytes, keys: SessionKeys) -> str:
    body = f"{COOKIE_VERSION}.{b64e(session_id)}"
    return f"{body}.{b64e(_mac(keys.cookie[0], body))}"


def verify_cookie(value: str | None, keys: SessionKeys) -> bytes | None:
    """The session id inside a valid cookie, or None (malformed, forged or foreign)."""
    if not value or len(value) > MAX_COOKIE_LENGTH or not value.isascii():
        return None
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != COOKIE_VERSION:
        return None
    body = f"{parts[0]}.{parts[1]}"
    try:
        session_id, tag = b64d(parts[1]), b64d(parts[2])
    except ValueError:
        return None
    if len(session_id) != SESSION_ID_BYTES:
        return None
    # Check every key (no early exit) so timing does not reveal which one matched.
    matched = False
    for key in keys.cookie:
        matched |= hmac.compare_digest(_mac(key, body), tag)
    return session_id if matched else None


def _mac(key: bytes, body: str) -> bytes:
    return hmac.digest(key, body.encode("ascii"), "sha256")


def store_key(session_id: bytes) -> str:
    """The store key of a session: a hash, so the store never holds a usable id."""
    return "s:" + hashlib.sha256(session_id).hexdigest()


def user_index_key(sub: str) -> str:
    return "u:" + hashlib.sha256(sub.encode()).hexdigest()


def used_login_key(state: str) -> str:
    """The store key that marks a login's state as used (a hash: the state stays unknown).
    Not ``p:``, where earlier versions kept whole pending logins, so replicas of both
    versions sharing Redis during an upgrade never read each other's values."""
    return "used:" + hashlib.sha256(state.encode()).hexdigest()


def lock_key(session_key: str) -> str:
    return "l:" + session_key


# --------------------------------------------------------------------------- tokens at rest


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """Provider tokens kept with a session (encrypted in the record)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None


def encrypt_tokens(tokens: StoredTokens, keys: SessionKeys) -> str:
    plain = json.dumps(
        {"a": tokens.access_token, "r": tokens.refresh_token, "e": tokens.expires_at}
    ).encode()
    nonce = os.urandom(12)
    return b64e(nonce + AESGCM(keys.tokens[0]).encrypt(nonce, plain, b"hf-gateway tokens"))


def decrypt_tokens(blob: str, keys: SessionKeys) -> StoredTokens:
    try:
        raw = b64d(blob)
    except ValueError as exc:
        raise RecordError("token blob is not base64url") from exc
    nonce, sealed = raw[:12], raw[12:]
    for key in keys.tokens:
        try:
            data = json.loads(AESGCM(key).decrypt(nonce, sealed, b"hf-gateway tokens"))
        except (InvalidTag, ValueError):
            continue
        return StoredTokens(access_token=data["a"], refresh_token=data["r"], expires_at=data["e"])
    raise RecordError("tokens cannot be decrypted with any configured secret")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What the store keeps for one session. Times are Unix seconds.

    ``expires_at`` is the absolute end: max_lifetime after creation, or the access
    token's expiry when there is no refresh token to renew it with.
    """

    identity: Identity
    tokens: str  # encrypted StoredTokens
    created_at: float
    last_seen: float
    revalidated_at: float
    expires_at: float
    has_refresh_token: bool = False
    access_expires_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def touched(self, now: float) -> SessionRecord:
        return replace(self, last_seen=now)


def encode_record(record: SessionRecord) -> bytes:
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "identity": record.identity.to_json(),
            "tokens": record.tokens,
            "created_at": record.created_at,
            "last_seen": record.last_seen,
            "revalidated_at": record.revalidated_at,
            "expires_at": record.expires_at,
            "has_refresh_token": record.has_refresh_token,
            "access_expires_at": record.access_expires_at,
            "extra": record.extra,
        },
        separators=(",", ":"),
    ).encode()


def decode_record(data: bytes) -> SessionRecord:
    try:
        raw = json.loads(data)
        if raw.get("v") != RECORD_VERSION:
            raise RecordError(f"unsupported record version {raw.get('v')!r}")
        return SessionRecord(
            identity=Identity.from_json(raw["identity"]),
            tokens=str(raw["tokens"]),
            created_at=float(raw["created_at"]),
            last_seen=float(raw["last_seen"]),
            revalidated_at=float(raw["revalidated_at"]),
            expires_at=float(raw["expires_at"]),
            has_refresh_token=bool(raw.get("has_refresh_token", False)),
            access_expires_at=raw.get("access_expires_at"),
            extra=dict(raw.get("extra") or {}),
        )
    except RecordError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordError("corrupt session record") from exc


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """The session lifetime settings, in seconds."""

    idle_timeout: int
    max_lifetime: int
    revalidate_after: int


def session_expired(record: SessionRecord, now: float, times: SessionTimes) -> str | None:
    """Why a session has ended ("idle", "expired"), or None while it is valid."""
    if now >= record.expires_at:
        return "expired"
    if now - record.last_seen >= times.idle_timeout:
        return "idle"
    return None


def absolute_expiry(
    created_at: float, times: SessionTimes, access_expires_at: float | None, has_refresh: bool
) -> float:
    """max_lifetime, cut short by the access token's expiry when it cannot be refreshed."""
    end = created_at + times.max_lifetime
    if access_expires_at is not None and not has_refresh:
        end = min(end, access_expires_at)
    return end


def store_ttl(record: SessionRecord, now: float, times: SessionTimes) -> int:
    """How long the store should keep the record: until idle timeout or the absolute end."""
    remaining = min(record.last_seen + times.idle_timeout, record.expires_at) - now
    return max(1, math.ceil(remaining))


def needs_touch(record: SessionRecord, now: float, times: SessionTimes | None = None) -> bool:
    """Whether to write last_seen now: at most once per TOUCH_INTERVAL.

    With ``times``, the interval shrinks to a quarter of a short idle_timeout: otherwise a
    session with idle_timeout below a minute would end while its user is still active,
    because the activity was never recorded.
    """
    interval = TOUCH_INTERVAL
    if times is not None:
        interval = min(TOUCH_INTERVAL, times.idle_timeout / 4)
    return now - record.last_seen >= interval


def needs_revalidation(record: SessionRecord, now: float, times: SessionTimes) -> bool:
    return now - record.revalidated_at >= times.revalidate_after


# --------------------------------------------------------------------------- pending logins


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login in flight: sealed into the browser's binding cookie for 10 minutes.

    ``state`` is what the provider hands back; the callback accepts the sealed login only
    with that state, only from the browser holding the cookie, and only once.
    """

    state: str
    code_verifier: str
    nonce: str
    redirect_to: str
    created_at: float
    scopes: tuple[str, ...] = ()
    org_ids: tuple[str, ...] = ()


_SEAL_LABEL = b"hf-gateway pending login v1"


def seal_pending(pending: PendingLogin, keys: SessionKeys) -> str:
    """``pending`` encrypted and authenticated for the binding cookie (base64url)."""
    plain = json.dumps(
        {
            "v": RECORD_VERSION,
            "s": pending.state,
            "c": pending.code_verifier,
            "n": pending.nonce,
            "r": pending.redirect_to,
            "t": round(pending.created_at, 3),
            "sc": list(pending.scopes),
            "o": list(pending.org_ids),
        },
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(12)
    return b64e(nonce + AESGCM(keys.login[0]).encrypt(nonce, plain, _SEAL_LABEL))


def open_pending(sealed: str, keys: SessionKeys) -> PendingLogin:
    """The pending login inside a value made by seal_pending; RecordError if it is not one
    (forged, altered, truncated, another secret, another version)."""
    if not sealed or len(sealed) > MAX_SEALED_LOGIN or not sealed.isascii():
        raise RecordError("not a sealed login")
    try:
        raw = b64d(sealed)
    except ValueError as exc:
        raise RecordError("sealed login is not base64url") from exc
    nonce, box = raw[:12], raw[12:]
    for key in keys.login:
        try:
            plain = AESGCM(key).decrypt(nonce, box, _SEAL_LABEL)
        except (InvalidTag, ValueError):
            continue
        return _decode_pending(plain)
    raise RecordError("sealed login opens with no configured secret")


def _decode_pending(plain: bytes) -> PendingLogin:
    try:
        raw = json.loads(plain)
        if raw.get("v") != RECORD_VERSION:
            raise RecordError("unsupported pending login version")
        pending = PendingLogin(
            state=raw["s"],
            code_verifier=raw["c"],
            nonce=raw["n"],
            redirect_to=raw["r"],
            created_at=float(raw["t"]),
            scopes=tuple(raw["sc"]),
            org_ids=tuple(raw["o"]),
        )
    except RecordError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordError("corrupt pending login") from exc
    texts = (pending.state, pending.code_verifier, pending.nonce, pending.redirect_to)
    if not all(isinstance(t, str) for t in (*texts, *pending.scopes, *pending.org_ids)):
        raise RecordError("corrupt pending login")
    return pending


def pending_remaining(pending: PendingLogin, now: float) -> float:
    """Seconds the pending login stays valid (0 or less once it has expired)."""
    return pending.created_at + PENDING_LOGIN_TTL - now


def new_state() -> str:
    return b64e(secrets.token_bytes(32))


def new_nonce() -> str:
    return b64e(secrets.token_bytes(32))


def new_code_verifier() -> str:
    """A PKCE code verifier: 43+ characters from the unreserved set (RFC 7636)."""
    return b64e(secrets.token_bytes(48))
