"""Everything a request handler needs, built once per app and held under one AppKey.

Handlers depend on the SessionStore and Provider protocols through this object, never
on Redis or Hugging Face; only app.py chooses the concrete adapters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.access import AccessControl
from gateway.assertion import AssertionCache, AssertionSigner
from gateway.config import GatewayConfig
from gateway.headers import IdentityHeaders, TrustedProxies
from gateway.providers.base import Provider
from gateway.routing import RedirectPolicy
from gateway.session.manager import SessionManager
from gateway.web.tunnels import TunnelRegistry
from gateway.web.upstream_identity import UpstreamIdentity

if TYPE_CHECKING:
    from gateway.web.proxy import UpstreamClient

LOGIN_COOKIE = "hf_gateway_login"
"""Base name of the login-binding cookies (DESIGN §6)."""
LOGIN_SLOTS = 4
"""Logins one browser may have in flight at once, one binding cookie each:
``hf_gateway_login``, ``hf_gateway_login_2`` ... ``hf_gateway_login_4``."""
GATEWAY_PREFIX = "/_gateway"
STATIC_PREFIX = GATEWAY_PREFIX + "/static"


def login_cookie_names(*, secure: bool) -> tuple[str, ...]:
    """The binding-cookie names, one per login slot: ``__Host-`` prefixed on https, so a
    sibling subdomain cannot plant one (the callback is always on public_url's host)."""
    prefix = "__Host-" if secure else ""
    suffixes = ("", *(f"_{n}" for n in range(2, LOGIN_SLOTS + 1)))
    return tuple(f"{prefix}{LOGIN_COOKIE}{suffix}" for suffix in suffixes)


@dataclass(frozen=True, slots=True)
class CookieSettings:
    name: str
    secure: bool
    samesite: str
    domain: str | None
    max_age: int
    login_names: tuple[str, ...]
    """The login-binding cookies this gateway sets and reads, in slot order."""

    @classmethod
    def from_config(cls, config: GatewayConfig) -> CookieSettings:
        secure = config.server.public_scheme == "https"
        session = config.session
        host_prefixed = secure and session.cookie_domain is None
        return cls(
            name=("__Host-" if host_prefixed else "") + session.cookie_name,
            secure=secure,
            samesite=session.cookie_samesite.capitalize(),
            domain=session.cookie_domain,
            max_age=session.max_lifetime,
            login_names=login_cookie_names(secure=secure),
        )

    @property
    def login_path(self) -> str:
        """``__Host-`` cookies must have Path=/; on http they stay under /_gateway/."""
        return "/" if self.secure else GATEWAY_PREFIX + "/"

    @property
    def login_samesite(self) -> str:
        """The login-binding cookie must come back on the provider's top-level redirect."""
        return "None" if self.samesite == "None" else "Lax"


@dataclass
class GatewayContext:
    config: GatewayConfig
    access: AccessControl
    sessions: SessionManager
    provider: Provider
    signer: AssertionSigner
    identity_headers: IdentityHeaders
    trusted: TrustedProxies
    redirects: RedirectPolicy
    cookies: CookieSettings
    upstream: UpstreamClient
    tunnels: TunnelRegistry = field(default_factory=TunnelRegistry)
    clock: Callable[[], float] = field(default=time.time)

    @property
    def public_url(self) -> str:
        return self.config.server.public_url

    @property
    def callback_url(self) -> str:
        return self.public_url + GATEWAY_PREFIX + "/callback"

    @cached_property
    def gateway_cookies(self) -> frozenset[str]:
        """Cookie names never forwarded upstream and never settable by an upstream."""
        logins = (*login_cookie_names(secure=True), *login_cookie_names(secure=False))
        return frozenset({self.cookies.name, self.config.session.cookie_name, *logins})

    @cached_property
    def assertions(self) -> AssertionCache:
        """Signed assertions re-used per session and route while fresh (signing is costly)."""
        return AssertionCache(self.signer)

    @cached_property
    def upstream_identity(self) -> UpstreamIdentity:
        return UpstreamIdentity(
            self.identity_headers, self.assertions, self.config.identity.assertion.header
        )

    @cached_property
    def owned_headers(self) -> frozenset[str]:
        """Canonical names of every header the gateway sets upstream."""
        return self.identity_headers.owned

    @cached_property
    def owned_with_authorization(self) -> frozenset[str]:
        """owned_headers plus Authorization, for requests authenticated by a bearer token."""
        return self.owned_headers | {"authorization"}


GATEWAY = web.AppKey("gateway", GatewayContext)
