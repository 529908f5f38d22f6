"""Everything a request handler needs, built once per configuration.

Handlers depend on the SessionStore and Provider protocols through this object, never
on Redis or Hugging Face; only app.py chooses the concrete adapters. The app holds a
``LiveGateway`` under ``LIVE``: the context new requests start on, which a reload swaps.
A request takes it once, at its start (``CONTEXT``), and finishes on it.
"""

from __future__ import annotations

import asyncio
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
    from gateway.web.bearer import TokenResolver
    from gateway.web.proxy import UpstreamClient
    from gateway.web.sessions import SessionResolver

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
        session = config.session
        # SameSite=None cookies are refused unless Secure; over loopback http (a secure
        # context) browsers keep them, __Host- prefix included.
        secure = config.server.public_scheme == "https" or session.cookie_samesite == "none"
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
    tokens: TokenResolver
    tunnels: TunnelRegistry = field(default_factory=TunnelRegistry)
    clock: Callable[[], float] = field(default=time.time)
    in_flight: int = 0
    """Requests running on this context (a replaced one is closed when it reaches 0)."""
    resolver: SessionResolver = field(init=False)
    """Set by app.py once the context exists (the resolver reads the context)."""

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


class Flight:
    """One request in flight: the context it runs on and the task that runs its handler."""

    __slots__ = ("ctx", "request", "task")

    def __init__(
        self, request: web.BaseRequest, ctx: GatewayContext, task: asyncio.Task[object] | None
    ) -> None:
        self.request = request
        self.ctx = ctx
        self.task = task


class LiveGateway:
    """The context new requests start on, the requests in flight, and the drain state.

    ``enter`` hands a request the current context and counts it on that context, so a
    context a reload replaced can be closed once its last request has ended.
    """

    __slots__ = ("_waiters", "current", "draining", "flights")

    def __init__(self, ctx: GatewayContext) -> None:
        self.current = ctx
        self.draining = False
        """Set when a stop began: readyz answers 503 from then on."""
        self.flights: set[Flight] = set()
        self._waiters: list[tuple[GatewayContext | None, asyncio.Future[None]]] = []

    def enter(self, request: web.BaseRequest) -> Flight:
        ctx = self.current
        ctx.in_flight += 1
        flight = Flight(request, ctx, asyncio.current_task())
        self.flights.add(flight)
        return flight

    def leave(self, flight: Flight) -> None:
        flight.ctx.in_flight -= 1
        self.flights.discard(flight)
        if self._waiters:
            for ctx, waiter in self._waiters:
                if self._quiet(ctx) and not waiter.done():
                    waiter.set_result(None)

    async def idle(self, ctx: GatewayContext | None = None) -> None:
        """Return once no request runs on ``ctx`` (None: on any context)."""
        if self._quiet(ctx):
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((ctx, waiter))
        try:
            await waiter
        finally:
            self._waiters = [(c, w) for c, w in self._waiters if w is not waiter]

    def _quiet(self, ctx: GatewayContext | None) -> bool:
        return not self.flights if ctx is None else ctx.in_flight == 0


LIVE = web.AppKey("gateway", LiveGateway)
CONTEXT = web.RequestKey("gateway_context", GatewayContext)
"""The context a request started on (set once, at its start, by gateway.web.entry)."""
