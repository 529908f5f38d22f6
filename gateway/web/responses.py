"""The gateway's own answers: sign-in redirects, 401/403/4xx/5xx as HTML or JSON.

Browsers get pages (with a strict CSP); API, XHR and websocket clients get JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from gateway.config.branding import BrandingConfig
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


@lru_cache(maxsize=8)
def brand_of(branding: BrandingConfig) -> pages.Brand:
    """The pages' view of the ``branding`` section."""
    return pages.Brand(
        app_name=branding.app_name,
        logo_url=branding.logo_url,
        accent_color=branding.accent_color,
        help_text=branding.help_text,
        support_contact=branding.support_contact,
    )


def brand(request: web.Request | None = None, ctx: GatewayContext | None = None) -> pages.Brand:
    """The branding of the configuration this request runs on (the default without one)."""
    if ctx is None and request is not None:
        ctx = request.get(CONTEXT)
    if ctx is None:
        return pages.DEFAULT_BRAND
    return brand_of(ctx.config.branding)


def _with_logo_origin(base: dict[str, str], logo_url: str | None) -> dict[str, str]:
    """Let the page's CSP load an https logo from its own origin (img-src), nothing more."""
    if not logo_url or not logo_url.startswith("https://"):
        return base
    parts = urlsplit(logo_url)
    origin = f"https://{parts.netloc}"
    csp = base["Content-Security-Policy"].replace("img-src 'self'", f"img-src 'self' {origin}", 1)
    return {**base, "Content-Security-Policy": csp}


def html_page(
    status: int,
    body: str,
    headers: dict[str, str] | None = None,
    *,
    framed_by: tuple[str, ...] = (),
    logo_url: str | None = None,
) -> web.Response:
    """A gateway page; ``framed_by`` (server.frame_ancestors) may show it in a frame;
    ``logo_url`` (branding) is an image the page may load from another origin."""
    base = page_headers(framed_by) if framed_by else PAGE_HEADERS
    base = _with_logo_origin(base, logo_url)
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
    steps: Sequence[str] = (),
    ask_for_access: bool = False,
    switch_account: pages.SwitchAccount | None = None,
    admin_details: Sequence[str] = (),
) -> web.Response:
    """An error answer: a page for browsers, JSON for everyone else.

    A 502 or 504 about the upstream (``code`` ``upstream_error``) never carries the
    message it was given (it can name a Python exception): the page and the JSON say
    what happened in fixed words; the log keeps the cause."""
    rid = request_id(request)
    if code == "upstream_error" and status >= 500:
        title, message = _UPSTREAM_WORDS.get(status, _UPSTREAM_WORDS[502])
        details = ()
    if is_browser(request):
        ctx = request.get(CONTEXT)
        framed_by = ctx.config.server.frame_ancestors if ctx is not None else ()
        look = brand(request, ctx)
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
            brand=look,
            steps=steps,
            ask_for_access=ask_for_access,
            switch_account=switch_account,
            admin_details=admin_details,
            retry_url=retry_url(request) if status >= 500 else None,
        )
        form = FORM_PAGE_HEADERS if identity else {}
        all_headers = {**(headers or {}), **form, "X-Request-Id": rid}
        return html_page(status, body, all_headers, framed_by=framed_by, logo_url=look.logo_url)
    payload: dict[str, object] = {"error": code, "message": message, "request_id": rid}
    if details:
        payload["details"] = list(details)
    payload.update(extra or {})
    return json_response(status, payload, **(headers or {}), **{"X-Request-Id": rid})


_UPSTREAM_WORDS = {
    502: (
        "The tool is not answering",
        "The gateway could not get an answer from the tool behind it. "
        "It may be restarting; try again in a moment.",
    ),
    504: (
        "The tool took too long",
        "The tool behind the gateway did not answer in time. Try again in a moment.",
    ),
}
_SAFE_RETRY = re.compile(r"^/(?![/\\])[!-~]*$")


def retry_url(request: web.Request) -> str | None:
    """The page asked for, to try again: a GET's own path and query, when it is a plain
    same-origin path (never ``//host``, which a browser would read as another site)."""
    if request.method not in ("GET", "HEAD"):
        return None
    target = request.raw_path
    if len(target) > 2048 or "\\" in target or not _SAFE_RETRY.match(target):
        return None
    return target


def upstream_failed(
    request: web.Request, status: int, retry_after: int | None = None
) -> web.Response:
    """502 / 504: the upstream failed before answering. Fixed words only (the cause is
    the operator's, in the log); 503 is ``unavailable``."""
    if status == 503:
        return unavailable(request, "The tool is busy; retry in a moment.", retry_after or 1)
    title, message = _UPSTREAM_WORDS.get(status, _UPSTREAM_WORDS[502])
    return error(request, status, "upstream_error", title, message)


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


ROBOTS_TXT = "User-agent: *\nDisallow: /\n"
"""What the gateway answers for a ``/robots.txt`` that would need sign-in."""


def robots(request: web.Request) -> web.Response:
    del request
    return web.Response(
        text=ROBOTS_TXT,
        content_type="text/plain",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def skips_sign_in_page(request: web.Request, ctx: GatewayContext) -> bool:
    """``branding.skip_sign_in_page``, except inside a frame the config allows: Hugging
    Face refuses to be framed, so there the page (whose button leaves the frame) is shown."""
    if not ctx.config.branding.skip_sign_in_page:
        return False
    framed = request.headers.get("Sec-Fetch-Dest") in ("iframe", "frame")
    return not (framed and ctx.config.server.frame_ancestors)


def unauthenticated(request: web.Request, ctx: GatewayContext, target: str) -> web.Response:
    """Browsers: 302 to the sign-in page (straight to the login with
    ``branding.skip_sign_in_page``). Everyone else: 401 JSON with the login URL.

    A GET of ``/robots.txt`` that would need sign-in is answered ``Disallow: /`` instead
    (crawlers get no sign-in redirect; a route that makes it public serves its own)."""
    if request.method in ("GET", "HEAD") and urlsplit(target).path == "/robots.txt":
        return robots(request)
    url = sign_in_url(ctx, target)
    if is_browser(request):
        if skips_sign_in_page(request, ctx):
            return redirect(login_url(ctx, target))
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
    """403 in words with the next step: the grant button when an organization or a
    permission was not granted to the app, whom to ask (branding.support_contact), and
    "switch account". Reason codes and rule paths are only in the administrators'
    disclosure (and the JSON ``reasons``)."""
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
    contact = ctx.config.branding.support_contact
    if contact:
        extra["support_contact"] = contact
    steps = []
    if consent:
        steps.append(
            "Press “Grant access on Hugging Face” and tick the organization or "
            "permission it asks for on Hugging Face's consent screen."
        )
    name = ctx.config.branding.app_name or "this tool"
    return error(
        request,
        403,
        "forbidden",
        "Access denied",
        f"You are signed in as {identity.username}, but {name} does not let this account in.",
        details=describe(decision),
        identity=identity,
        consent=consent,
        extra=extra,
        steps=steps,
        ask_for_access=True,
        switch_account=switch_account(ctx, target),
        admin_details=[
            " ".join(part for part in (r.code.value, r.rule, r.detail) if part)
            for r in decision.reasons
        ],
    )


def switch_account(
    ctx: GatewayContext, target: str, *, link_whoami: bool = True
) -> pages.SwitchAccount:
    """Sign out here, then land on the sign-in page for ``target``; and where to sign out
    of the provider (HF has no sign-out link a page can use: its logout is a POST)."""
    back = f"{GATEWAY_PREFIX}/sign_in?{urlencode({'rd': target})}"
    action = f"{GATEWAY_PREFIX}/logout?{urlencode({'rd': back})}"
    provider = ctx.config.provider
    parts = urlsplit(provider.issuer)
    home = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None
    whoami = f"{GATEWAY_PREFIX}/whoami" if link_whoami else None
    name = "Hugging Face" if provider.kind == "huggingface" else "your identity provider"
    return pages.SwitchAccount(action, name, home, whoami)


_CRITERIA = {
    "user": "This tool lets in only the people it names, and your account is not one of them.",
    "user_id": "This tool lets in only the people it names, and your account is not one of them.",
    "email_verified": "This tool needs a verified email address on your Hugging Face account.",
    "pro": "This tool is for Hugging Face PRO accounts.",
    "not": "A rule of this tool excludes your account.",
}


def _plain(reason_rule: str, detail: str) -> str:
    """A failed criterion in words, without the rule path (which only admins read)."""
    criterion = re.sub(r"\[\d+\]$", "", reason_rule.rsplit(".", 1)[-1])
    words = _CRITERIA.get(criterion)
    if words is not None:
        return words
    if not detail:
        return "Your account does not meet this tool's rules."
    return f"{detail[:1].upper()}{detail[1:]}."


def describe(decision: Decision) -> list[str]:
    """Policy reasons as sentences a user can act on, without rule paths."""
    lines: list[str] = []
    for reason in decision.reasons:
        if reason.code is ReasonCode.DENIED:
            lines.append("A rule of this tool excludes your account.")
        elif reason.code is ReasonCode.RULE_FAILED:
            lines.append(_plain(reason.rule, reason.detail))
        elif reason.code is ReasonCode.MISSING_SCOPES:
            lines.append(
                "The app needs more permissions on Hugging Face: " + ", ".join(reason.values) + "."
            )
        elif reason.code is ReasonCode.ORG_NOT_GRANTED:
            lines.append(
                "Your organization has not been granted to this app on Hugging Face; "
                "grant it on the consent screen."
            )
        elif reason.code is ReasonCode.ORG_RESTRICTED:
            lines.append(
                "Your organization requires extra verification (SSO, MFA) on Hugging Face "
                "before your membership counts."
            )
    return list(dict.fromkeys(lines))
