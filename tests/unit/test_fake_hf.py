"""The fake Hugging Face provider behaves as HF-OAUTH.md describes, over real HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from gateway.devtools.fake_hf import (
    FakeClient,
    FakeHF,
    FakeOrg,
    FakeSettings,
    FakeUser,
    FixtureError,
)
from gateway.devtools.fake_hf_tokens import pkce_s256

CLIENT_ID = "a1b2c3d4-app"
SECRET = "app-secret"
REDIRECT = "http://127.0.0.1:8080/_gateway/callback"
PUBLIC_ID = "public-app"
PUBLIC_REDIRECT = "http://localhost:3000/cb"
ACME = "6650a1c2e3f4a5b6c7d8e9f0"
TOOLS = "9af218e6c4d13b02d0fafdf1"
ALICE_PAT = "hf_alice_read"
BOB_PAT = "hf_bob_write"
BASIC = aiohttp.encode_basic_auth(CLIENT_ID, SECRET)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def make_fake(clock: Callable[[], float] = time.time, **settings: Any) -> FakeHF:
    """A small world: alice (admin acme, write tools), bob (read acme, SSO pending), dave."""
    orgs = [
        FakeOrg(ACME, "acme", "Acme Research"),
        FakeOrg(TOOLS, "tools", "HF Tools", plan="team"),
    ]
    users = [
        FakeUser(
            "3f501019b1460301dacf1e59",
            "alice",
            "Alice Liddell",
            "alice@example.com",
            is_pro=True,
            roles={"acme": "admin", "tools": "write"},
            access_tokens={ALICE_PAT: "read"},
        ),
        FakeUser(
            "3fcfa4b2d6b4bf6fc8317446",
            "bob",
            "Bob Builder",
            "bob@example.com",
            roles={"acme": "read"},
            security_restrictions={"acme": ["sso"]},
            access_tokens={BOB_PAT: "write"},
        ),
        FakeUser("db660f57c52eb4aca76ed133", "dave", "Dave Null", "dave@example.com"),
    ]
    clients = [
        FakeClient(CLIENT_ID, SECRET, [REDIRECT, "https://tools.example.com/cb?x=1"]),
        FakeClient(PUBLIC_ID, None, [PUBLIC_REDIRECT]),
    ]
    return FakeHF(users, orgs, clients, FakeSettings(**settings), clock=clock)


@pytest.fixture
def fake() -> FakeHF:
    return make_fake()


@pytest.fixture
async def hf(fake: FakeHF, aiohttp_client: MakeClient) -> Client:
    client = await aiohttp_client(fake.app())
    fake.issuer = f"http://{client.server.host}:{client.server.port}"
    return client


# ----------------------------------------------------------------- helpers


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_s256(verifier)


def location(resp: aiohttp.ClientResponse) -> str:
    assert resp.status == 303, resp.status
    return resp.headers["Location"]


def callback(resp: aiohttp.ClientResponse) -> dict[str, str]:
    query = parse_qs(urlsplit(location(resp)).query)
    return {key: values[0] for key, values in query.items()}


async def authorize(hf: Client, **params: Any) -> aiohttp.ClientResponse:
    query: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-1",
        **params,
    }
    return await hf.get("/oauth/authorize", params=query, allow_redirects=False)


async def token(
    hf: Client,
    form: dict[str, str],
    auth: str | None = BASIC,
) -> aiohttp.ClientResponse:
    headers = {"Authorization": auth} if auth else {}
    return await hf.post("/oauth/token", data=form, headers=headers)


async def code_exchange(hf: Client, code: str, **form: str) -> aiohttp.ClientResponse:
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    return await token(hf, {**base, **form})


async def login(hf: Client, fake: FakeHF, user: str = "alice", **params: Any) -> dict[str, Any]:
    """Run authorize (auto_login) + code exchange with PKCE; return the token response."""
    fake.settings.auto_login = user
    verifier, challenge = pkce()
    params = {"code_challenge": challenge, "code_challenge_method": "S256", **params}
    code = callback(await authorize(hf, **params))["code"]
    resp = await code_exchange(hf, code, code_verifier=verifier, client_id=CLIENT_ID)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def get_json(
    hf: Client, path: str, bearer: str, status: int = 200
) -> tuple[dict[str, Any], aiohttp.ClientResponse]:
    resp = await hf.get(path, headers={"Authorization": f"Bearer {bearer}"})
    assert resp.status == status, await resp.text()
    return await resp.json(), resp


async def decode_id_token(hf: Client, fake: FakeHF, id_token: str) -> dict[str, Any]:
    jwks = await (await hf.get("/oauth/jwks")).json()
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims: dict[str, Any] = jwt.decode(
        id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=fake.issuer
    )
    return claims


class Forms(HTMLParser):
    """The forms of a page as a browser would submit them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._button: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a["action"], "fields": [], "boxes": [], "buttons": {}})
        elif tag == "input" and a.get("type") == "hidden":
            self.forms[-1]["fields"].append((a["name"], a["value"]))
        elif tag == "input" and a.get("type") == "checkbox":
            self.forms[-1]["boxes"].append((a["value"], "checked" in a))
        elif tag == "button":
            self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.forms[-1]["buttons"][self._button["text"]] = self._button
            self._button = None

    def with_button(self, text: str) -> dict[str, Any]:
        return next(form for form in self.forms if text in form["buttons"])


async def click(
    hf: Client, html: str, button: str, uncheck: tuple[str, ...] = ()
) -> aiohttp.ClientResponse:
    """Submit the form holding ``button`` with its checked boxes (minus ``uncheck``)."""
    form = Forms(html).with_button(button)
    pressed = form["buttons"][button]
    data = list(form["fields"]) + [
        ("org", value) for value, checked in form["boxes"] if checked and value not in uncheck
    ]
    data.append((pressed["name"], pressed["value"]))
    return await hf.post(form["action"], data=data, allow_redirects=False)


# ----------------------------------------------------------------- discovery


async def test_discovery_lists_the_recommended_endpoints(hf: Client, fake: FakeHF) -> None:
    """Discovery serves HF's endpoints under the issuer and no revocation or logout endpoint."""
    doc = await (await hf.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == fake.issuer
    assert doc["token_endpoint"] == f"{fake.issuer}/oauth/token"
    assert doc["jwks_uri"] == f"{fake.issuer}/oauth/jwks"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert "revocation_endpoint" not in doc and "end_session_endpoint" not in doc
    fake.settings.discovery_overrides = {"jwks_uri": None, "scopes_supported": ["openid"]}
    doc = await (await hf.get("/.well-known/openid-configuration")).json()
    assert "jwks_uri" not in doc and doc["scopes_supported"] == ["openid"]


# ----------------------------------------------------------------- code flow


async def test_code_flow_issues_hf_shaped_tokens(hf: Client, fake: FakeHF) -> None:
    """A confidential app gets the §4.1 response and an ID token that verifies against JWKS."""
    body = await login(hf, fake, nonce="n-123", orgIds=ACME)
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "id_token",
        "scope",
        "refresh_token",
    }
    assert body["access_token"].startswith("hf_oauth_")
    assert body["refresh_token"].startswith("hf_oauth__refresh_")
    assert (body["token_type"], body["expires_in"]) == ("bearer", 28800)
    assert body["scope"] == "openid profile email"
    assert jwt.get_unverified_header(body["id_token"]) == {"alg": "RS256"}
    claims = await decode_id_token(hf, fake, body["id_token"])
    assert claims["sub"] == "3f501019b1460301dacf1e59"
    assert claims["nonce"] == "n-123"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["preferred_username"] == "alice"
    assert claims["picture"].startswith(fake.issuer + "/avatars/")
    assert (claims["email"], claims["email_verified"]) == ("alice@example.com", True)
    assert "orgs" not in claims and "isPro" not in claims
    recorded = fake.token_requests[-1]
    assert (recorded["grant_type"], recorded["auth"], recorded["client_id"]) == (
        "authorization_code",
        "basic",
        CLIENT_ID,
    )
    assert "client_secret" not in recorded["form"]


async def test_no_id_token_without_openid(hf: Client, fake: FakeHF) -> None:
    """Without the openid scope there is no ID token; unknown scopes are dropped."""
    body = await login(hf, fake, scope="profile offline_access")
    assert "id_token" not in body
    assert body["scope"] == "profile"


async def test_id_token_kid_is_optional(hf: Client, fake: FakeHF) -> None:
    """With id_token_kid the header and the JWK carry the same kid."""
    fake.settings.id_token_kid = True
    body = await login(hf, fake)
    jwks = await (await hf.get("/oauth/jwks")).json()
    assert jwks["keys"][0]["kid"] == jwt.get_unverified_header(body["id_token"])["kid"]
    assert {"alg": "RS256", "use": "sig", "kty": "RSA"}.items() <= jwks["keys"][0].items()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        pytest.param("aud", jwt.InvalidAudienceError, id="aud"),
        pytest.param("iss", jwt.InvalidIssuerError, id="iss"),
        pytest.param("signature", jwt.InvalidSignatureError, id="signature"),
        pytest.param("expired", jwt.ExpiredSignatureError, id="expired"),
    ],
)
async def test_tampered_id_tokens_fail_verification(
    hf: Client, fake: FakeHF, mode: str, error: type[Exception]
) -> None:
    """Each id_token_tamper mode makes pyjwt fail for that reason."""
    fake.settings.id_token_tamper = mode
    body = await login(hf, fake, nonce="n-1")
    with pytest.raises(error):
        await decode_id_token(hf, fake, body["id_token"])


async def test_tampered_nonce_differs_from_the_sent_one(hf: Client, fake: FakeHF) -> None:
    """The nonce defect keeps a valid signature but a nonce the client never sent."""
    fake.settings.id_token_tamper = "nonce"
    body = await login(hf, fake, nonce="n-1")
    claims = await decode_id_token(hf, fake, body["id_token"])
    assert claims["nonce"] != "n-1"


# ------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize(
    ("redirect_uri", "accepted"),
    [
        pytest.param(REDIRECT, True, id="exact"),
        pytest.param("http://127.0.0.1:9999/_gateway/callback", True, id="loopback, other port"),
        pytest.param("http://127.0.0.1/_gateway/callback", True, id="loopback, default port"),
        pytest.param("http://localhost:8080/_gateway/callback", False, id="other loopback host"),
        pytest.param("http://127.0.0.1:8080/_gateway/callback/", False, id="path differs"),
        pytest.param("http://127.0.0.1:8080/_gateway/x/../callback", False, id="dot segments"),
        pytest.param("http://127.0.0.1:8080/_gateway/callback?a=1", False, id="query added"),
        pytest.param("https://127.0.0.1:8080/_gateway/callback", False, id="scheme differs"),
        pytest.param("https://tools.example.com/cb?x=1", True, id="https exact with query"),
        pytest.param("https://tools.example.com:8443/cb?x=1", False, id="https port differs"),
        pytest.param("https://evil.example/cb", False, id="other host"),
    ],
)
async def test_redirect_uri_rule(
    hf: Client, fake: FakeHF, redirect_uri: str, accepted: bool
) -> None:
    """Exact match, except http loopback URIs may change port only; refusals never redirect."""
    fake.settings.auto_login = "alice"
    resp = await authorize(hf, redirect_uri=redirect_uri)
    if accepted:
        assert location(resp).startswith(redirect_uri + ("&" if "?" in redirect_uri else "?"))
    else:
        assert resp.status == 400
        assert "redirect_uri" in await resp.text()
        assert "Location" not in resp.headers


async def test_unknown_client_gets_an_error_page(hf: Client) -> None:
    """An unknown client_id is answered on the provider with 400 and no redirect."""
    resp = await authorize(hf, client_id="nope")
    assert resp.status == 400 and resp.content_type == "text/html"
    assert "client_id" in await resp.text()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
        pytest.param(
            {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
            "invalid_request",
            id="plain PKCE",
        ),
        pytest.param(
            {"client_id": PUBLIC_ID, "redirect_uri": PUBLIC_REDIRECT},
            "invalid_request",
            id="public, no PKCE",
        ),
    ],
)
async def test_bad_requests_redirect_with_an_error(
    hf: Client, fake: FakeHF, params: dict[str, str], error: str
) -> None:
    """Request errors after a valid redirect_uri go back to the app with error and state."""
    fake.settings.auto_login = "alice"
    got = callback(await authorize(hf, **params))
    assert (got["error"], got["state"]) == (error, "st-1")
    assert "code" not in got


# ------------------------------------------------------------ token endpoint


async def test_codes_are_single_use(hf: Client, fake: FakeHF) -> None:
    """A code works once; the second redemption is invalid_grant."""
    fake.settings.auto_login = "alice"
    code = callback(await authorize(hf))["code"]
    assert (await code_exchange(hf, code)).status == 200
    resp = await code_exchange(hf, code)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_grant"


async def test_codes_expire_after_ten_minutes(aiohttp_client: MakeClient) -> None:
    """A code redeemed after 600 s is invalid_grant."""
    now = [1_800_000_000.0]
    fake = make_fake(lambda: now[0], auto_login="alice")
    hf = await aiohttp_client(fake.app())
    code = callback(await authorize(hf, scope="profile"))["code"]
    now[0] += 601
    resp = await code_exchange(hf, code)
    assert (resp.status, (await resp.json())["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("challenge", "form", "settings"),
    [
        pytest.param(True, {"code_verifier": "x" * 43}, {}, id="wrong verifier"),
        pytest.param(True, {}, {}, id="missing verifier"),
        pytest.param(False, {"code_verifier": "x" * 43}, {}, id="verifier without challenge"),
        pytest.param(False, {}, {"require_pkce": True}, id="require_pkce"),
        pytest.param(
            False, {"redirect_uri": "http://127.0.0.1:9/_gateway/callback"}, {}, id="redirect_uri"
        ),
    ],
)
async def test_code_exchange_rejections(
    hf: Client, fake: FakeHF, challenge: bool, form: dict[str, str], settings: dict[str, Any]
) -> None:
    """PKCE and redirect_uri mismatches at the token endpoint are invalid_grant."""
    fake.settings.auto_login = "alice"
    for key, value in settings.items():
        setattr(fake.settings, key, value)
    params = {"code_challenge": pkce()[1], "code_challenge_method": "S256"} if challenge else {}
    code = callback(await authorize(hf, **params))["code"]
    resp = await code_exchange(hf, code, **form)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        pytest.param(
            aiohttp.encode_basic_auth(CLIENT_ID, "wrong"),
            {},
            401,
            "invalid_client",
            id="bad secret",
        ),
        pytest.param(
            aiohttp.encode_basic_auth("nope", SECRET),
            {},
            401,
            "invalid_client",
            id="unknown client",
        ),
        pytest.param(None, {"client_id": CLIENT_ID}, 401, "invalid_client", id="no secret"),
        pytest.param(
            None,
            {"client_id": CLIENT_ID, "client_secret": SECRET},
            400,
            "invalid_request",
            id="client_secret_post",
        ),
    ],
)
async def test_client_authentication_failures(
    hf: Client,
    fake: FakeHF,
    auth: str | None,
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    """Confidential apps must use HTTP Basic with the right secret."""
    fake.settings.auto_login = "alice"
    code = callback(await authorize(hf))["code"]
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    resp = await token(hf, {**base, **form}, auth=auth)
    assert (resp.status, (await resp.json())["error"]) == (status, error)
    assert all("client_secret" not in r["form"] for r in fake.token_requests)


async def test_public_client_may_send_no_client_id(hf: Client, fake: FakeHF) -> None:
    """huggingface.js sends only grant_type, code, redirect_uri and code_verifier."""
    fake.settings.auto_login = "dave"
    verifier, challenge = pkce()
    resp = await authorize(
        hf,
        client_id=PUBLIC_ID,
        redirect_uri=PUBLIC_REDIRECT,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    form = {
        "grant_type": "authorization_code",
        "code": callback(resp)["code"],
        "redirect_uri": PUBLIC_REDIRECT,
        "code_verifier": verifier,
    }
    resp = await token(hf, form, auth=None)
    assert resp.status == 200, await resp.text()
    assert (fake.token_requests[-1]["auth"], fake.token_requests[-1]["client_id"]) == ("none", None)


async def test_unsupported_grant_type(hf: Client) -> None:
    """Grants other than code, refresh and device code are refused."""
    resp = await token(hf, {"grant_type": "password"})
    assert (resp.status, (await resp.json())["error"]) == (400, "unsupported_grant_type")


async def test_refresh_tokens_rotate_and_are_single_use(hf: Client, fake: FakeHF) -> None:
    """A refresh returns a new pair, keeps the grant, and the old refresh token dies."""
    first = await login(hf, fake, orgIds=ACME)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    resp = await token(hf, form)
    second = await resp.json()
    assert resp.status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    info, _ = await get_json(hf, "/oauth/userinfo", second["access_token"])
    assert [org.get("roleInOrg") for org in info["orgs"]] == ["admin", None]
    reused = await token(hf, form)
    assert (reused.status, (await reused.json())["error"]) == (400, "invalid_grant")


async def test_refresh_tokens_can_be_switched_off(hf: Client, fake: FakeHF) -> None:
    """issue_refresh_tokens=False leaves refresh_token out of the response."""
    fake.settings.issue_refresh_tokens = False
    assert "refresh_token" not in await login(hf, fake)


async def test_access_tokens_expire(hf: Client, fake: FakeHF) -> None:
    """An access token stops working once expires_in has passed."""
    fake.settings.expires_in = 1
    body = await login(hf, fake)
    assert body["expires_in"] == 1
    await get_json(hf, "/oauth/userinfo", body["access_token"])
    await asyncio.sleep(1.2)
    await get_json(hf, "/oauth/userinfo", body["access_token"], status=401)
    await get_json(hf, "/api/whoami-v2", body["access_token"], status=401)


async def test_revoked_users_lose_access_and_refresh_tokens(hf: Client, fake: FakeHF) -> None:
    """revoke_user_tokens kills the user's OAuth tokens but not personal tokens."""
    body = await login(hf, fake)
    fake.revoke_user_tokens("alice")
    await get_json(hf, "/oauth/userinfo", body["access_token"], status=401)
    resp = await token(hf, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert (await resp.json())["error"] == "invalid_grant"
    await get_json(hf, "/api/whoami-v2", ALICE_PAT)


# ------------------------------------------------------------------ userinfo


@pytest.mark.parametrize(
    ("scope", "keys"),
    [
        pytest.param("openid", {"sub", "isPro", "orgs"}, id="openid"),
        pytest.param(
            "openid profile",
            {"sub", "isPro", "orgs", "name", "preferred_username", "picture", "profile", "website"},
            id="profile",
        ),
        pytest.param(
            "openid profile email",
            {
                "sub",
                "name",
                "preferred_username",
                "email_verified",
                "email",
                "isPro",
                "picture",
                "profile",
                "website",
                "orgs",
            },
            id="hub-ci key set",
        ),
        pytest.param("openid read-billing", {"sub", "isPro", "orgs", "canPay"}, id="billing"),
    ],
)
async def test_userinfo_fields_follow_scopes(
    hf: Client, fake: FakeHF, scope: str, keys: set[str]
) -> None:
    """Profile fields need profile, email fields need email; sub, isPro and orgs always."""
    body = await login(hf, fake, "dave", scope=scope)
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert set(info) == keys
    assert info["orgs"] == []


async def test_roles_only_for_granted_orgs(hf: Client, fake: FakeHF) -> None:
    """Every membership is listed; roleInOrg only for orgs granted through orgIds."""
    body = await login(hf, fake, orgIds=ACME)
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    acme, tools = info["orgs"]
    assert acme == {
        "sub": ACME,
        "name": "Acme Research",
        "preferred_username": "acme",
        "picture": acme["picture"],
        "roleInOrg": "admin",
    }
    assert acme["picture"].startswith(f"{fake.issuer}/avatars/")
    assert "roleInOrg" not in tools and tools["plan"] == "team"


async def test_read_memberships_reveals_every_role(hf: Client, fake: FakeHF) -> None:
    """The read-memberships scope shows roleInOrg for every org without granting any."""
    body = await login(hf, fake, scope="openid read-memberships")
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert {o["preferred_username"]: o["roleInOrg"] for o in info["orgs"]} == {
        "acme": "admin",
        "tools": "write",
    }


async def test_security_restrictions_and_live_role_changes(hf: Client, fake: FakeHF) -> None:
    """Pending restrictions are listed; set_role applies to the next userinfo call, and a
    new membership is listed but was not granted to the app."""
    body = await login(hf, fake, "bob", orgIds=f"{ACME},{TOOLS}")
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert info["orgs"][0]["securityRestrictions"] == ["sso"]
    fake.set_role("bob", "acme", "no_access")
    fake.set_role("bob", "tools", "write")
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert [o.get("roleInOrg") for o in info["orgs"]] == ["no_access", None]  # tools not granted
    fake.set_role("bob", "acme", None)
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert [o["preferred_username"] for o in info["orgs"]] == ["tools"]


async def test_userinfo_switches(hf: Client, fake: FakeHF) -> None:
    """userinfo_omit_orgs drops orgs; userinfo_status forces an error; calls are counted."""
    body = await login(hf, fake)
    fake.settings.userinfo_omit_orgs = True
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert "orgs" not in info
    fake.settings.userinfo_status = 500
    await get_json(hf, "/oauth/userinfo", body["access_token"], status=500)
    fake.settings.userinfo_status = 401
    err, resp = await get_json(hf, "/oauth/userinfo", body["access_token"], status=401)
    assert err["error"] == "invalid_token" and "Bearer" in resp.headers["WWW-Authenticate"]
    assert fake.userinfo_calls == 3


async def test_userinfo_rejects_unknown_and_personal_tokens(hf: Client) -> None:
    """Only live OAuth access tokens are accepted by userinfo."""
    for bearer in ("hf_oauth_made_up", ALICE_PAT):
        await get_json(hf, "/oauth/userinfo", bearer, status=401)


# -------------------------------------------------------------------- whoami


async def test_whoami_for_a_personal_token(hf: Client, fake: FakeHF) -> None:
    """A PAT sees the §6 shape: slug as name, relative avatar, every role, token role."""
    body, _ = await get_json(hf, "/api/whoami-v2", BOB_PAT)
    assert {k: body[k] for k in ("type", "name", "fullname", "email", "isPro")} == {
        "type": "user",
        "name": "bob",
        "fullname": "Bob Builder",
        "email": "bob@example.com",
        "isPro": False,
    }
    assert body["id"] == "3fcfa4b2d6b4bf6fc8317446"
    assert body["avatarUrl"].startswith("/avatars/")
    (org,) = body["orgs"]
    assert (org["type"], org["name"], org["fullname"], org["roleInOrg"]) == (
        "org",
        "acme",
        "Acme Research",
        "read",
    )
    assert body["auth"]["type"] == "access_token"
    assert body["auth"]["accessToken"]["role"] == "write"
    assert body["auth"]["accessToken"]["displayName"]
    assert fake.whoami_calls == 1


async def test_whoami_for_an_oauth_token(hf: Client, fake: FakeHF) -> None:
    """An OAuth token has no displayName and sees roles only for granted orgs."""
    body = await login(hf, fake, orgIds=TOOLS, scope="openid profile")
    who, _ = await get_json(hf, "/api/whoami-v2", body["access_token"])
    assert who["auth"]["type"] == "access_token"
    assert "displayName" not in who["auth"]["accessToken"]
    assert [o.get("roleInOrg") for o in who["orgs"]] == [None, "write"]
    assert "email" not in who


async def test_whoami_errors(hf: Client, fake: FakeHF) -> None:
    """Bad tokens get HF's 401 body; the rate-limited mode answers 429 with RateLimit headers."""
    err, _ = await get_json(hf, "/api/whoami-v2", "hf_nope", status=401)
    assert err == {"error": "Invalid credentials in Authorization header"}
    assert (await hf.get("/api/whoami-v2")).status == 401
    fake.settings.whoami_rate_limited = True
    _, resp = await get_json(hf, "/api/whoami-v2", ALICE_PAT, status=429)
    assert "RateLimit" in resp.headers and "RateLimit-Policy" in resp.headers
    assert fake.whoami_calls == 3


# ----------------------------------------------------------- consent and deny


async def test_deny_mode_redirects_with_access_denied(hf: Client, fake: FakeHF) -> None:
    """settings.deny answers 303 with HF's access_denied error and the state."""
    fake.settings.deny = True
    resp = await authorize(hf)
    assert "error=access_denied&error_description=The+user+denied+the+request" in location(resp)
    assert callback(resp)["state"] == "st-1"


async def test_consent_page_offers_accounts_and_prechecks_orgs(hf: Client, fake: FakeHF) -> None:
    """Without a session the page lists every account with its orgs; orgIds are pre-checked."""
    resp = await authorize(hf, orgIds=[ACME])
    assert resp.status == 200 and resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    forms = Forms(await resp.text())
    alice = forms.with_button("Sign in as alice")
    assert alice["boxes"] == [(ACME, True), (TOOLS, False)]
    assert forms.with_button("Sign in as dave")["boxes"] == []
    assert "Deny" in forms.forms[-1]["buttons"]
    assert fake.authorize_requests[-1]["orgIds"] == ACME


async def test_consent_is_remembered_through_the_token_cookie(hf: Client, fake: FakeHF) -> None:
    """After one approval the same app gets codes at once until it asks for more."""
    resp = await click(hf, await (await authorize(hf, orgIds=ACME)).text(), "Sign in as alice")
    assert "HttpOnly" in resp.headers["Set-Cookie"] and "token=" in resp.headers["Set-Cookie"]
    assert callback(resp)["state"] == "st-1"
    again = await authorize(hf, scope="openid", orgIds=ACME)
    body = await (await code_exchange(hf, callback(again)["code"])).json()
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert info["orgs"][0]["roleInOrg"] == "admin"
    page = await authorize(hf, scope="openid read-repos")
    assert page.status == 200
    assert "Authorize" in Forms(await page.text()).with_button("Sign in as alice")["buttons"]
    fake.forget_consent("alice")
    assert (await authorize(hf, scope="openid")).status == 200


async def test_unchecked_orgs_are_not_granted(hf: Client, fake: FakeHF) -> None:
    """The user can refuse an org the app asked for; it then has no roleInOrg."""
    page = await (await authorize(hf, orgIds=f"{ACME},{TOOLS}")).text()
    resp = await click(hf, page, "Sign in as alice", uncheck=(TOOLS,))
    body = await (await code_exchange(hf, callback(resp)["code"])).json()
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert [o.get("roleInOrg") for o in info["orgs"]] == ["admin", None]


async def test_deny_button(hf: Client) -> None:
    """Pressing Deny sends the user back with access_denied."""
    resp = await click(hf, await (await authorize(hf)).text(), "Deny")
    assert callback(resp)["error"] == "access_denied"


async def test_orgids_may_repeat_or_use_commas(hf: Client, fake: FakeHF) -> None:
    """Repeated orgIds are recorded as a list and all of them are granted."""
    body = await login(hf, fake, orgIds=[ACME, f" {TOOLS} ,"], scope="openid")
    assert fake.authorize_requests[-1]["orgIds"] == [ACME, f" {TOOLS} ,"]
    info, _ = await get_json(hf, "/oauth/userinfo", body["access_token"])
    assert [o["roleInOrg"] for o in info["orgs"]] == ["admin", "write"]


async def test_prompt_none_fails_without_a_session(hf: Client) -> None:
    """prompt=none never shows a page."""
    assert callback(await authorize(hf, prompt="none"))["error"] == "login_required"


# -------------------------------------------------------------- device flow


async def test_device_flow(hf: Client, fake: FakeHF) -> None:
    """Poll is pending until the user approves on the device page, then tokens come once."""
    fake.settings.device_interval = 0
    resp = await hf.post(
        "/oauth/device", data={"scope": "openid profile"}, headers={"Authorization": BASIC}
    )
    start = await resp.json()
    assert start["verification_uri"] == f"{fake.issuer}/oauth/device"
    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": start["device_code"],
    }
    assert (await (await token(hf, poll)).json())["error"] == "authorization_pending"
    page = await hf.get("/oauth/device", params={"user_code": start["user_code"]})
    done = await click(hf, await page.text(), "Sign in as alice")
    assert "Device connected" in await done.text()
    body = await (await token(hf, poll)).json()
    assert body["access_token"].startswith("hf_oauth_") and body["scope"] == "openid profile"
    assert (await (await token(hf, poll)).json())["error"] == "invalid_grant"


# ------------------------------------------------------- server and fixtures


async def test_serve_runs_a_real_server() -> None:
    """serve() binds a free port, sets the issuer and stops cleanly."""
    fake = FakeHF.demo()
    async with fake.serve() as issuer, aiohttp.ClientSession() as session:
        assert issuer == fake.issuer and issuer.startswith("http://127.0.0.1:")
        async with session.get(f"{issuer}/.well-known/openid-configuration") as resp:
            assert (await resp.json())["issuer"] == issuer


def test_demo_fixture() -> None:
    """The packaged demo world has the users, orgs, tokens and app the demo relies on."""
    fake = FakeHF.demo()
    assert list(fake.users) == ["alice", "bob", "carol", "dave"]
    assert fake.users["alice"].roles == {"acme": "admin", "hf-tools": "write"}
    assert fake.users["alice"].is_pro and fake.users["bob"].roles == {"acme": "read"}
    assert fake.users["carol"].security_restrictions == {"acme": ["sso"]}
    assert fake.users["alice"].access_tokens == {"hf_alice_demo_read_token": "read"}
    assert fake.users["bob"].access_tokens == {"hf_bob_demo_write_token": "write"}
    client = fake.clients["hf-gateway-demo"]
    assert client.client_secret == "demo-secret-not-for-production"
    assert client.redirect_uris == [
        "http://127.0.0.1:8080/_gateway/callback",
        "http://localhost:8080/_gateway/callback",
    ]


def test_bad_fixture_lists_every_problem(tmp_path: Path) -> None:
    """from_yaml reports all problems at once, each with its place."""
    path = tmp_path / "world.yaml"
    path.write_text(
        "orgs: [{sub: xyz, slug: acme, name: Acme}]\n"
        "users: [{sub: 3f501019b1460301dacf1e59, username: a, name: A, email: a@x,"
        " roles: {nope: admin}, access_tokens: {hf_oauth_x: owner}}]\n"
        "clients: []\n"
    )
    with pytest.raises(FixtureError) as info:
        FakeHF.from_yaml(path)
    assert len(info.value.problems) == 4, info.value.problems
