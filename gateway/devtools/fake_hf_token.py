"""``POST /oauth/token``: client authentication and the code, refresh and device grants.

Errors are RFC 6749 §5.2 JSON (``{"error", "error_description"}``): 400 for grant
problems, ``settings.invalid_client_status`` (401 by default) for ``invalid_client``.
Confidential apps authenticate with HTTP Basic; public apps send only ``client_id``, or
nothing at all (huggingface.js), in which case the code or refresh token names the app.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import hdrs, web

from gateway.devtools.fake_hf_api import RATE_LIMIT_HEADERS
from gateway.devtools.fake_hf_model import FakeClient
from gateway.devtools.fake_hf_state import STATE_KEY, ProviderState
from gateway.devtools.fake_hf_tokens import Grant, pkce_matches

log = logging.getLogger("gateway.devtools.fake_hf")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NOT_RECORDED = frozenset({"client_secret", "client_assertion"})

Form = Mapping[str, str]


class OAuthError(Exception):
    """An RFC 6749 error answer."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """The JSON error response."""
        body = {"error": self.error, "error_description": self.description}
        return web.json_response(body, status=self.status, headers={**NO_STORE, **self.headers})


@dataclass(frozen=True)
class Credentials:
    """How the caller identified itself. ``problem`` is set when that was unusable."""

    method: str  # "basic" | "post" | "jwt" | "none"
    client_id: str | None
    secret: str | None
    problem: str | None = None


async def read_form(request: web.Request) -> dict[str, str]:
    """The form-encoded body (text fields only); ``{}`` for any other content type."""
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    form = await request.post()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def read_credentials(request: web.Request, form: Form) -> Credentials:
    """Classify the client authentication of a token or device request."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    form_id = form.get("client_id")
    if header is not None:
        pair = _basic_pair(header)
        if pair is None:
            return Credentials("basic", form_id, None, "unreadable Authorization header")
        if form_id is not None and form_id not in (pair[0], unquote_plus(pair[0])):
            return Credentials(
                "basic", pair[0], None, "client_id differs from the Basic credentials"
            )
        return Credentials("basic", pair[0], pair[1])
    if "client_assertion" in form:
        return Credentials("jwt", form_id, None, "client_secret_jwt is not supported by the fake")
    if "client_secret" in form:
        return Credentials("post", form_id, form["client_secret"])
    return Credentials("none", form_id, None)


def _basic_pair(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def invalid_client(state: ProviderState, description: str) -> OAuthError:
    """``invalid_client`` with the configured status (and a Basic challenge on 401)."""
    status = state.settings.invalid_client_status
    headers = {"WWW-Authenticate": 'Basic realm="huggingface"'} if status == 401 else {}
    return OAuthError("invalid_client", description, status, headers)


def authenticate(state: ProviderState, creds: Credentials) -> FakeClient | None:
    """The authenticated app, or None when a public app sent no ``client_id``.

    Raises ``invalid_client`` for unknown apps, wrong secrets and confidential apps
    without credentials, and ``invalid_request`` for ``client_secret_post`` unless
    ``settings.accept_client_secret_post``.
    """
    if creds.problem:
        raise invalid_client(state, creds.problem)
    if creds.method == "post" and not state.settings.accept_client_secret_post:
        raise OAuthError("invalid_request", "client_secret_post is not supported; use HTTP Basic")
    if creds.client_id is None:
        return None
    client = state.clients.get(creds.client_id) or state.clients.get(unquote_plus(creds.client_id))
    if client is None:
        raise invalid_client(state, "unknown client_id")
    if creds.method == "none":
        if not client.is_public:
            raise invalid_client(state, "client authentication is required for this app")
        return client
    if not _secret_ok(client, creds.secret or ""):
        raise invalid_client(state, "client authentication failed")
    return client


def _secret_ok(client: FakeClient, given: str) -> bool:
    """Constant-time secret check; a public app may only send an empty secret."""
    expected = (client.client_secret or "").encode()
    candidates = {given, unquote_plus(given)}
    return any(hmac.compare_digest(expected, c.encode()) for c in candidates)


def bind_client(state: ProviderState, caller: FakeClient | None, owner_id: str) -> FakeClient:
    """The app a credential was issued to, checked against the authenticated caller."""
    if caller is None:
        owner = state.clients.get(owner_id)
        if owner is None or not owner.is_public:
            raise invalid_client(state, "client authentication is required for this app")
        return owner
    if caller.client_id != owner_id:
        raise OAuthError("invalid_grant", "the grant was issued to another client")
    return caller


def issue_tokens(
    state: ProviderState, grant: Grant, issuer: str, *, id_token: bool
) -> dict[str, Any]:
    """The §4.1 token response for ``grant``: access token, ID token (with ``openid``),
    scope, and a refresh token when ``settings.issue_refresh_tokens``."""
    settings = state.settings
    body: dict[str, Any] = {
        "access_token": state.tokens.new_access(grant, settings.expires_in),
        "token_type": "bearer",
        "expires_in": settings.expires_in,
    }
    if id_token and grant.has("openid"):
        body["id_token"] = state.id_token(grant, issuer)
    body["scope"] = grant.scope_string
    if settings.issue_refresh_tokens:
        body["refresh_token"] = state.tokens.new_refresh(grant, settings.refresh_expires_in)
    return body


# ------------------------------------------------------------------------ grants

Grantor = Callable[[ProviderState, Form, FakeClient | None, str], dict[str, Any]]


def _required(form: Form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"missing {name}")
    return value


def _code_grant(
    state: ProviderState, form: Form, caller: FakeClient | None, issuer: str
) -> dict[str, Any]:
    """Redeem an authorization code (single use, 10 minutes, bound to app, URI and PKCE)."""
    code = state.tokens.take_code(_required(form, "code"))
    if code is None:
        raise OAuthError(
            "invalid_grant", "the authorization code is invalid, expired or already used"
        )
    bind_client(state, caller, code.grant.client_id)
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    _check_pkce(state, code.code_challenge, form.get("code_verifier"))
    return issue_tokens(state, code.grant, issuer, id_token=True)


def _check_pkce(state: ProviderState, challenge: str | None, verifier: str | None) -> None:
    if challenge is not None:
        if verifier is None or not pkce_matches(challenge, verifier):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    elif verifier is not None:  # RFC 9700 §2.1.1: a verifier without a challenge is refused
        raise OAuthError(
            "invalid_grant", "code_verifier sent but the authorization had no code_challenge"
        )
    elif state.settings.require_pkce:
        raise OAuthError("invalid_grant", "PKCE is required: authorize with a code_challenge")


def _refresh_grant(
    state: ProviderState, form: Form, caller: FakeClient | None, issuer: str
) -> dict[str, Any]:
    """Rotate a refresh token: the old one dies, the grant (user, scopes, orgs) is kept."""
    token = state.tokens.take_refresh(_required(form, "refresh_token"))
    if token is None:
        raise OAuthError(
            "invalid_grant", "the refresh token is invalid, expired, revoked or already used"
        )
    bind_client(state, caller, token.grant.client_id)
    if token.grant.username not in state.users:
        raise OAuthError("invalid_grant", "the user no longer exists")
    grant = replace(token.grant, nonce=None)  # a refreshed ID token carries no nonce
    return issue_tokens(state, grant, issuer, id_token=state.settings.id_token_on_refresh)


def _device_grant(
    state: ProviderState, form: Form, caller: FakeClient | None, issuer: str
) -> dict[str, Any]:
    """Poll a device authorization (RFC 8628 §3.4-3.5)."""
    value = _required(form, "device_code")
    device = state.tokens.device(value)
    if device is None:
        raise OAuthError("invalid_grant", "unknown device_code")
    bind_client(state, caller, device.client_id)
    now = state.clock()
    if device.expires_at <= now:
        state.tokens.finish_device(value)
        raise OAuthError("expired_token", "the device code has expired")
    if device.denied:
        state.tokens.finish_device(value)
        raise OAuthError("access_denied", "Device code denied")
    if device.grant is None:
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval
        device.last_poll = now
        if too_soon:
            device.interval += 5
            raise OAuthError("slow_down", f"poll at most every {device.interval} seconds")
        raise OAuthError("authorization_pending", "the user has not approved the device yet")
    state.tokens.finish_device(value)
    return issue_tokens(state, device.grant, issuer, id_token=True)


_GRANTS: dict[str, Grantor] = {
    "authorization_code": _code_grant,
    "refresh_token": _refresh_grant,
    DEVICE_GRANT: _device_grant,
}


async def token_endpoint(request: web.Request) -> web.Response:
    """``POST /oauth/token``. Every call is appended to ``state.token_requests``."""
    state = request.app[STATE_KEY]
    form = await read_form(request)
    creds = read_credentials(request, form)
    grant_type = form.get("grant_type")
    state.token_requests.append(
        {
            "grant_type": grant_type,
            "auth": creds.method,
            "client_id": creds.client_id,
            "form": {k: v for k, v in form.items() if k not in _NOT_RECORDED},
        }
    )
    forced = state.settings.token_status
    if forced is not None:  # before the grant is looked at: nothing is spent
        log.info("token %s by %s: forced %d", grant_type, creds.client_id, forced)
        headers = {**NO_STORE, **(RATE_LIMIT_HEADERS if forced == 429 else {})}
        return web.json_response({"error": "rate_limited"}, status=forced, headers=headers)
    try:
        body = _dispatch(state, request, form, creds, grant_type)
    except OAuthError as exc:
        log.info("token %s by %s: %s", grant_type, creds.client_id, exc.error)
        return exc.response()
    log.info("token %s by %s: issued scope=%r", grant_type, creds.client_id, body["scope"])
    return web.json_response(body, headers=NO_STORE)


def _dispatch(
    state: ProviderState,
    request: web.Request,
    form: Form,
    creds: Credentials,
    grant_type: str | None,
) -> dict[str, Any]:
    if not form:
        raise OAuthError("invalid_request", "send an application/x-www-form-urlencoded body")
    client = authenticate(state, creds)
    grantor = _GRANTS.get(grant_type or "")
    if grantor is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    return grantor(state, form, client, state.issuer_for(request))
