"""Scripts and API clients authenticate with their Hugging Face token
(``Authorization: Bearer hf_...``), checked with whoami-v2 and cached by token hash."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import GatewayHarness

ALICE_READ = "hf_alice_demo_read_token"
BOB_WRITE = "hf_bob_demo_write_token"


async def call(
    url: str, token: str | None, cookie: str | None = None, method: str = "GET"
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    cookies = {"hf_gateway": cookie} if cookie else None
    async with aiohttp.ClientSession(cookies=cookies) as http:
        async with http.request(method, url, headers=headers) as response:
            body = await response.json(content_type=None) if response.status != 204 else None
            return response.status, body, dict(response.headers)


def upstream_headers(body: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


async def test_a_personal_token_signs_the_script_in_and_stays_with_the_gateway(
    gateway: GatewayHarness,
) -> None:
    """alice's read token reaches the tool as alice; the token itself is not forwarded."""
    status, body, _ = await call(f"{gateway.url}/api/echo", ALICE_READ)
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-groups"] == "acme,hf-tools"
    assert headers["x-gateway-assertion"]
    assert "authorization" not in headers
    assert ALICE_READ not in str(body)


async def test_an_invalid_hf_token_is_refused_and_never_proxied(gateway: GatewayHarness) -> None:
    """A token whoami refuses gets 401 invalid_token, next to the valid one that passes."""
    status, body, headers = await call(f"{gateway.url}/api/echo", "hf_not_a_real_token")
    assert status == 401
    assert body["error"] == "invalid_token"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert (await call(f"{gateway.url}/api/echo", ALICE_READ))[0] == 200


async def test_other_bearer_tokens_are_left_alone(gateway: GatewayHarness, fake_hf: FakeHF) -> None:
    """An upstream's own API key is not sent to Hugging Face: the request is anonymous."""
    before = fake_hf.whoami_calls
    status, body, _ = await call(f"{gateway.url}/api/echo", "glsa_grafana_service_key")
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert fake_hf.whoami_calls == before


async def test_whoami_answers_are_cached_by_token(gateway: GatewayHarness, fake_hf: FakeHF) -> None:
    """Five requests with one token cost one whoami-v2 call (it is heavily rate-limited)."""
    before = fake_hf.whoami_calls
    for _ in range(5):
        assert (await call(f"{gateway.url}/api/echo", BOB_WRITE))[0] == 200
    assert fake_hf.whoami_calls == before + 1


async def test_token_role_rules_tell_read_and_write_tokens_apart(
    start_gateway: StartGateway, upstream: str
) -> None:
    """A route for write tokens admits bob's write token and refuses alice's read token."""
    policy = {"allow": [{"token_role": ["write", "fineGrained"]}]}
    routes = [{"name": "deploy", "path": "/", "upstream": upstream, "policy": policy}]
    gateway = await start_gateway({"routes": routes})
    assert (await call(f"{gateway.url}/api/echo", BOB_WRITE))[0] == 200
    status, body, _ = await call(f"{gateway.url}/api/echo", ALICE_READ)
    assert status == 403
    assert any("token role read" in d.lower() for d in body["details"])


async def test_an_oauth_access_token_works_as_a_bearer_token(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """The hf_oauth_ token a browser login produced also identifies its user to scripts."""
    token = await _issued_access_token(gateway, fake_hf)
    status, body, _ = await call(f"{gateway.url}/_gateway/userinfo", token)
    assert status == 200
    assert (body["username"], body["authenticated_by"]) == ("bob", "token")


async def _issued_access_token(gateway: GatewayHarness, fake_hf: FakeHF) -> str:
    """Mint an OAuth access token for bob the way a script would get one (code flow)."""
    fake_hf.settings.auto_login = "bob"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{fake_hf.issuer}/oauth/authorize",
            params={
                "client_id": "hf-gateway-demo",
                "redirect_uri": f"{gateway.url}/_gateway/callback",
                "response_type": "code",
                "scope": "openid profile",
                "state": "s",
            },
            allow_redirects=False,
        ) as response:
            location = response.headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        async with http.post(
            f"{fake_hf.issuer}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": f"{gateway.url}/_gateway/callback",
            },
            headers={
                "Authorization": aiohttp.encode_basic_auth(
                    "hf-gateway-demo", "demo-secret-not-for-production"
                )
            },
        ) as response:
            token: str = (await response.json())["access_token"]
    assert token.startswith("hf_oauth_")
    return token


async def test_a_rate_limited_whoami_is_a_503_with_its_retry_after(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """When HF answers 429 the gateway says 503 and passes HF's wait on; nothing leaks."""
    fake_hf.settings.whoami_rate_limited = True
    status, body, headers = await call(f"{gateway.url}/api/echo", BOB_WRITE)
    assert status == 503
    assert body["error"] == "unavailable"
    assert headers["Retry-After"] == "60"


async def test_a_session_cookie_wins_over_a_bearer_token(gateway: GatewayHarness) -> None:
    """With both, the browser session decides; the HF token it made unnecessary does not
    go upstream either (the user's Hub credential reaches a tool only by pass_access_token)."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    status, body, _ = await call(f"{gateway.url}/api/echo", BOB_WRITE, cookie=cookie)
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "alice"
    assert "authorization" not in headers


async def test_bearer_tokens_can_be_switched_off(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """provider.bearer_tokens: false makes token requests anonymous, unseen by whoami."""
    gateway = await start_gateway({"provider": {"bearer_tokens": False}})
    before = fake_hf.whoami_calls
    status, body, _ = await call(f"{gateway.url}/api/echo", ALICE_READ)
    assert (status, body["error"]) == (401, "unauthenticated")
    assert fake_hf.whoami_calls == before


async def test_pass_access_token_forwards_the_bearer_token_only_as_its_own_header(
    start_gateway: StartGateway,
) -> None:
    """With pass_access_token the tool gets the token as X-Forwarded-Access-Token."""
    gateway = await start_gateway({"identity": {"pass_access_token": True}})
    status, body, _ = await call(f"{gateway.url}/api/echo", ALICE_READ)
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-access-token"] == ALICE_READ
    assert "authorization" not in headers
