"""Device authorization grant (RFC 8628, HF-OAUTH.md §4.5).

``POST /oauth/device`` starts a device login for an app; the user opens
``GET /oauth/device`` (the ``verification_uri``), enters or follows the user code, and
approves or denies on the usual account page, which posts to ``/oauth/device/verify``.
The app polls ``/oauth/token`` (see ``fake_hf_token``). ``settings.deny`` and
``settings.auto_login`` decide new device logins at once.
"""

from __future__ import annotations

from aiohttp import web

from gateway.devtools.fake_hf_authorize import (
    DEFAULT_SCOPES,
    consent_view,
    html_response,
    set_site_cookie,
    sign_in,
    text_pairs,
)
from gateway.devtools.fake_hf_pages import consent_page, device_code_page, notice_page
from gateway.devtools.fake_hf_state import SITE_COOKIE, STATE_KEY, ProviderState
from gateway.devtools.fake_hf_token import (
    NO_STORE,
    OAuthError,
    authenticate,
    invalid_client,
    read_credentials,
    read_form,
)
from gateway.devtools.fake_hf_tokens import DeviceCode, Grant

VERIFY_PATH = "/oauth/device/verify"


async def device_authorization(http: web.Request) -> web.Response:
    """``POST /oauth/device``: ``client_id`` (Basic for confidential apps), optional ``scope``."""
    state = http.app[STATE_KEY]
    form = await read_form(http)
    try:
        client = authenticate(state, read_credentials(http, form))
        if client is None:
            raise invalid_client(state, "client_id is required")
    except OAuthError as exc:
        return exc.response()
    scope = form.get("scope")
    scopes = client.grantable_scopes(scope.split() if scope is not None else DEFAULT_SCOPES)
    settings = state.settings
    device_code, device = state.tokens.new_device(
        client.client_id, scopes, settings.device_expires_in, settings.device_interval
    )
    _decide_at_once(state, device)
    verification_uri = f"{state.issuer_for(http)}/oauth/device"
    body = {
        "device_code": device_code,
        "user_code": device.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?user_code={device.user_code}",
        "expires_in": settings.device_expires_in,
        "interval": settings.device_interval,
    }
    return web.json_response(body, headers=NO_STORE)


def _decide_at_once(state: ProviderState, device: DeviceCode) -> None:
    if state.settings.deny:
        device.denied = True
    elif (username := state.settings.auto_login) in state.users:
        device.grant = Grant(username, device.client_id, device.scopes, frozenset(), state.now())


async def device_page(http: web.Request) -> web.Response:
    """``GET /oauth/device[?user_code=...]``: ask for the code, then show the account page."""
    state = http.app[STATE_KEY]
    user_code = http.query.get("user_code")
    device = state.tokens.device_by_user_code(user_code) if user_code else None
    if device is None:
        problem = "That code is invalid or has expired." if user_code else None
        return html_response(device_code_page("/oauth/device", problem))
    session = state.site_session(http.cookies.get(SITE_COOKIE))
    view = consent_view(
        state,
        state.clients[device.client_id],
        device.scopes,
        (),
        action=VERIFY_PATH,
        hidden=[("user_code", device.user_code)],
        signed_in=session.username if session else None,
    )
    return html_response(consent_page(view))


async def device_verify(http: web.Request) -> web.Response:
    """``POST /oauth/device/verify``: the account page's buttons for a device login."""
    state = http.app[STATE_KEY]
    pairs = text_pairs(await http.post())
    form = dict(pairs)
    device = state.tokens.device_by_user_code(form.get("user_code", ""))
    if device is None or device.denied or device.grant is not None:
        return html_response(
            device_code_page("/oauth/device", "That code is invalid or has expired.")
        )
    if form.get("action") == "deny":
        device.denied = True
        return html_response(notice_page("Device denied", "The device was not connected."))
    user = state.users.get(form.get("username", ""))
    if form.get("action") not in ("login", "approve") or user is None:
        return html_response(notice_page("400 Error", "Choose an account or press Deny."), 400)
    orgs = frozenset(v for k, v in pairs if k == "org")
    session, cookie = sign_in(state, http, user.username, fresh=form["action"] == "login")
    device.grant = Grant(
        user.username,
        device.client_id,
        device.scopes,
        orgs & state.member_org_subs(user),
        session.login_time,
    )
    response = html_response(notice_page("Device connected", "You can go back to your device."))
    set_site_cookie(response, cookie)
    return response
