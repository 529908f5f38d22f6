"""Sign-in page, login, callback and logout.

Every login mints its own pending login (state, nonce, PKCE verifier, target) and seals it
into a login-binding cookie of its own (``__Host-hf_gateway_login`` on https; further logins
in flight use ``_2`` to ``_4``). Nothing is stored until the provider sends the browser
back, so anonymous requests for /login cost the store nothing; the callback accepts a
sealed login only with its state, only from the browser holding the cookie, only within
10 minutes and only once (a small "used" marker per state, written after the code was
redeemed). A value the browser presents is never adopted as the binding of a new login.

Signing out is a POST from the gateway's own pages; a GET only asks for confirmation.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from gateway.errors import AuthorizationDenied, LoginError, ProviderError, StoreError
from gateway.metrics import SIGN_INS_COMPLETED, SIGN_INS_STARTED, sign_in_failed
from gateway.providers.base import LoginResult
from gateway.session.model import (
    MAX_SEALED_LOGIN,
    PENDING_LOGIN_TTL,
    PendingLogin,
    new_code_verifier,
    new_nonce,
    new_state,
)
from gateway.web import pages, responses
from gateway.web.caller import session_cookie
from gateway.web.context import GATEWAY_PREFIX, LOGIN_SLOTS, STATIC_PREFIX, GatewayContext

log = logging.getLogger(__name__)

_ORG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCOPE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_EXTRA = 10
MAX_LOGIN_TARGET = 1024
"""Longer post-login targets become ``/``: the target travels in the binding cookie."""
_NO_LOGIN = (
    "This sign-in link has expired or was already used, or it was started in another browser."
)
_USED = "This sign-in link has expired or was already used."
# Characters a query may carry as they are (RFC 3986 query, with escapes): anything else in
# a raw request target is escaped before it goes into a Location header.
_QUERY_KEPT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})+")


def _target(ctx: GatewayContext, query: Mapping[str, str]) -> str:
    return ctx.redirects.sanitize(query.get("rd"))


async def sign_in(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    target = _target(ctx, request.query)
    login = responses.login_url(ctx, target)
    if responses.skips_sign_in_page(request, ctx):
        # branding.skip_sign_in_page: the login mints state, nonce and PKCE as always.
        return responses.redirect(login)
    host = urlsplit(target).hostname or ctx.config.server.public_host
    framed_by = ctx.config.server.frame_ancestors
    look = responses.brand(request, ctx)
    body = pages.render_sign_in(
        login_url=login,
        static_prefix=STATIC_PREFIX,
        target_host=host,
        new_tab=bool(framed_by),
        brand=look,
    )
    return responses.html_page(200, body, framed_by=framed_by, logo_url=look.logo_url)


# --------------------------------------------------------------------------- login


async def login(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """Start a login: seal state/nonce/PKCE into a new binding cookie, 302 to the provider."""
    if responses.request_host(request) != ctx.config.server.public_host:
        # The binding cookie must live on the host that receives the callback. The query
        # goes along byte for byte: rebuilt from its decoded form it broke on %0d%0a or %23.
        return responses.redirect(f"{ctx.public_url}{GATEWAY_PREFIX}/login{raw_query(request)}")
    target = _target(ctx, request.query)
    org_ids = _extra(request.query.getall("org", []), _ORG_ID)
    extra_scopes = _extra(request.query.getall("scope", []), _SCOPE)
    try:
        # A re-consent keeps what this browser's session was already granted, so two tools
        # that each need an extra scope do not take turns revoking each other's.
        kept = await _granted_scopes(request, ctx) if extra_scopes or org_ids else ()
    except StoreError:
        sign_in_failed("store_unavailable")
        return responses.unavailable(
            request, "The session store is unavailable; try again shortly."
        )
    pending = PendingLogin(
        state=new_state(),
        code_verifier=new_code_verifier(),
        nonce=new_nonce(),
        redirect_to=target if len(target) <= MAX_LOGIN_TARGET else "/",
        created_at=ctx.clock(),
        scopes=tuple(dict.fromkeys((*ctx.config.provider.scopes, *kept, *extra_scopes))),
        org_ids=org_ids,
    )
    sealed = _seal(ctx, pending)
    if sealed is None:
        sign_in_failed("too_large")
        return responses.error(
            request,
            400,
            "login_too_large",
            "Sign-in failed",
            "This sign-in asks for more organizations or permissions than it can carry.",
        )
    pending, value = sealed
    try:
        url = ctx.provider.authorization_url(
            state=pending.state,
            nonce=pending.nonce,
            code_verifier=pending.code_verifier,
            redirect_uri=ctx.callback_url,
            scopes=pending.scopes,
            org_ids=pending.org_ids,
        )
    except ProviderError:
        sign_in_failed("provider_unavailable")
        return responses.unavailable(
            request, "Hugging Face cannot be reached right now; try again shortly."
        )
    SIGN_INS_STARTED["more_access" if extra_scopes or org_ids else "new"].inc()
    response = responses.redirect(url)
    response.set_cookie(
        _free_slot(request, ctx),
        value,
        max_age=PENDING_LOGIN_TTL,
        path=ctx.cookies.login_path,
        secure=ctx.cookies.secure,
        httponly=True,
        samesite=ctx.cookies.login_samesite,
    )
    return response


def _seal(ctx: GatewayContext, pending: PendingLogin) -> tuple[PendingLogin, str] | None:
    """The sealed cookie value, with the target dropped to ``/`` if that makes it fit."""
    value = ctx.sessions.begin_login(pending)
    if len(value) > MAX_SEALED_LOGIN and pending.redirect_to != "/":
        pending = replace(pending, redirect_to="/")
        value = ctx.sessions.begin_login(pending)
    return (pending, value) if len(value) <= MAX_SEALED_LOGIN else None


def _free_slot(request: web.Request, ctx: GatewayContext) -> str:
    """The binding cookie for a new login: the first slot without a live login in it, else
    the one holding the oldest (several tabs sign in at once; a fifth evicts the oldest)."""
    oldest: tuple[float, str] | None = None
    for name in ctx.cookies.login_names:
        live = [p for v in login_cookie_values(request, name) if (p := ctx.sessions.open_login(v))]
        if not live:
            return name
        started = min(p.created_at for p in live)
        if oldest is None or started < oldest[0]:
            oldest = (started, name)
    assert oldest is not None  # there is always at least one slot
    return oldest[1]


def login_cookie_values(request: web.Request, name: str) -> list[str]:
    """Every value the browser sent for cookie ``name`` (a cookie with a Domain may sit
    beside ours under the same name on http); at most LOGIN_SLOTS of them are looked at."""
    prefix = name + "="
    values = [
        part[len(prefix) :]
        for header in request.headers.getall("Cookie", [])
        for part in (piece.strip() for piece in header.split(";"))
        if part.startswith(prefix)
    ]
    return values[:LOGIN_SLOTS]


def raw_query(request: web.Request) -> str:
    """``?`` and the query exactly as the client sent it ("" without one); characters that
    have no place in a query (which the parser may have let through) are escaped."""
    raw = request.raw_path.partition("?")[2]
    if not raw:
        return ""
    kept: list[str] = []
    position = 0
    for match in _QUERY_KEPT.finditer(raw):
        kept.append(_escape(raw[position : match.start()]))
        kept.append(match.group())
        position = match.end()
    kept.append(_escape(raw[position:]))
    return "?" + "".join(kept)


def _escape(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="")


async def _granted_scopes(request: web.Request, ctx: GatewayContext) -> tuple[str, ...]:
    loaded = await ctx.sessions.load(session_cookie(request, ctx))
    if loaded is None:
        return ()
    return tuple(sorted(s for s in loaded.record.identity.scopes if _SCOPE.match(s)))


def _extra(values: list[str], pattern: re.Pattern[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values[:MAX_EXTRA] if pattern.match(v)))


# --------------------------------------------------------------------------- callback


async def callback(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """Finish a login: find its sealed binding, redeem the code once, start a new session."""
    query = request.query
    state = query.get("state", "")
    if not state:
        sign_in_failed("no_state")
        return _login_failed(request, ctx, 400, "The sign-in response has no state.")
    found = _find_login(request, ctx, state)
    if found is None:
        sign_in_failed("no_login")
        return _login_failed(request, ctx, 400, _NO_LOGIN)
    slot, pending = found
    try:
        if await ctx.sessions.login_used(state):
            sign_in_failed("used")
            failed = _login_failed(request, ctx, 400, _USED, pending.redirect_to)
            return _clear_login(failed, ctx, slot)
        result = await _redeem(ctx, query, pending)
    except StoreError:
        sign_in_failed("store_unavailable")
        return responses.unavailable(
            request, "The session store is unavailable; try again shortly."
        )
    except AuthorizationDenied as exc:
        sign_in_failed("access_denied")
        failed = _login_failed(request, ctx, 403, exc.message, pending.redirect_to, "access_denied")
        return _clear_login(failed, ctx, slot)
    except LoginError as exc:
        log.warning("login failed: %s", exc.code)
        sign_in_failed(exc.code)
        failed = _login_failed(request, ctx, 400, exc.message, pending.redirect_to, exc.code)
        return _clear_login(failed, ctx, slot)
    except ProviderError:
        sign_in_failed("provider_unavailable")
        return responses.unavailable(
            request, "Hugging Face could not be reached to finish signing in."
        )
    try:
        if not await ctx.sessions.finish_login(pending):
            sign_in_failed("used")
            failed = _login_failed(request, ctx, 400, _USED, pending.redirect_to)
            return _clear_login(failed, ctx, slot)
        cookie = await ctx.sessions.create(
            result.identity, result.tokens, previous_cookie=session_cookie(request, ctx)
        )
    except StoreError:
        sign_in_failed("store_unavailable")
        return responses.unavailable(
            request, "The session store is unavailable; try again shortly."
        )
    SIGN_INS_COMPLETED.inc()
    log.info("signed in %s", result.identity.username)
    response = _go_to(ctx, pending.redirect_to)
    set_session_cookie(response, ctx, cookie)
    return _clear_login(response, ctx, slot)


def _find_login(
    request: web.Request, ctx: GatewayContext, state: str
) -> tuple[str, PendingLogin] | None:
    """The binding cookie holding the login for ``state`` in this browser, and the login."""
    for name in ctx.cookies.login_names:
        for value in login_cookie_values(request, name):
            pending = ctx.sessions.open_login(value)
            if pending is not None and hmac.compare_digest(pending.state.encode(), state.encode()):
                return name, pending
    return None


def _clear_login(response: web.Response, ctx: GatewayContext, slot: str) -> web.Response:
    response.del_cookie(
        slot,
        path=ctx.cookies.login_path,
        secure=ctx.cookies.secure,
        httponly=True,
        samesite=ctx.cookies.login_samesite,
    )
    return response


async def _redeem(
    ctx: GatewayContext, query: Mapping[str, str], pending: PendingLogin
) -> LoginResult:
    error = query.get("error")
    if error:
        description = query.get("error_description") or "The sign-in was not completed."
        if error == "access_denied":
            raise AuthorizationDenied("access_denied", "You declined to share your account.")
        log.info("provider returned error=%s", error[:64])
        raise LoginError("provider_error", f"Hugging Face reported: {description[:200]}")
    issuer = query.get("iss")
    if issuer is not None and issuer.rstrip("/") != ctx.config.provider.issuer.rstrip("/"):
        raise LoginError("wrong_issuer", "The sign-in response came from another issuer.")
    code = query.get("code")
    if not code:
        raise LoginError("no_code", "The sign-in response has no authorization code.")
    return await ctx.provider.exchange_code(
        code=code,
        code_verifier=pending.code_verifier,
        redirect_uri=ctx.callback_url,
        nonce=pending.nonce,
        scopes=pending.scopes or ctx.config.provider.scopes,
        now=ctx.clock(),
    )


def _go_to(ctx: GatewayContext, target: str) -> web.Response:
    """Send the browser on after login.

    With SameSite=Strict the browser would not send the new cookie on a redirect chain
    that began at the provider, so a same-site page hop is used instead of a 302.
    """
    if ctx.cookies.samesite == "Strict":
        look = responses.brand(ctx=ctx)
        return responses.html_page(
            200,
            pages.render_redirect(target=target, static_prefix=STATIC_PREFIX, brand=look),
            framed_by=ctx.config.server.frame_ancestors,
            logo_url=look.logo_url,
        )
    return responses.redirect(target)


def set_session_cookie(response: web.StreamResponse, ctx: GatewayContext, value: str) -> None:
    cookies = ctx.cookies
    response.set_cookie(
        cookies.name,
        value,
        max_age=cookies.max_age,
        path="/",
        domain=cookies.domain,
        secure=cookies.secure,
        httponly=True,
        samesite=cookies.samesite,
    )


def clear_session_cookie(response: web.StreamResponse, ctx: GatewayContext) -> None:
    cookies = ctx.cookies
    response.del_cookie(
        cookies.name,
        path="/",
        domain=cookies.domain,
        secure=cookies.secure,
        httponly=True,
        samesite=cookies.samesite,
    )


def _login_failed(
    request: web.Request,
    ctx: GatewayContext,
    status: int,
    message: str,
    target: str = "/",
    code: str = "login_failed",
) -> web.Response:
    return responses.error(
        request,
        status,
        code,
        "Sign-in failed" if status != 403 else "Sign-in cancelled",
        message,
        sign_in=responses.sign_in_url(ctx, target),
    )


# --------------------------------------------------------------------------- logout


async def logout(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """GET asks for confirmation; a POST from our own site deletes the session server-side
    (a copied cookie stops working) and clears the cookie."""
    target = ctx.redirects.sanitize(request.query.get("rd")) if "rd" in request.query else None
    if request.method != "POST":
        return _confirm_sign_out(request, ctx, target)
    if not _from_our_site(request, ctx):
        return responses.error(
            request,
            403,
            "cross_site",
            "Sign-out refused",
            "Signing out must be started from this site's own pages.",
        )
    try:
        identity = await ctx.sessions.destroy(session_cookie(request, ctx))
    except StoreError:
        return responses.unavailable(
            request, "The session store is unavailable; you are not signed out yet."
        )
    if identity is not None:
        log.info("signed out %s", identity.username)
    response: web.Response
    if target is not None and target.startswith("/"):
        # A form may only redirect within the origin (CSP form-action 'self').
        response = responses.redirect(target, 303)
    elif _wants_page(request):
        sign_in = f"{GATEWAY_PREFIX}/sign_in?{urlencode({'rd': target or '/'})}"
        look = responses.brand(request, ctx)
        body = pages.render_signed_out(sign_in_url=sign_in, static_prefix=STATIC_PREFIX, brand=look)
        response = responses.html_page(
            200, body, framed_by=ctx.config.server.frame_ancestors, logo_url=look.logo_url
        )
    else:
        response = responses.json_response(200, {"signed_out": True})
    clear_session_cookie(response, ctx)
    return response


def _confirm_sign_out(
    request: web.Request, ctx: GatewayContext, target: str | None
) -> web.Response:
    """GET /_gateway/logout: a page whose button POSTs the sign-out (with rd carried)."""
    if not _wants_page(request):
        return responses.json_response(
            200,
            {"signed_out": False, "message": "POST to this URL from the site's pages to sign out"},
        )
    action = f"{GATEWAY_PREFIX}/logout"
    if target is not None:
        action += "?" + urlencode({"rd": target})
    look = responses.brand(request, ctx)
    body = pages.render_sign_out(
        action=action, cancel_url=target or "/", static_prefix=STATIC_PREFIX, brand=look
    )
    return responses.html_page(
        200,
        body,
        responses.FORM_PAGE_HEADERS,
        framed_by=ctx.config.server.frame_ancestors,
        logo_url=look.logo_url,
    )


def _wants_page(request: web.Request) -> bool:
    """A browser navigation (form submissions included) gets pages; others get JSON."""
    if request.headers.get("Sec-Fetch-Mode") == "navigate":
        return True
    return "text/html" in request.headers.get("Accept", "")


def _from_our_site(request: web.Request, ctx: GatewayContext) -> bool:
    """Origin (or Referer) is one of the gateway's own origins (public_url's, a route host's
    or an allowed host's; scheme, host and port), as the cross-site check of the proxy path
    judges it. Browsers send Origin with every POST; a POST without either, or with
    ``Origin: null``, is not ours (fail closed)."""
    origin = responses.request_origin(request)
    return origin is not None and ctx.access.same_site(origin)
