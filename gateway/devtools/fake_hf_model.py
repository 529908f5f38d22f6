"""The fake provider's world: users, orgs, OAuth apps and the runtime switches.

Plain mutable data: tests change it between requests. Loading and checking fixtures
lives in ``fake_hf_fixture``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

KNOWN_SCOPES: frozenset[str] = frozenset(
    {
        "openid",
        "profile",
        "email",
        "read-billing",
        "read-memberships",
        "read-repos",
        "gated-repos",
        "contribute-repos",
        "write-repos",
        "manage-repos",
        "read-collections",
        "write-collections",
        "inference-api",
        "read-endpoints",
        "write-endpoints",
        "jobs",
        "webhooks",
        "write-discussions",
        "read-mcp",
    }
)
"""Scopes Hugging Face documents (HF-OAUTH.md §1.3); the fake drops any other scope."""

TOKEN_ROLES: frozenset[str] = frozenset({"read", "write", "fineGrained"})
"""Roles of personal access tokens (``auth.accessToken.role`` in whoami-v2)."""

TAMPER_MODES: frozenset[str] = frozenset({"nonce", "aud", "iss", "signature", "expired"})
"""Values of :attr:`FakeSettings.id_token_tamper` besides None."""

LOOPBACK_HOSTS: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts for which an ``http`` redirect URI may use any port (RFC 8252 §7.3)."""


@dataclass
class FakeOrg:
    """An organization: ``slug`` is the handle, ``name`` the display name."""

    sub: str
    slug: str
    name: str
    plan: str | None = None
    can_pay: bool = False


@dataclass
class FakeUser:
    """A Hugging Face account.

    ``roles`` maps org slug to ``roleInOrg`` (any string, ``no_access`` included): every
    key is a membership. ``access_tokens`` maps a personal token (``hf_...``) to its role.
    """

    sub: str
    username: str
    name: str
    email: str
    email_verified: bool = True
    is_pro: bool = False
    roles: dict[str, str] = field(default_factory=dict)
    security_restrictions: dict[str, list[str]] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict)
    website: str = ""
    can_pay: bool = False


@dataclass
class FakeClient:
    """A registered OAuth app.

    ``client_secret`` None makes a public (PKCE) client. ``scopes`` None enables every
    known scope; otherwise requests for other scopes are silently narrowed.
    """

    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    scopes: list[str] | None = None
    name: str | None = None

    @property
    def is_public(self) -> bool:
        """True for an app without a secret (it must use PKCE)."""
        return self.client_secret is None

    @property
    def display_name(self) -> str:
        """What the consent page calls the app."""
        return self.name or self.client_id

    def allows_redirect_uri(self, candidate: str) -> bool:
        """True if ``candidate`` exactly matches a registered URI, or differs only in port
        from a registered ``http`` loopback URI (same host spelling, path and query)."""
        return any(redirect_uri_matches(uri, candidate) for uri in self.redirect_uris)

    def grantable_scopes(self, requested: Iterable[str]) -> tuple[str, ...]:
        """The requested scopes the app may get, in request order, without duplicates."""
        enabled = KNOWN_SCOPES if self.scopes is None else KNOWN_SCOPES & set(self.scopes)
        return tuple(dict.fromkeys(s for s in requested if s in enabled))


@dataclass
class FakeSettings:
    """Runtime switches. Tests may flip any of them between two requests.

    The first block is the public contract; the second covers HF-OAUTH.md §12's open
    questions and timings so tests can pick a variant.
    """

    expires_in: int = 28800
    issue_refresh_tokens: bool = True
    id_token_kid: bool = False
    auto_login: str | None = None
    deny: bool = False
    id_token_tamper: str | None = None
    userinfo_omit_orgs: bool = False
    whoami_rate_limited: bool = False
    require_pkce: bool = False
    userinfo_status: int | None = None
    token_status: int | None = None
    """Answer ``/oauth/token`` with this status instead (429 with HF's RateLimit headers)."""

    refresh_expires_in: int = 90 * 86400
    code_expires_in: int = 600
    id_token_on_refresh: bool = True
    accept_client_secret_post: bool = False
    invalid_client_status: int = 401
    authorization_response_iss: bool = False
    device_expires_in: int = 300
    device_interval: int = 5
    discovery_overrides: dict[str, Any] = field(default_factory=dict)


def redirect_uri_matches(registered: str, candidate: str) -> bool:
    """Apply HF's redirect-URI rule (HF-OAUTH.md §2) to one registered URI."""
    if candidate == registered:
        return True
    reg, cand = _split(registered), _split(candidate)
    if reg is None or cand is None or reg.scheme != "http" or cand.scheme != "http":
        return False
    if reg.hostname not in LOOPBACK_HOSTS or cand.hostname != reg.hostname:
        return False
    return (reg.username, reg.password, reg.path, reg.query, reg.fragment) == (
        cand.username,
        cand.password,
        cand.path,
        cand.query,
        cand.fragment,
    )


def _split(uri: str) -> SplitResult | None:
    """``urlsplit`` without dot-segment normalisation; None if the port is malformed."""
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        return None
    return parts
