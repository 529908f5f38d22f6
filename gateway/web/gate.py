"""One request judged: public path or policy, who is calling, the cross-site check.

Both the proxy path (web/middleware) and forward-auth (web/forward_auth) can ask
``judge``, so a front proxy asking about a request gets the answer the gateway would give
had it received that request itself. Pure decision: the caller turns the verdict into a
proxied request, a redirect, a 401/403, or a forward-auth answer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from gateway.access import Access, Routed
from gateway.config import RouteConfig
from gateway.identity import Identity
from gateway.logs import AuditOutcome, audit, audit_enabled, current_trace
from gateway.metrics import count_decision
from gateway.policy import Decision, Reason, ReasonCode
from gateway.web.caller import Caller, client_address, identify
from gateway.web.context import GatewayContext

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Outcome(enum.Enum):
    PUBLIC = "public"
    """A public route or path: allowed, and nobody was identified."""
    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"
    DENIED = "denied"
    CROSS_SITE = "cross_site"
    """Allowed by the policy, refused because it carries a session from another site."""
    ANSWERED = "answered"
    """Identifying the caller already produced the answer (503, 429, invalid token)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    caller: Caller
    access: Access | None = None
    answer: web.Response | None = None
    """The answer identify produced (Outcome.ANSWERED only)."""
    preflight: bool = False
    """Outcome.PUBLIC for a CORS preflight on a route with cors_preflight: the proxy path
    forwards it without the client's cookies and Authorization (forward-auth grants it
    anonymous, like any public request)."""


@dataclass(frozen=True, slots=True)
class Asked:
    """The request being judged, as far as the decision reads it."""

    method: str
    host: str
    """Normalised (normalize_host)."""
    websocket: bool
    origin: str | None
    """The page origin the browser named (Origin, else Referer's), or None."""
    client_ip: str | None = None
    """The client's address for ``source_ip`` rules; None: read from the request (the peer,
    or X-Forwarded-For from server.trusted_proxies, as everywhere in the gateway)."""


def is_preflight(route: RouteConfig, method: str, headers: Mapping[str, str]) -> bool:
    """A CORS preflight the route lets through: ``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``, on a route with ``cors_preflight: true``."""
    return (
        route.cors_preflight
        and method == "OPTIONS"
        and bool(headers.get("Origin"))
        and bool(headers.get("Access-Control-Request-Method"))
    )


async def judge(request: web.Request, ctx: GatewayContext, routed: Routed, asked: Asked) -> Verdict:
    """The decision for ``asked``, whose credentials (cookie, bearer token) ``request``
    carries. Counted in the decision metrics and written to the audit log."""
    route = routed.route
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    if is_preflight(route, asked.method, request.headers):
        decision = Decision(True, (Reason(ReasonCode.PUBLIC, "cors_preflight", PREFLIGHT),))
        count_decision(route.name, "allow", ReasonCode.PUBLIC.value)
        _audit(route, "allow", decision, None)
        return Verdict(Outcome.PUBLIC, Caller(None), Access(route, decision), preflight=True)
    client_ip = asked.client_ip if asked.client_ip is not None else client_address(request, ctx)
    anonymous = ctx.access.decide_for("", routed, asked.method, None, now, asked.host, client_ip)
    if anonymous.decision.allowed:  # a public route or path: nobody needs to be identified
        count_decision(route.name, "allow", anonymous.decision.reasons[0].code.value)
        _audit(route, "allow", anonymous.decision, None)
        if route.optional_sign_in:
            return await _optionally_identified(request, ctx, asked, anonymous)
        return Verdict(Outcome.PUBLIC, Caller(None), anonymous)
    caller = await identify(request, ctx)
    if isinstance(caller, web.Response):
        return Verdict(Outcome.ANSWERED, Caller(None), answer=caller)
    identity = caller.identity
    if identity is None:
        count_decision(route.name, "unauthenticated", "unauthenticated")
        _audit(route, "unauthenticated", anonymous.decision, None)
        return Verdict(Outcome.UNAUTHENTICATED, caller)
    trace = current_trace()
    if trace is not None:  # who made the request, for the access line
        trace.user, trace.sub = identity.username, identity.sub
    access = ctx.access.decide_for(
        caller.cache_key, routed, asked.method, identity, now, asked.host, client_ip
    )
    first_reason = access.decision.reasons[0].code.value if access.decision.reasons else ""
    if not access.decision.allowed:
        count_decision(route.name, "deny", first_reason)
        _audit(route, "deny", access.decision, identity)
        return Verdict(Outcome.DENIED, caller, access)
    count_decision(route.name, "allow", first_reason)
    _audit(route, "allow", access.decision, identity)
    if caller.session is not None and not same_site(ctx, route, asked):
        return Verdict(Outcome.CROSS_SITE, caller, access)
    return Verdict(Outcome.ALLOWED, caller, access)


PREFLIGHT = "a CORS preflight, let through without sign-in (cors_preflight)"


async def _optionally_identified(
    request: web.Request, ctx: GatewayContext, asked: Asked, anonymous: Access
) -> Verdict:
    """A public request on a route with ``optional_sign_in``: who is calling, if a valid
    session or token says so, else anonymous. Never a sign-in, never a refusal: a cookie
    that is invalid or expired, a refused token or an unreachable store mean anonymous.
    A session from another site on an unsafe method stays anonymous (no CSRF with the
    user's name)."""
    caller = await identify(request, ctx)
    if isinstance(caller, web.Response) or caller.identity is None:
        return Verdict(Outcome.PUBLIC, Caller(None), anonymous)
    if caller.session is not None and not same_site(ctx, anonymous.route, asked):
        return Verdict(Outcome.PUBLIC, Caller(None), anonymous)
    trace = current_trace()
    if trace is not None:
        trace.user, trace.sub = caller.identity.username, caller.identity.sub
    return Verdict(Outcome.ALLOWED, caller, anonymous)


def _audit(
    route: RouteConfig, outcome: AuditOutcome, decision: Decision, identity: Identity | None
) -> None:
    """One audit line per decision, as web/middleware writes them."""
    if audit_enabled():
        policy = route.policy if isinstance(route.policy, str) else "inline"
        if identity is None:
            audit(route.name, policy, outcome, decision)
        else:
            audit(route.name, policy, outcome, decision, identity.username, identity.sub)


def same_site(ctx: GatewayContext, route: RouteConfig, asked: Asked) -> bool:
    """Unsafe methods and websocket upgrades with a session must come from our own origins
    (scheme, host and port, all three) or one the route allows."""
    if asked.method not in UNSAFE_METHODS and not asked.websocket:
        return True
    if asked.origin is None:
        # Without SameSite=None the browser does not send our cookie cross-site at all.
        return ctx.cookies.samesite != "None"
    return ctx.access.same_site(asked.origin, route)


def passed_access_token(ctx: GatewayContext, route: RouteConfig, caller: Caller) -> str:
    """The provider token the upstream may see as X-Forwarded-Access-Token ("" if none)."""
    passes = route.pass_access_token
    if passes is None:
        passes = ctx.config.identity.pass_access_token
    if not passes:
        return ""
    if caller.session is not None:
        return ctx.sessions.tokens(caller.session.record).access_token
    return caller.token or ""
