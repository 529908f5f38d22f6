"""Read-only endpoints: discovery, JWKS, ``/oauth/userinfo``, ``/api/whoami-v2``, avatars.

Userinfo accepts only live OAuth access tokens; whoami-v2 accepts those and personal
access tokens. Bad tokens get 401 (userinfo: RFC 6750 ``invalid_token``; whoami:
``{"error":"Invalid credentials in Authorization header"}`` as HF answers).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web

from gateway.devtools.fake_hf_claims import oauth_auth, pat_auth, userinfo_body, whoami_body
from gateway.devtools.fake_hf_state import STATE_KEY, ProviderState

WHOAMI_INVALID = {"error": "Invalid credentials in Authorization header"}
RATE_LIMIT_HEADERS = {
    "RateLimit": '"api";r=0;t=60',
    "RateLimit-Policy": '"fixed window";"api";q=1000;w=300',
}
"""HF's IETF-draft rate-limit headers (HF-OAUTH.md §6): bucket empty, resets in 60 s."""


def discovery_document(state: ProviderState, issuer: str) -> dict[str, Any]:
    """HF-OAUTH.md §1.2's recommended document, then ``settings.discovery_overrides``
    (a None value removes the key)."""
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "device_authorization_endpoint": f"{issuer}/oauth/device",
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_jwt",
            "none",
        ],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
    }
    for key, value in state.settings.discovery_overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


async def discovery(http: web.Request) -> web.Response:
    """``GET /.well-known/openid-configuration``."""
    state = http.app[STATE_KEY]
    return web.json_response(discovery_document(state, state.issuer_for(http)))


async def jwks(http: web.Request) -> web.Response:
    """``GET /oauth/jwks``: the one RSA key (``kid`` only with ``settings.id_token_kid``)."""
    state = http.app[STATE_KEY]
    return web.json_response(state.keys.jwks(with_kid=state.settings.id_token_kid))


def bearer_token(http: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    scheme, _, token = http.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _invalid_token(description: str) -> web.Response:
    return web.json_response(
        {"error": "invalid_token", "error_description": description},
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _forced_error(status: int) -> web.Response:
    if status == 401:
        return _invalid_token("the access token is invalid or expired")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return web.json_response({"error": phrase}, status=status)


async def userinfo(http: web.Request) -> web.Response:
    """``GET``/``POST /oauth/userinfo``: the §5 document for a live OAuth access token."""
    state = http.app[STATE_KEY]
    state.userinfo_calls += 1
    settings = state.settings
    if settings.userinfo_status is not None:
        return _forced_error(settings.userinfo_status)
    token = bearer_token(http)
    found = state.oauth_token(token) if token else None
    if found is None:
        return _invalid_token("the access token is invalid, expired or revoked")
    user, record = found
    body = userinfo_body(
        user,
        state.memberships(user),
        record.grant,
        state.issuer_for(http),
        omit_orgs=settings.userinfo_omit_orgs,
    )
    return web.json_response(body)


async def whoami(http: web.Request) -> web.Response:
    """``GET /api/whoami-v2`` for personal (``hf_``) and OAuth (``hf_oauth_``) tokens."""
    state = http.app[STATE_KEY]
    state.whoami_calls += 1
    if state.settings.whoami_rate_limited:
        body = {"error": "You have exceeded the rate limit of the 'api' bucket. Retry later."}
        return web.json_response(body, status=429, headers=RATE_LIMIT_HEADERS)
    token = bearer_token(http) or ""
    if personal := state.personal_token(token):
        user, role = personal
        return web.json_response(
            whoami_body(user, state.memberships(user), pat_auth(user, role), None)
        )
    if oauth := state.oauth_token(token):
        user, record = oauth
        auth = oauth_auth(record)
        return web.json_response(whoami_body(user, state.memberships(user), auth, record.grant))
    return web.json_response(WHOAMI_INVALID, status=401)


async def avatar(http: web.Request) -> web.Response:
    """``GET /avatars/<hash>.svg``: a coloured disc, so pictures load in the demo."""
    digest = http.match_info["digest"]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
        f'<circle cx="16" cy="16" r="16" fill="#{digest[:6]}"/></svg>'
    )
    return web.Response(text=svg, content_type="image/svg+xml")
