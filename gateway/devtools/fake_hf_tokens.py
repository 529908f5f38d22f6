"""Grants and the credentials issued from them: codes, access, refresh and device codes.

A :class:`Grant` is what a user approved for one app (scopes, orgs, nonce). Every
credential points at its grant, so a refresh keeps the original user, scopes and orgs.
Expiry is checked against the injected clock at lookup time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

Clock = Callable[[], float]

ACCESS_PREFIX = "hf_oauth_"
REFRESH_PREFIX = "hf_oauth__refresh_"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
ISSUED: set[str] = set()
"""Every code, device code and token any fake provider in this process issued: what a
test run's log scan looks for (tests/support/log_scan.py). Small: a few per sign-in."""


@dataclass(frozen=True)
class Grant:
    """One approval by ``username`` for ``client_id``."""

    username: str
    client_id: str
    scopes: tuple[str, ...]
    org_subs: frozenset[str]
    auth_time: int
    nonce: str | None = None

    @property
    def scope_string(self) -> str:
        """The space-separated ``scope`` of token responses."""
        return " ".join(self.scopes)

    def has(self, scope: str) -> bool:
        """True when ``scope`` was granted."""
        return scope in self.scopes


@dataclass(frozen=True)
class AuthCode:
    """An authorization code, bound to where it may be redeemed and by whom."""

    grant: Grant
    redirect_uri: str
    code_challenge: str | None
    expires_at: float


@dataclass(frozen=True)
class AccessToken:
    """An ``hf_oauth_`` access token."""

    grant: Grant
    issued_at: float
    expires_at: float


@dataclass(frozen=True)
class RefreshToken:
    """An ``hf_oauth__refresh_`` token: single use, rotated on every refresh."""

    grant: Grant
    expires_at: float


@dataclass
class DeviceCode:
    """A pending device authorization (RFC 8628); ``grant`` is set once a user approves."""

    client_id: str
    scopes: tuple[str, ...]
    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    grant: Grant | None = None
    denied: bool = False


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(challenge: str, verifier: str) -> bool:
    """True when ``verifier`` is well formed and hashes to ``challenge`` (constant time)."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(pkce_s256(verifier).encode(), challenge.encode())


class TokenStore:
    """All live credentials of one fake provider, keyed by their secret value."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._codes: dict[str, AuthCode] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._devices: dict[str, DeviceCode] = {}

    def new_code(self, code: AuthCode) -> str:
        """Store ``code`` and return its value."""
        value = secrets.token_urlsafe(24)
        ISSUED.add(value)
        self._codes[value] = code
        return value

    def take_code(self, value: str) -> AuthCode | None:
        """Remove and return the code; None if unknown, already used or expired."""
        code = self._codes.pop(value, None)
        if code is None or code.expires_at <= self._clock():
            return None
        return code

    def new_access(self, grant: Grant, lifetime: int) -> str:
        """Issue an access token valid for ``lifetime`` seconds."""
        value = ACCESS_PREFIX + secrets.token_urlsafe(32)
        ISSUED.add(value)
        now = self._clock()
        self._access[value] = AccessToken(grant, issued_at=now, expires_at=now + lifetime)
        return value

    def access(self, value: str) -> AccessToken | None:
        """The live access token ``value``; None if unknown, revoked or expired."""
        token = self._access.get(value)
        if token is None or token.expires_at <= self._clock():
            return None
        return token

    def new_refresh(self, grant: Grant, lifetime: int) -> str:
        """Issue a refresh token valid for ``lifetime`` seconds."""
        value = REFRESH_PREFIX + secrets.token_urlsafe(32)
        ISSUED.add(value)
        self._refresh[value] = RefreshToken(grant, expires_at=self._clock() + lifetime)
        return value

    def take_refresh(self, value: str) -> RefreshToken | None:
        """Remove and return the refresh token; None if unknown, used, revoked or expired."""
        token = self._refresh.pop(value, None)
        if token is None or token.expires_at <= self._clock():
            return None
        return token

    def new_device(
        self, client_id: str, scopes: tuple[str, ...], lifetime: int, interval: int
    ) -> tuple[str, DeviceCode]:
        """Start a device authorization; return its ``device_code`` and record."""
        value = secrets.token_urlsafe(32)
        ISSUED.add(value)
        user_code = "-".join(
            "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2)
        )
        device = DeviceCode(client_id, scopes, user_code, self._clock() + lifetime, interval)
        self._devices[value] = device
        return value, device

    def device(self, value: str) -> DeviceCode | None:
        """The device authorization ``value`` (expired ones too: the poller must learn it)."""
        return self._devices.get(value)

    def device_by_user_code(self, user_code: str) -> DeviceCode | None:
        """The live device authorization the user typed the code of, if any."""
        wanted = user_code.strip().upper()
        now = self._clock()
        for device in self._devices.values():
            if device.user_code == wanted and device.expires_at > now:
                return device
        return None

    def finish_device(self, value: str) -> None:
        """Forget a device authorization once its tokens are issued."""
        self._devices.pop(value, None)

    def revoke_user(self, username: str) -> None:
        """Invalidate every code, access and refresh token of ``username``."""
        _drop_user(self._codes, username)
        _drop_user(self._access, username)
        _drop_user(self._refresh, username)


class _HasGrant(Protocol):
    @property
    def grant(self) -> Grant: ...


_G = TypeVar("_G", bound=_HasGrant)


def _drop_user(store: dict[str, _G], username: str) -> None:
    for value in [v for v, record in store.items() if record.grant.username == username]:
        del store[value]
