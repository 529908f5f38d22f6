"""``/_gateway/auth``: forward-auth for nginx ``auth_request``, Traefik ``forwardAuth`` and
Caddy ``forward_auth``.

A front proxy asks whether to let a request it holds through. The original method and URL
come as ``X-Forwarded-Method`` / ``-Proto`` / ``-Host`` / ``-Uri`` (Traefik, Caddy) or
``X-Original-Method`` / ``X-Original-URL`` (nginx, ingress-nginx), believed only from
``server.trusted_proxies``. The URL goes through the normalisation, routing, public paths,
policy and cross-site check of a proxied request (``gate.judge``), so forward-auth and the
proxy path cannot disagree. Answers, all ``Cache-Control: no-store`` (docs/deploy/):

- 200, no body: every identity header of the route and the assertion (empty when public);
- 401 JSON with ``X-Gateway-Login-Url`` (and ``Location`` for a browser navigation, as
  Authelia does for nginx); with ``?redirect=1`` a browser navigation gets a 302 to the
  sign-in page instead (Caddy and Traefik hand the answer to the client);
- 403 with the reasons; 400 for an original request that cannot be read one way only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from gateway.errors import PathError
from gateway.headers import ACCESS_TOKEN_HEADER, Pair
from gateway.logs import escape_for_log
from gateway.routing import normalize_host, normalize_path
from gateway.web import responses
from gateway.web.context import GATEWAY_PREFIX, GatewayContext
from gateway.web.gate import Asked, Outcome, judge, passed_access_token

log = logging.getLogger(__name__)

LOGIN_URL_HEADER = "X-Gateway-Login-Url"
"""On every 401: the sign-in page, coming back to the original URL (DESIGN §4a)."""
NO_STORE = {"Cache-Control": "no-store"}
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class Unreadable(ValueError):
    """The original request cannot be read one way only: refused with 400."""


@dataclass(frozen=True, slots=True)
class Original:
    """The request the front proxy holds, as it says."""

    method: str
    scheme: str
    host: str
    """As sent, with its port if any."""
    target: str
    """Raw path and query."""


def _one(headers: MultiMapping[str], name: str) -> str | None:
    """A header sent at most once (an empty line counts as absent)."""
    values = [v.strip() for v in headers.getall(name, ()) if v.strip()]
    if len(values) > 1:
        raise Unreadable(f"{name} was sent {len(values)} times")
    return values[0] if values else None


def _agreed(headers: MultiMapping[str], *names: str) -> str | None:
    """The one value of headers that all say the same thing, or None if none is sent.

    Proxies set one name and pass the client's others through (nginx passes every
    client header to auth_request): two that disagree mean one was forged.
    """
    found = {name: v for name in names if (v := _one(headers, name)) is not None}
    if len(set(found.values())) > 1:
        raise Unreadable(" and ".join(found) + " disagree")
    return next(iter(found.values()), None)


def _checked_host(host: str) -> str:
    if not _HOST.fullmatch(host):
        raise Unreadable("the original host is not a host name")
    return host


def read_original(headers: MultiMapping[str], default_scheme: str) -> Original:
    """The original request from the forward-auth headers; Unreadable when missing,
    repeated, malformed or contradicting each other."""
    method = _agreed(headers, "X-Forwarded-Method", "X-Original-Method")
    if method is None:
        raise Unreadable("no X-Forwarded-Method or X-Original-Method")
    if not _METHOD.fullmatch(method):
        raise Unreadable("the original method is not a method")
    url = _one(headers, "X-Original-URL")
    uri = _one(headers, "X-Forwarded-Uri")
    forwarded_host = _one(headers, "X-Forwarded-Host")
    proto = _one(headers, "X-Forwarded-Proto")
    if url is not None:
        if "#" in url:
            raise Unreadable("'#' is not allowed in X-Original-URL")
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.netloc
        if scheme not in ("http", "https") or not host:
            raise Unreadable("X-Original-URL is not an absolute http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if uri is not None and uri != target:
            raise Unreadable("X-Original-URL and X-Forwarded-Uri disagree")
        if forwarded_host is not None and normalize_host(forwarded_host) != normalize_host(
            _checked_host(host)
        ):
            raise Unreadable("X-Original-URL and X-Forwarded-Host disagree")
    else:
        if uri is None:
            raise Unreadable("no X-Forwarded-Uri or X-Original-URL")
        if forwarded_host is None:
            raise Unreadable("X-Forwarded-Uri without X-Forwarded-Host")
        host, target = forwarded_host, uri
        scheme = (proto or default_scheme).lower()
        if scheme not in ("http", "https"):
            raise Unreadable("X-Forwarded-Proto is neither http nor https")
    return Original(method.upper(), scheme, _checked_host(host), target)


async def auth(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """The forward-auth answer for the request a trusted front proxy describes."""
    if not ctx.trusted.trusts(request.remote):
        # Its X-Forwarded-* are not believed, and without them there is nothing to judge.
        log.info(
            "forward-auth refused: %s is not in server.trusted_proxies",
            escape_for_log(request.remote or "?"),
        )
        return responses.error(
            request,
            403,
            "untrusted_proxy",
            "Forbidden",
            "Forward-auth answers only the proxies in server.trusted_proxies.",
        )
    try:
        original = read_original(request.headers, ctx.config.server.public_scheme)
        raw_path, _, query = original.target.partition("?")
        path = normalize_path(raw_path)
    except (Unreadable, PathError) as exc:
        log.info("forward-auth: unreadable original request: %s", escape_for_log(str(exc)))
        return responses.error(request, 400, "bad_request", "Bad request", str(exc))
    host = normalize_host(original.host)
    gateway_path = path.match == GATEWAY_PREFIX or path.match.startswith(GATEWAY_PREFIX + "/")
    routed = None if gateway_path else ctx.access.routed(host, path)
    if routed is None:
        return responses.error(
            _as_asked(request, original),
            403,
            "no_route",
            "Forbidden",
            "No tool is served at this address."
            + (" The gateway's own pages go to the gateway itself." if gateway_path else ""),
        )
    asked = Asked(
        method=original.method,
        host=host,
        websocket=original.method == "GET"
        and request.headers.get("Upgrade", "").lower() == "websocket",
        origin=responses.request_origin(request),
    )
    verdict = await judge(request, ctx, routed, asked)
    route, caller = routed.route, verdict.caller
    if verdict.outcome is Outcome.PUBLIC:
        return granted(ctx.upstream_identity.anonymous)
    if verdict.outcome is Outcome.ALLOWED and caller.identity is not None:
        pairs = ctx.upstream_identity.pairs(
            caller.cache_key, caller.identity, route.name, ctx.clock()
        )
        token = passed_access_token(ctx, route, caller)
        return granted((*pairs, (ACCESS_TOKEN_HEADER, token)))
    if verdict.outcome is Outcome.ANSWERED and verdict.answer is not None:
        verdict.answer.headers.update(NO_STORE)
        return verdict.answer
    asked_request = _as_asked(request, original)
    target = _return_to(ctx, original, path.forward, query)
    if verdict.outcome is Outcome.UNAUTHENTICATED:
        return unauthenticated(asked_request, ctx, target, redirect=_wants_redirect(request))
    identity = caller.identity
    if verdict.outcome is Outcome.DENIED and verdict.access is not None and identity is not None:
        return responses.denied(asked_request, ctx, verdict.access.decision, identity, target)
    # Outcome.CROSS_SITE, and anything unforeseen: refused (fail closed).
    return responses.error(
        asked_request,
        403,
        "cross_site",
        "Cross-site request refused",
        "This request came from another site and carries your session; it was refused.",
        identity=identity,
    )


def _as_asked(request: web.Request, original: Original) -> web.Request:
    """The auth request with the original method: the answer's shape (page or JSON,
    redirect or 401) follows the original request. Only refusals need it."""
    return request.clone(method=original.method)


def granted(pairs: tuple[Pair, ...]) -> web.Response:
    """2xx without a body: the front proxy copies these headers onto the request."""
    headers: CIMultiDict[str] = CIMultiDict(pairs)
    headers.update(NO_STORE)
    return web.Response(status=200, headers=headers)


def unauthenticated(
    request: web.Request, ctx: GatewayContext, target: str, *, redirect: bool
) -> web.Response:
    """401 with the sign-in URL in a header and the body; a 302 to it for a browser
    navigation when the front proxy asked for redirects."""
    url = responses.sign_in_url(ctx, target)
    browser = responses.is_browser(request)
    if browser and redirect:
        return responses.redirect(url)
    headers: dict[str, str] = {
        # The original host's RFC 9728 pointer: Caddy and Traefik pass this answer on.
        "WWW-Authenticate": responses.bearer_challenge(request),
        LOGIN_URL_HEADER: url,
    }
    if browser:
        headers["Location"] = url
    return responses.json_response(
        401,
        {"error": "unauthenticated", "message": "sign in required", "login_url": url},
        **headers,
    )


def _wants_redirect(request: web.Request) -> bool:
    return request.query.get("redirect", "") in ("1", "true")


def _return_to(ctx: GatewayContext, original: Original, path: str, query: str) -> str:
    """Where sign-in comes back to: a path on the public host, else the absolute URL
    (checked again against the allowed hosts when sign-in redirects)."""
    local = path + (f"?{query}" if query else "")
    if normalize_host(original.host) == ctx.config.server.public_host:
        return local
    return f"{original.scheme}://{original.host}{local}"
