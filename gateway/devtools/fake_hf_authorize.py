"""``GET``/``POST /oauth/authorize``: sign-in and consent for the authorization-code flow.

Contract (HF-OAUTH.md §2-3):

* An unknown ``client_id`` or a ``redirect_uri`` that is not registered (exact match, or
  an ``http`` loopback URI differing only in port) gets a 400 HTML page, never a redirect.
* Other request errors (``response_type`` other than ``code``, PKCE other than S256, a
  public app without PKCE) redirect with ``error=`` as RFC 6749 §4.1.2.1 says.
* Approval answers **303** to ``redirect_uri?code=...&state=...``; denial answers 303 with
  ``error=access_denied&error_description=The+user+denied+the+request&state=...``.
* The first approval signs the browser in (``token`` cookie) and remembers the consent;
  a later request for the same app asking no more scopes or orgs approves at once
  unless ``prompt=consent``/``login``. ``prompt=none`` fails instead of showing a page.
* ``orgIds`` may be repeated or comma-separated; those orgs are pre-checked on the page and
  granted by ``settings.auto_login``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from gateway.devtools import fake_hf_cimd as cimd
from gateway.devtools.fake_hf_model import FakeClient, FakeUser
from gateway.devtools.fake_hf_pages import (
    AccountChoice,
    ConsentView,
    OrgChoice,
    consent_page,
    notice_page,
)
from gateway.devtools.fake_hf_state import SITE_COOKIE, STATE_KEY, ProviderState, SiteSession
from gateway.devtools.fake_hf_tokens import AuthCode, Grant

log = logging.getLogger("gateway.devtools.fake_hf")

DEFAULT_SCOPES = ("openid", "profile")
"""Scopes assumed when ``scope`` is missing (Spaces always grant ``openid profile``)."""

CARRIED_PARAMS = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "orgIds",
        "prompt",
    }
)
"""Authorization parameters the consent page carries back in its forms."""

DENIED = {"error": "access_denied", "error_description": "The user denied the request"}
PAGE_HEADERS = {"X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"}
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")

Pairs = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request."""

    client: FakeClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    nonce: str | None
    org_ids: tuple[str, ...]
    prompt: str | None
    carried: tuple[tuple[str, str], ...]


class PageError(Exception):
    """A problem reported on the provider's own page (400), with no redirect."""


class RedirectError(Exception):
    """A problem reported to the app through its redirect URI."""

    def __init__(self, request: AuthorizeRequest, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.request = request
        self.params = {"error": error, "error_description": description}


# ------------------------------------------------------------------- parsing


def text_pairs(params: MultiMapping[Any]) -> list[tuple[str, str]]:
    """All text (key, value) pairs of a query or form, repeats included."""
    return [(k, v) for k, v in params.items() if isinstance(v, str)]


def _first(pairs: Pairs, name: str) -> str | None:
    return next((v for k, v in pairs if k == name), None)


def _all(pairs: Pairs, name: str) -> list[str]:
    return [v for k, v in pairs if k == name]


def parse_org_ids(values: Iterable[str]) -> tuple[str, ...]:
    """``orgIds`` values, repeated and/or comma-separated, in order without duplicates."""
    parts = (part.strip() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(part for part in parts if part))


def parse_authorize(state: ProviderState, pairs: Pairs) -> AuthorizeRequest:
    """Validate an authorization request; raise :class:`PageError` or :class:`RedirectError`."""
    client = state.clients.get(_first(pairs, "client_id") or "")
    if client is None:
        raise PageError("Invalid client_id: no OAuth app is registered with this client_id.")
    redirect_uri = _first(pairs, "redirect_uri")
    if not redirect_uri or not client.allows_redirect_uri(redirect_uri):
        raise PageError(
            "Invalid redirect_uri, must be one of the registered redirect_uris for this client_id."
        )
    scope = _first(pairs, "scope")
    request = AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        scopes=client.grantable_scopes(scope.split() if scope is not None else DEFAULT_SCOPES),
        state=_first(pairs, "state"),
        code_challenge=_first(pairs, "code_challenge"),
        nonce=_first(pairs, "nonce"),
        org_ids=parse_org_ids(_all(pairs, "orgIds")),
        prompt=_first(pairs, "prompt"),
        carried=tuple((k, v) for k, v in pairs if k in CARRIED_PARAMS),
    )
    if problem := _request_problem(request, pairs):
        raise RedirectError(request, *problem)
    return request


def _request_problem(request: AuthorizeRequest, pairs: Pairs) -> tuple[str, str] | None:
    response_type = _first(pairs, "response_type")
    if response_type not in (None, "code"):
        return "unsupported_response_type", "response_type must be code"
    method = _first(pairs, "code_challenge_method")
    if request.code_challenge is None:
        if method is not None:
            return "invalid_request", "code_challenge_method given without code_challenge"
        if request.client.is_public:
            return "invalid_request", "apps without a secret must use PKCE (code_challenge)"
        return None
    if method != "S256":
        return "invalid_request", "code_challenge_method must be S256"
    if not _CHALLENGE.fullmatch(request.code_challenge):
        return "invalid_request", "code_challenge must be 43 base64url characters"
    return None


# ----------------------------------------------------------------- responses


def redirect_to_app(
    state: ProviderState, http: web.Request, request: AuthorizeRequest, params: dict[str, str]
) -> web.Response:
    """303 to the app's redirect URI with ``params``, ``state`` and optionally ``iss``."""
    query = dict(params)
    if request.state is not None:
        query["state"] = request.state
    if state.settings.authorization_response_iss:
        query["iss"] = state.issuer_for(http)
    separator = "&" if "?" in request.redirect_uri else "?"
    location = request.redirect_uri + separator + urlencode(query)
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def html_response(text: str, status: int = 200) -> web.Response:
    """An HTML page that refuses to be framed, like huggingface.co's."""
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def consent_view(
    state: ProviderState,
    client: FakeClient,
    scopes: Sequence[str],
    requested_orgs: Iterable[str],
    *,
    action: str,
    hidden: Sequence[tuple[str, str]],
    signed_in: str | None,
) -> ConsentView:
    """The consent page's data: every account, the signed-in one first; orgs pre-checked
    when requested or consented to before."""
    accounts = [
        _account(state, user, client, set(requested_orgs), user.username == signed_in)
        for user in state.users.values()
    ]
    accounts.sort(key=lambda account: not account.signed_in)
    return ConsentView(action, client.display_name, scopes, hidden, accounts)


def _account(
    state: ProviderState, user: FakeUser, client: FakeClient, requested: set[str], signed_in: bool
) -> AccountChoice:
    consent = state.consent(user.username, client.client_id)
    checked = requested | (consent.org_subs if consent else frozenset())
    orgs = [
        OrgChoice(org.sub, org.slug, org.name, user.roles[org.slug], org.sub in checked)
        for org in state.memberships(user)
    ]
    return AccountChoice(user.username, user.name, orgs, signed_in)


def sign_in(
    state: ProviderState, http: web.Request, username: str, *, fresh: bool
) -> tuple[SiteSession, str | None]:
    """Keep the browser's session for ``username`` (unless ``fresh``) or start one; the
    second item is a new cookie value to set (None when the current one stays)."""
    current = state.site_session(http.cookies.get(SITE_COOKIE))
    if current is not None and current.username == username and not fresh:
        return current, None
    cookie, session = state.start_site_session(username)
    return session, cookie


def set_site_cookie(response: web.StreamResponse, value: str | None) -> None:
    """Set the HttpOnly ``token`` site-session cookie when ``value`` is new."""
    if value is not None:
        response.set_cookie(SITE_COOKIE, value, httponly=True, samesite="Lax", path="/")


# ------------------------------------------------------------------ decisions


def _issue_code(
    state: ProviderState,
    http: web.Request,
    request: AuthorizeRequest,
    user: FakeUser,
    org_subs: Iterable[str],
    session: SiteSession,
) -> web.Response:
    grant = Grant(
        username=user.username,
        client_id=request.client.client_id,
        scopes=request.scopes,
        org_subs=frozenset(org_subs),
        auth_time=session.login_time,
        nonce=request.nonce,
    )
    expires_at = state.clock() + state.settings.code_expires_in
    code = state.tokens.new_code(
        AuthCode(grant, request.redirect_uri, request.code_challenge, expires_at)
    )
    log.info("authorize: %s approved %s for %s", user.username, grant.scope_string, grant.client_id)
    return redirect_to_app(state, http, request, {"code": code})


def _approve(
    state: ProviderState,
    http: web.Request,
    request: AuthorizeRequest,
    user: FakeUser,
    org_subs: set[str],
    *,
    fresh_login: bool = False,
) -> web.Response:
    """An explicit approval: sign in, remember the consent, issue a code."""
    session, cookie = sign_in(state, http, user.username, fresh=fresh_login)
    state.remember_consent(user.username, request.client.client_id, request.scopes, org_subs)
    response = _issue_code(state, http, request, user, org_subs, session)
    set_site_cookie(response, cookie)
    return response


def _requested_orgs(state: ProviderState, user: FakeUser, request: AuthorizeRequest) -> set[str]:
    return set(request.org_ids) & state.member_org_subs(user)


def _decide(state: ProviderState, http: web.Request, request: AuthorizeRequest) -> web.Response:
    """Deny, auto-approve, or show the consent page."""
    settings = state.settings
    if settings.deny:
        return redirect_to_app(state, http, request, DENIED)
    if settings.auto_login is not None:
        user = state.users.get(settings.auto_login)
        if user is None:
            raise PageError(f"settings.auto_login names an unknown user: {settings.auto_login!r}")
        return _approve(state, http, request, user, _requested_orgs(state, user, request))
    session = state.site_session(http.cookies.get(SITE_COOKIE))
    if session is not None and request.prompt not in ("consent", "login"):
        user = state.users[session.username]
        consent = state.consent(user.username, request.client.client_id)
        if consent is not None and consent.covers(
            request.scopes, _requested_orgs(state, user, request)
        ):
            return _issue_code(state, http, request, user, consent.org_subs, session)
    if request.prompt == "none":
        error = "login_required" if session is None else "consent_required"
        raise RedirectError(request, error, "the user must interact with the provider")
    view = consent_view(
        state,
        request.client,
        request.scopes,
        request.org_ids,
        action="/oauth/authorize",
        hidden=request.carried,
        signed_in=session.username if session else None,
    )
    return html_response(consent_page(view))


def _record(query: MultiMapping[str]) -> dict[str, Any]:
    """Query parameters as received: one value as a string, repeats as a list."""
    return {
        key: values[0] if len(values) == 1 else values
        for key in dict.fromkeys(query.keys())
        if (values := query.getall(key))
    }


async def authorize_get(http: web.Request) -> web.Response:
    """``GET /oauth/authorize``: recorded in ``state.authorize_requests``."""
    state = http.app[STATE_KEY]
    state.authorize_requests.append(_record(http.query))
    pairs = text_pairs(http.query)
    if refused := await _metadata_document(state, pairs):
        return refused
    return _guarded(state, http, lambda: _decide(state, http, parse_authorize(state, pairs)))


async def authorize_post(http: web.Request) -> web.Response:
    """``POST /oauth/authorize``: the consent page's Sign in / Authorize / Deny buttons."""
    state = http.app[STATE_KEY]
    pairs = text_pairs(await http.post())
    if refused := await _metadata_document(state, pairs):
        return refused
    return _guarded(state, http, lambda: _submit(state, http, pairs))


async def _metadata_document(state: ProviderState, pairs: Pairs) -> web.Response | None:
    """A URL client id: fetch and check its document (fake_hf_cimd), or the 400 page."""
    client_id = _first(pairs, "client_id")
    if client_id is None or not cimd.is_url_client_id(client_id):
        return None
    try:
        await cimd.resolve(state, client_id)
    except cimd.CIMDError as exc:
        state.clients.pop(client_id, None)  # an app whose document broke is gone
        log.info("authorize: client metadata document refused: %s", exc)
        return html_response(notice_page("400 Error", f"Invalid client_id: {exc}."), status=400)
    return None


def _submit(state: ProviderState, http: web.Request, pairs: Pairs) -> web.Response:
    request = parse_authorize(state, pairs)
    action = _first(pairs, "action")
    if action == "deny":
        return redirect_to_app(state, http, request, DENIED)
    user = state.users.get(_first(pairs, "username") or "")
    if action not in ("login", "approve") or user is None:
        raise PageError("Choose an account and press Sign in, or press Deny.")
    chosen = set(_all(pairs, "org")) & state.member_org_subs(user)
    return _approve(state, http, request, user, chosen, fresh_login=action == "login")


def _guarded(
    state: ProviderState, http: web.Request, step: Callable[[], web.Response]
) -> web.Response:
    """Run ``step``, turning its errors into the 400 page or an error redirect."""
    try:
        return step()
    except PageError as exc:
        return html_response(notice_page("400 Error", str(exc)), status=400)
    except RedirectError as exc:
        return redirect_to_app(state, http, exc.request, exc.params)
