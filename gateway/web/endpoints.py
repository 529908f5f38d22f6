"""The gateway's own endpoints under ``/_gateway/``.

Health answers only on its own paths and never authenticates anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from gateway.errors import StoreError
from gateway.identity import Org
from gateway.web import device_info, forward_auth, login, pages, responses
from gateway.web.caller import identify
from gateway.web.context import GATEWAY_PREFIX, LIVE, STATIC_PREFIX, GatewayContext

Handler = Callable[[web.Request, GatewayContext], Awaitable[web.StreamResponse]]


async def userinfo(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """The caller's identity as JSON (by session or bearer token); never any token."""
    caller = await identify(request, ctx)
    if isinstance(caller, web.Response):
        return caller
    identity = caller.identity
    if identity is None:
        return responses.json_response(
            401,
            {"error": "unauthenticated", "login_url": responses.sign_in_url(ctx, "/")},
            **{"WWW-Authenticate": responses.bearer_challenge(request)},
        )
    body: dict[str, object] = {
        "sub": identity.sub,
        "username": identity.username,
        "name": identity.name,
        "email": identity.email,
        "email_verified": identity.email_verified,
        "picture": identity.picture,
        "is_pro": identity.is_pro,
        "orgs": [
            {"sub": o.sub, "slug": o.slug, "name": o.name, "role": o.role}
            for o in identity.counting_orgs
        ],
        "scopes": sorted(identity.scopes),
        "authenticated_by": "session" if caller.session is not None else "token",
    }
    if caller.session is not None:
        record = caller.session.record
        body["session"] = {
            "created_at": int(record.created_at),
            "expires_at": int(record.expires_at),
            "revalidated_at": int(record.revalidated_at),
        }
    else:
        body["token_role"] = identity.token_role
    return responses.json_response(200, body)


async def whoami(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """ "Who am I": a page for browsers; anyone else (Accept: application/json) gets the
    /_gateway/userinfo answer itself, so there is one JSON contract. An anonymous browser
    is sent to sign in and comes back here."""
    if not _wants_html(request):
        return await userinfo(request, ctx)
    caller = await identify(request, ctx)
    if isinstance(caller, web.Response):
        return caller
    identity = caller.identity
    if identity is None:
        return responses.redirect(responses.sign_in_url(ctx, WHOAMI_PATH))
    expires = None
    if caller.session is not None:
        ends = datetime.fromtimestamp(caller.session.record.expires_at, UTC)
        expires = ends.strftime("%Y-%m-%d %H:%M UTC")
    orgs = [(org.slug, _role_words(org)) for org in identity.orgs]
    look = responses.brand(request, ctx)
    body = pages.render_whoami(
        username=identity.username,
        name=identity.name,
        email=identity.email,
        orgs=orgs,
        scopes=sorted(identity.scopes),
        session_expires=expires,
        static_prefix=STATIC_PREFIX,
        sign_out_url=f"{GATEWAY_PREFIX}/logout",
        json_url=f"{GATEWAY_PREFIX}/userinfo",
        switch_account=responses.switch_account(ctx, WHOAMI_PATH, link_whoami=False),
        brand=look,
    )
    return responses.html_page(
        200,
        body,
        responses.FORM_PAGE_HEADERS,
        framed_by=ctx.config.server.frame_ancestors,
        logo_url=look.logo_url,
    )


WHOAMI_PATH = f"{GATEWAY_PREFIX}/whoami"


def _role_words(org: Org) -> str:
    if org.security_restrictions:
        return f"{org.role or 'member'}, not counted until {', '.join(org.security_restrictions)}"
    if org.role is None:
        return "not granted to this app"
    if org.role == "no_access":
        return "no access"
    return org.role


def _wants_html(request: web.Request) -> bool:
    """A page unless the client asks for JSON (or is no browser at all)."""
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept:
        return False
    return responses.is_browser(request)


async def brand_css(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """branding.accent_color as a stylesheet (the pages' CSP allows only our own styles)."""
    del request
    colour = ctx.config.branding.accent_color
    return web.Response(
        text=pages.brand_css(colour) if colour else "",
        content_type="text/css",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


async def jwks(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    del request
    return web.json_response(ctx.signer.jwks(), headers={"Cache-Control": "public, max-age=300"})


async def healthz(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    del request, ctx
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    """Ready when the store answers and the provider's metadata has loaded; 503 from
    the moment a stop begins (a load balancer takes the process out while it drains)."""
    if request.app[LIVE].draining:
        return web.json_response(
            {"status": "draining", "checks": {}},
            status=503,
            headers={"Cache-Control": "no-store"},
        )
    checks: dict[str, str] = {}
    try:
        await ctx.sessions.store.ping()
        checks["store"] = "ok"
    except StoreError:
        checks["store"] = "unreachable"
    checks["provider"] = "ok" if ctx.provider.ready else "metadata not loaded"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


def _static(name: str) -> Handler:
    content_type = pages.STATIC_FILES[name]
    body = (pages.STATIC_DIR / name).read_bytes()

    async def serve(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
        del request, ctx
        return web.Response(
            body=body,
            headers={
                "Content-Type": content_type,
                "Cache-Control": "public, max-age=3600",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return serve


_GET = ("GET", "HEAD")
ROUTES: dict[str, tuple[tuple[str, ...], Handler]] = {
    f"{GATEWAY_PREFIX}/sign_in": (_GET, login.sign_in),
    f"{GATEWAY_PREFIX}/login": (_GET, login.login),
    f"{GATEWAY_PREFIX}/callback": (_GET, login.callback),
    f"{GATEWAY_PREFIX}/logout": (("GET", "HEAD", "POST"), login.logout),
    # Front proxies ask with GET; any method is answered the same (the original one is a header).
    f"{GATEWAY_PREFIX}/auth": (
        ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        forward_auth.auth,
    ),
    f"{GATEWAY_PREFIX}/userinfo": (_GET, userinfo),
    WHOAMI_PATH: (_GET, whoami),
    pages.BRAND_CSS_PATH: (_GET, brand_css),
    f"{GATEWAY_PREFIX}/jwks.json": (_GET, jwks),
    f"{GATEWAY_PREFIX}/healthz": (_GET, healthz),
    f"{GATEWAY_PREFIX}/readyz": (_GET, readyz),
    f"{GATEWAY_PREFIX}/device": (_GET, device_info.device),
    **{f"{STATIC_PREFIX}/{name}": (_GET, _static(name)) for name in pages.STATIC_FILES},
}


async def handle(
    request: web.Request, ctx: GatewayContext, path: str, query: str
) -> web.StreamResponse:
    """Dispatch a normalised ``/_gateway/...`` path."""
    del query
    entry = ROUTES.get(path)
    if entry is None:
        return responses.error(request, 404, "not_found", "Not found", "No such gateway page.")
    methods, handler = entry
    if request.method not in methods:
        return responses.error(
            request,
            405,
            "method_not_allowed",
            "Method not allowed",
            f"{request.method} is not allowed here.",
            headers={"Allow": ", ".join(methods)},
        )
    return await handler(request, ctx)
