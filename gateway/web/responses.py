"""The gateway's own answers: sign-in redirects, 401/403/4xx/5xx as HTML or JSON.

Browsers get pages (with a strict CSP); API, XHR and websocket clients get JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import urlencode

from aiohttp import web

from gateway.identity import Identity
from gateway.logs import current_request_id, new_request_id
from gateway.policy import Decision, ReasonCode
from gateway.routing import normalize_host
from gateway.web import pages, wellknown
from gateway.web.context import CONTEXT, GATEWAY_PREFIX, STATIC_PREFIX, GatewayContext
from gateway.web.framing import page_headers

PAGE_HEADERS = page_headers()
"""A page no one may frame (gateway.web.framing; server.frame_ancestors names framers)."""
FORM_PAGE_HEADERS = {"Referrer-Policy": "same-origin"}
"""For pages with a form that POSTs back (sign-out): under no-referrer a browser sends
``Origin: null`` with the form, and the sign-out refuses a POST it cannot place."""
REQUEST_ID = web.RequestKey("request_id", str)


def request_id(request: web.Request) -> str:
    """This request's id (gateway.logs: the trace the pipeline began), shown on error
    pages and in JSON errors, returned as X-Request-Id and in every log line."""
    rid = current_request_id()
    if rid is not None:
        return rid
    try:  # outside the pipeline (a handler called on its own): an id of its own
        return request[REQUEST_ID]
    except KeyError:
        value = new_request_id()
        request[REQUEST_ID] = value
        return value


def request_host(request: web.Request) -> str:
    return normalize_host(request.host)


def request_origin(request: web.Request) -> str | None:
    """The page's origin a browser says the request came from: Origin, else the origin of
    Referer ("null" for a Referer that is no URL); None when it says neither."""
    origin = request.headers.get("Origin")
    if origin:
        return origin
    referer = request.headers.get("Referer")
    if not referer:
        return None
    scheme, sep, rest = referer.partition("://")
    if not sep:
        return "null"
    return f"{scheme}://{rest.split('/', 1)[0]}"


def is_browser(request: web.Request) -> bool:
    """A top-level browser navigation (DESIGN §4a): it gets pages and redirects."""
    if request.method not in ("GET", "HEAD"):
        return False
    headers = request.headers
    if "Authorization" in headers or "X-HF-Authorization" in headers or "Upgrade" in headers:
        return False
    if request.headers.get("Sec-Fetch-Mode") == "navigate":
        return True
    return "text/html" in request.headers.get("Accept", "")


def html_page(
    status: int,
    body: str,
    headers: dict[str, str] | None = None,
    *,
    framed_by: tuple[str, ...] = (),
) -> web.Response:
    """A gateway page; ``framed_by`` (server.frame_ancestors) may show it in a frame."""
    base = page_headers(framed_by) if framed_by else PAGE_HEADERS
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers={**base, **(headers or {})},
    )


def redirect(location: str, status: int = 302) -> web.Response:
    """A redirect that is never cached (aiohttp's HTTPFound must be raised, not returned)."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def json_response(status: int, payload: dict[str, object], **headers: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(payload),
        content_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


def sign_in_url(ctx: GatewayContext, target: str) -> str:
    return f"{ctx.public_url}{GATEWAY_PREFIX}/sign_in?{urlencode({'rd': target})}"


def login_url(
    ctx: GatewayContext, target: str, *, org_ids: Sequence[str] = (), scopes: Sequence[str] = ()
) -> str:
    params = [("rd", target), *(("org", o) for o in org_ids), *(("scope", s) for s in scopes)]
    return f"{ctx.public_url}{GATEWAY_PREFIX}/login?{urlencode(params)}"


def error(
    request: web.Request,
    status: int,
    code: str,
    title: str,
    message: str,
    *,
    details: Sequence[str] = (),
    identity: Identity | None = None,
    sign_in: str | None = None,
    consent: str | None = None,
    extra: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error answer: a page for browsers, JSON for everyone else."""
    rid = request_id(request)
    if is_browser(request):
        ctx = request.get(CONTEXT)
        framed_by = ctx.config.server.frame_ancestors if ctx is not None else ()
        body = pages.render_error(
            status=status,
            title=title,
            message=message,
            static_prefix=STATIC_PREFIX,
            details=details,
            username=identity.username if identity else None,
            sign_in_url=sign_in,
            sign_out_url=f"{GATEWAY_PREFIX}/logout" if identity else None,
            consent_url=consent,
            request_id=rid,
            new_tab=bool(framed_by),
        )
        form = FORM_PAGE_HEADERS if identity else {}
        all_headers = {**(headers or {}), **form, "X-Request-Id": rid}
        return html_page(status, body, all_headers, framed_by=framed_by)
    payload: dict[str, object] = {"error": code, "message": message, "request_id": rid}
    if details:
        payload["details"] = list(details)
    payload.update(extra or {})
    return json_response(status, payload, **(headers or {}), **{"X-Request-Id": rid})


def unavailable(request: web.Request, message: str, retry_after: int = 5) -> web.Response:
    """503: a dependency (store, provider) failed; nothing was let through. Retry soon."""
    return error(
        request,
        503,
        "unavailable",
        "Temporarily unavailable",
        message,
        headers={"Retry-After": str(retry_after)},
    )


def invalid_token(request: web.Request) -> web.Response:
    """401 for a bearer token the provider refused (RFC 6750 error=invalid_token)."""
    return json_response(
        401,
        {
            "error": "invalid_token",
            "message": "the Hugging Face token is invalid, expired or not a user token",
            "request_id": request_id(request),
        },
        **{"WWW-Authenticate": bearer_challenge(request, error="invalid_token")},
    )


def unauthenticated(request: web.Request, ctx: GatewayContext, target: str) -> web.Response:
    """Browsers: 302 to the sign-in page. Everyone else: 401 JSON with the login URL."""
    url = sign_in_url(ctx, target)
    if is_browser(request):
        return redirect(url)
    return json_response(
        401,
        {"error": "unauthenticated", "message": "sign in required", "login_url": url},
        **{"WWW-Authenticate": bearer_challenge(request)},
    )


def bearer_challenge(request: web.Request, error: str | None = None) -> str:
    """The 401's Bearer challenge (RFC 6750 §3): the realm, the error when a token was
    refused (none when there was no credential), and, while bearer tokens are accepted,
    where RFC 9728 metadata says how to get one (``resource_metadata``, RFC 9728 §5.1)."""
    parts = ['realm="hf-gateway"']
    if error is not None:
        parts.append(f'error="{error}"')
    ctx = request.get(CONTEXT)
    if ctx is not None and ctx.config.provider.bearer_tokens:
        url = wellknown.resource_metadata_url(ctx.config, request.host)
        parts.append(f'resource_metadata="{url}"')
    return "Bearer " + ", ".join(parts)


def denied(
    request: web.Request, ctx: GatewayContext, decision: Decision, identity: Identity, target: str
) -> web.Response:
    """403 with the reasons in words, and a re-consent link when a grant could fix it."""
    details = describe(decision)
    consent = None
    if decision.fixable_by_consent:
        consent = login_url(
            ctx,
            target,
            org_ids=decision.ungranted_org_ids,
            scopes=sorted(decision.missing_scopes),
        )
    reasons = [
        {"code": r.code.value, "rule": r.rule, "detail": r.detail, "values": list(r.values)}
        for r in decision.reasons
    ]
    extra: dict[str, object] = {"reasons": reasons}
    if consent:
        extra["consent_url"] = consent
    return error(
        request,
        403,
        "forbidden",
        "Access denied",
        f"You are signed in as {identity.username}, but this tool's policy does not let you in.",
        details=details,
        identity=identity,
        consent=consent,
        extra=extra,
    )


def describe(decision: Decision) -> list[str]:
    """Policy reasons as sentences a user can act on."""
    lines: list[str] = []
    for reason in decision.reasons:
        if reason.code is ReasonCode.DENIED:
            lines.append(f"A deny rule matches you ({reason.rule}).")
        elif reason.code is ReasonCode.RULE_FAILED:
            lines.append(f"{reason.detail[:1].upper()}{reason.detail[1:]} ({reason.rule}).")
        elif reason.code is ReasonCode.MISSING_SCOPES:
            lines.append(
                "The app needs more permissions on Hugging Face: " + ", ".join(reason.values) + "."
            )
        elif reason.code is ReasonCode.ORG_NOT_GRANTED:
            lines.append(
                "Your organization has not been granted to this app on Hugging Face; "
                "sign in again and tick it on the consent screen."
            )
        elif reason.code is ReasonCode.ORG_RESTRICTED:
            lines.append(
                "Your organization requires extra verification (SSO, MFA) on Hugging Face "
                "before your membership counts."
            )
    return list(dict.fromkeys(lines))
