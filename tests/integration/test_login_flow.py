"""Signing in with the fake Hugging Face through a running gateway, over real HTTP."""

from __future__ import annotations

import jwt
from yarl import URL

from gateway.devtools.fake_hf import FakeClient, FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness


async def test_unauthenticated_browser_is_sent_to_the_sign_in_page(gateway: GatewayHarness) -> None:
    """A browser navigation without a session gets a 302 to /_gateway/sign_in with rd."""
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/dash?x=1", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302
            location = URL(r.headers["Location"])
            assert str(location.with_query(None)) == f"{gateway.url}/_gateway/sign_in"
            assert location.query["rd"] == "/dash?x=1"


async def test_unauthenticated_api_client_gets_401_json(gateway: GatewayHarness) -> None:
    """API clients get 401 with a login_url and WWW-Authenticate, never a redirect."""
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/api/echo", headers=API, allow_redirects=False) as r:
            assert r.status == 401
            assert "WWW-Authenticate" in r.headers
            body = await r.json()
            assert body["error"] == "unauthenticated"
            assert body["login_url"].startswith(f"{gateway.url}/_gateway/sign_in?rd=")


async def test_alice_signs_in_and_the_upstream_sees_her_identity(gateway: GatewayHarness) -> None:
    """After login the upstream receives alice's identity headers and a verifiable JWT."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 200
            echoed = await r.json()
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["x-forwarded-user"] == "alice"
        assert headers["x-forwarded-user-id"] == "3f501019b1460301dacf1e59"
        assert headers["x-forwarded-groups"] == "acme,hf-tools"
        assert headers["x-forwarded-email"] == "alice@example.com"
        async with http.get(f"{gateway.url}/_gateway/jwks.json") as r:
            jwks = await r.json()
        token = headers["x-gateway-assertion"]
        key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key, algorithms=["ES256"], audience="tool", issuer=gateway.url)
        assert claims["sub"] == "3f501019b1460301dacf1e59"
        assert claims["preferred_username"] == "alice"
        assert {o["slug"]: o["role"] for o in claims["orgs"]} == {
            "acme": "admin",
            "hf-tools": "write",
        }
        assert claims["exp"] - claims["iat"] == 60


async def test_bob_with_read_role_is_forbidden_on_a_write_route(gateway: GatewayHarness) -> None:
    """bob (read in acme) gets 403 with the reason on the writers route, 200 elsewhere."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        async with http.get(f"{gateway.url}/writers/api/echo", headers=API) as r:
            assert r.status == 403
            body = await r.json()
            assert body["error"] == "forbidden"
            assert any("role below write" in d.lower() for d in body["details"])
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 200


async def test_userinfo_shows_the_identity_and_never_tokens(gateway: GatewayHarness) -> None:
    """/_gateway/userinfo returns who is signed in and nothing token-like."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/_gateway/userinfo") as r:
            assert r.status == 200
            text = await r.text()
        assert '"username": "alice"' in text
        assert "hf_oauth" not in text and "token" not in text.lower()


async def test_a_public_pkce_client_without_a_secret_signs_in(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """With no client_secret the gateway authenticates by PKCE alone: no Basic header."""
    fake_hf.clients["public-app"] = FakeClient(
        client_id="public-app",
        client_secret=None,
        redirect_uris=["http://127.0.0.1:8080/_gateway/callback"],
    )
    gateway = await start_gateway({"provider": {"client_id": "public-app", "client_secret": None}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo", headers=API) as response:
            assert response.status == 200
    exchange = fake_hf.token_requests[-1]
    assert exchange["client_id"] == "public-app"
    assert exchange["auth"] != "basic"
    assert exchange["form"]["code_verifier"]
