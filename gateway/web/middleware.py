"""The request pipeline: normalise -> route -> identity -> policy -> proxy / 302 / 401 / 403.

Every request the gateway receives goes through ``handle``. One normalised path drives
routing, public paths, policy and the upstream request. Any failure on the way ends in
a 4xx/5xx answer; nothing is forwarded unless the policy allowed it (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from gateway.access import Routed
from gateway.config import RouteConfig
from gateway.errors import PathError
from gateway.headers import (
    ACCESS_TOKEN_HEADER,
    client_facts,
    filter_request_headers,
    forwarding_headers,
)
from gateway.logs import (
    ACCESS_LOGGER,
    REQUEST_ID_HEADER,
    begin_trace,
    current_trace,
    incoming_request_id,
    log_fault,
    new_request_id,
)
from gateway.metrics import count_request
from gateway.routing import NormalPath, normalize_host, normalize_path, strip_path_prefix
from gateway.session.model import TOUCH_INTERVAL, SessionRecord
from gateway.web import endpoints, responses, wellknown
from gateway.web.bearer import ACCEPTED_TTL as TOKEN_RECHECK
from gateway.web.caller import Caller, client_address
from gateway.web.context import CONTEXT, GATEWAY_PREFIX, GatewayContext
from gateway.web.gate import UNSAFE_METHODS, Asked, Outcome, judge, passed_access_token
from gateway.web.proxy import UpstreamError, forward_http, forward_websocket, is_websocket
from gateway.web.tunnels import Binding, Tunnel, Verdict

log = logging.getLogger(__name__)

GATEWAY_LABEL = "_gateway"
"""The route label of the gateway's own pages in the metrics."""
UNROUTED_LABEL = "_unrouted"
"""The route label of requests no route serves (and of unreadable paths)."""
WELL_KNOWN = "/.well-known/"
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "x-hf-authorization"})
"""What a CORS preflight let through unauthenticated does not carry upstream."""


async def handle(request: web.Request) -> web.StreamResponse:
    """The single aiohttp handler for every path and method."""
    ctx = request[CONTEXT]
    trace = begin_trace(_request_id(request, ctx))
    response, route = await _answer(request, ctx)
    trace.route = route
    count_request(route, request.method, response.status)
    if isinstance(response, web.Response):  # the gateway's own answer, not sent yet
        response.headers[REQUEST_ID_HEADER] = trace.id
    # Relayed answers write the id themselves (relayed_answer.py), websockets before
    # their 101 (proxy.py).
    return response


def _request_id(request: web.Request, ctx: GatewayContext) -> str:
    """A trusted proxy's X-Request-Id when it is well-formed, else a new one; a client's
    own never counts (it could pick another request's id)."""
    incoming = request.headers.get(REQUEST_ID_HEADER)
    if incoming is not None and ctx.trusted.trusts(request.remote):
        kept = incoming_request_id(incoming)
        if kept is not None:
            return kept
    return new_request_id()


async def _answer(request: web.Request, ctx: GatewayContext) -> tuple[web.StreamResponse, str]:
    """The answer, and the route label it is counted under."""
    raw_path, _, query = request.raw_path.partition("?")
    try:
        path = normalize_path(raw_path)
    except PathError as exc:
        error = responses.error(request, 400, "bad_request", "Bad request", str(exc))
        return error, UNROUTED_LABEL
    if path.match == GATEWAY_PREFIX or path.match.startswith(GATEWAY_PREFIX + "/"):
        return await endpoints.handle(request, ctx, path.match, query), GATEWAY_LABEL
    if path.match.startswith(WELL_KNOWN) and wellknown.answers(ctx, request.method, path.match):
        # Only the gateway's own documents; other /.well-known/ paths reach the routes.
        return wellknown.answer(request, ctx, path.match), GATEWAY_LABEL
    host = normalize_host(request.host)
    routed = ctx.access.routed(host, path)
    if routed is None:
        missing = responses.error(request, 404, "not_found", "Not found", "No tool is served here.")
        return missing, UNROUTED_LABEL
    name = routed.route.name
    if _wants_slash(routed.route, path, request):
        return _slash_redirect(request, path, query), name
    return await _guarded(request, ctx, routed, host, path, query), name


def _wants_slash(route: RouteConfig, path: NormalPath, request: web.Request) -> bool:
    """A strip_prefix route asked for without its trailing slash (``/gradio``): the tool
    would get ``/`` and resolve its relative links outside the prefix (a blank page)."""
    return (
        route.strip_prefix
        and route.path != "/"
        and path.match == route.path.rstrip("/")
        and not is_websocket(request)
    )


def _slash_redirect(request: web.Request, path: NormalPath, query: str) -> web.Response:
    """``/x`` to ``/x/`` with the query as sent, as nginx does: 301 for GET and HEAD, 308
    (method and body kept) for the rest. Before sign-in, so sign-in returns to ``/x/``."""
    location = path.forward + "/" + ("?" + query if query else "")
    status = 301 if request.method in ("GET", "HEAD") else 308
    return web.Response(status=status, headers={"Location": location})


async def _guarded(
    request: web.Request,
    ctx: GatewayContext,
    routed: Routed,
    host: str,
    path: NormalPath,
    query: str,
) -> web.StreamResponse:
    """The decision forward-auth also asks (web/gate.judge), turned into a proxied
    request, a sign-in, a 401/403, or the answer identifying the caller produced."""
    websocket = is_websocket(request)
    asked = Asked(request.method, host, websocket, _origin(request, websocket))
    verdict = await judge(request, ctx, routed, asked)
    outcome = verdict.outcome
    if outcome is Outcome.PUBLIC:
        return await _forward(
            request, ctx, routed, path, query, verdict.caller, "", credentials=not verdict.preflight
        )
    if outcome is Outcome.ALLOWED:
        token = passed_access_token(ctx, routed.route, verdict.caller)
        return await _forward(request, ctx, routed, path, query, verdict.caller, token)
    if outcome is Outcome.ANSWERED and verdict.answer is not None:
        return verdict.answer
    if outcome is Outcome.UNAUTHENTICATED:
        target = original_target(ctx, request, host, path, query)
        return responses.unauthenticated(request, ctx, target)
    identity = verdict.caller.identity
    if outcome is Outcome.DENIED and verdict.access is not None and identity is not None:
        target = original_target(ctx, request, host, path, query)
        return responses.denied(request, ctx, verdict.access.decision, identity, target)
    if outcome is Outcome.CROSS_SITE:
        return responses.error(
            request,
            403,
            "cross_site",
            "Cross-site request refused",
            "This request came from another site and carries your session; it was refused.",
            identity=identity,
        )
    raise RuntimeError(f"a verdict the pipeline cannot answer: {verdict!r}")  # never forwarded


def _origin(request: web.Request, websocket: bool) -> str | None:
    """The page origin a browser named, read only when the cross-site check needs it."""
    if request.method not in UNSAFE_METHODS and not websocket:
        return None
    return responses.request_origin(request)


def _access_log_on() -> bool:
    return _ACCESS.isEnabledFor(logging.INFO)


_ACCESS = logging.getLogger(ACCESS_LOGGER)


def _joined(request: web.Request, name: str) -> str | None:
    """Every line of a list-valued header, joined as one list (RFC 9110 §5.3).

    A proxy may add its own line instead of extending the client's (HAProxy's
    ``option forwardfor`` does); reading only the first line would keep the client's
    forged entry and lose the one the trusted proxy added.
    """
    values = request.headers.getall(name, [])
    return ", ".join(values) if values else None


def original_target(
    ctx: GatewayContext, request: web.Request, host: str, path: NormalPath, query: str
) -> str:
    """Where to come back after sign-in: a path on the public host, else an absolute URL."""
    local = path.forward + (f"?{query}" if query else "")
    if host == ctx.config.server.public_host:
        return local
    return f"{ctx.config.server.public_scheme}://{request.host}{local}"


async def _forward(
    request: web.Request,
    ctx: GatewayContext,
    routed: Routed,
    path: NormalPath,
    query: str,
    caller: Caller,
    access_token: str,
    *,
    credentials: bool = True,
) -> web.StreamResponse:
    """``credentials=False`` (a CORS preflight let through unauthenticated): the client's
    Cookie, Authorization and X-HF-Authorization headers stay with the gateway."""
    route = routed.route
    identity = caller.identity
    # A bearer token the gateway consumed is its own: it reaches the upstream only as
    # X-Forwarded-Access-Token, and only where pass_access_token says so.
    owned = ctx.owned_with_authorization if caller.consumed_authorization else ctx.owned_headers
    headers = filter_request_headers(
        list(request.headers.items()),
        owned=owned,
        drop_cookies=ctx.gateway_cookies,
        owned_prefixes=ctx.identity_headers.owned_prefixes,
    )
    if not credentials:
        headers = [(k, v) for k, v in headers if k.lower() not in CREDENTIAL_HEADERS]
    if identity is None:
        headers.extend(ctx.upstream_identity.anonymous)
    else:
        headers.extend(
            ctx.upstream_identity.pairs(caller.cache_key, identity, route.name, ctx.clock())
        )
        headers.append((ACCESS_TOKEN_HEADER, access_token))
    facts, chain = client_facts(
        peer=request.remote,
        scheme=request.scheme,
        host=request.host,
        forwarded_for=_joined(request, "X-Forwarded-For"),
        forwarded_proto=_joined(request, "X-Forwarded-Proto"),
        forwarded_host=_joined(request, "X-Forwarded-Host"),
        trusted=ctx.trusted,
    )
    headers.extend(forwarding_headers(chain, facts))
    trace = current_trace()
    if trace is not None:
        headers.append((REQUEST_ID_HEADER, trace.id))
        if facts.ip != request.remote:
            trace.client = facts.ip
    target = strip_path_prefix(path.forward, route.path) if route.strip_prefix else path.forward
    host = request.host if route.preserve_host else None
    timed = trace is not None and _access_log_on()
    started = time.monotonic() if timed else 0.0
    try:
        if is_websocket(request):
            if not route.websockets:
                return responses.error(
                    request, 403, "websockets_disabled", "Forbidden", "Websockets are off here."
                )
            return await forward_websocket(
                request,
                ctx.upstream,
                route,
                target,
                query,
                headers,
                _tunnel_opener(request, ctx, routed, caller),
                host,
            )
        return await forward_http(
            request, ctx.upstream, route, target, query, headers, ctx.gateway_cookies, host
        )
    except UpstreamError as exc:
        # One fault per route (route names are config-chosen, bounded), counted when it repeats.
        log_fault(log, logging.WARNING, f"upstream {route.name} failed: %s", exc)
        if exc.status == 503:
            return responses.unavailable(
                request, "The tool is busy; retry in a moment.", retry_after=exc.retry_after or 1
            )
        title = "Bad gateway" if exc.status == 502 else "Gateway timeout"
        if exc.status == 400:
            return responses.error(request, 400, "bad_request", "Bad request", str(exc))
        return responses.error(request, exc.status, "upstream_error", title, str(exc))
    finally:
        if timed and trace is not None:
            trace.upstream = time.monotonic() - started


def _tunnel_opener(
    request: web.Request,
    ctx: GatewayContext,
    routed: Routed,
    caller: Caller,
) -> Callable[[Tunnel], Callable[[], None]]:
    """How a websocket tunnel registers itself, with the check that re-judges it."""
    host = normalize_host(request.host)
    client_ip = client_address(request, ctx)
    loop = asyncio.get_running_loop()

    async def check(binding: Binding) -> Verdict:
        if caller.token is not None:
            identity = await ctx.tokens.resolve(caller.token)
            if identity is None:
                return Verdict("the token is no longer valid", 0.0)
            next_check = loop.time() + TOKEN_RECHECK
        else:
            resolved = await ctx.resolver.resolve(
                caller.cookie, touch=binding.active_since_last_check()
            )
            if resolved.identity is None or resolved.session is None:
                return Verdict("the session has ended", 0.0)
            identity = resolved.identity
            next_check = loop.time() + _seconds_to_next_change(ctx, resolved.session.record)
        now = datetime.fromtimestamp(ctx.clock(), UTC)
        access = ctx.access.judge(routed, "GET", identity, now, host, client_ip)
        if not access.decision.allowed:
            codes = ",".join(r.code.value for r in access.decision.reasons)
            return Verdict(f"access was withdrawn ({codes})", 0.0)
        return Verdict(None, next_check)

    def open_tunnel(tunnel: Tunnel) -> Callable[[], None]:
        if caller.session is not None:
            first = _seconds_to_next_change(ctx, caller.session.record)
        else:
            first = TOKEN_RECHECK
        return ctx.tunnels.add(
            Binding(caller.cache_key, check, tunnel, loop.time() + first, route=routed.route.name)
        )

    return open_tunnel


def _seconds_to_next_change(ctx: GatewayContext, record: SessionRecord) -> float:
    """Until the session's next moment that can change a decision, and at most one touch
    interval (so a tunnel in use records its activity before idle_timeout)."""
    times = ctx.sessions.times
    moments = (
        record.expires_at,
        record.last_seen + times.idle_timeout,
        record.revalidated_at + times.revalidate_after,
    )
    touch = min(TOUCH_INTERVAL, times.idle_timeout / 4)
    return max(0.0, min(touch, min(moments) - ctx.clock()))
