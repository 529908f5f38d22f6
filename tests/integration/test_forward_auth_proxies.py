"""Real front proxies in front of the gateway and a tool, configured by the guides' own
snippet files: nginx with ``auth_request`` (docs/deploy/snippets/nginx.conf, shown by
docs/deploy/nginx.md) and Caddy 2 with ``forward_auth ... copy_headers``
(docs/deploy/snippets/Caddyfile, shown by docs/deploy/caddy.md).

Every test runs against each proxy. The client only ever talks to the proxy; the proxy
asks the gateway (``/_gateway/auth``) and proxies to the recording echo upstream itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.devtools.fake_hf import FakeHF
from tests.support.front_proxies import (
    Caddy,
    FrontProxy,
    Nginx,
    Traefik,
    browser_sign_in,
    running,
)
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import RecordingUpstream, raw_request, recording_upstream
from tests.support.redis_server import free_port

ALICE_TOKEN = "hf_alice_demo_read_token"
FORGED = {
    "X-Forwarded-User": "admin",
    "X-Forwarded-Groups": "acme",
    "X-Gateway-Assertion": "forged.jwt.value",
    "X-Forwarded-Access-Token": "hf_forged",
}


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running_upstream:
        yield running_upstream


def front_config(front: str) -> dict[str, Any]:
    """The harness's routes, with nginx's origin as public_url and nginx trusted."""
    return {"server": {"public_url": front, "trusted_proxies": ["127.0.0.1/32"]}}


@pytest.fixture(params=[Nginx, Caddy, Traefik], ids=["nginx", "caddy", "traefik"])
async def stack(
    request: pytest.FixtureRequest, fake_hf: FakeHF, recorder: RecordingUpstream
) -> AsyncIterator[tuple[FrontProxy, GatewayHarness]]:
    """The proxy on its own port in front of a started gateway and the recording tool."""
    port = free_port()
    front = f"http://127.0.0.1:{port}"
    gateway = GatewayHarness(fake_hf, recorder.url, overrides=front_config(front))
    await gateway.start()
    tool_port = int(recorder.url.rsplit(":", 1)[1])
    try:
        kind: type[Nginx] | type[Caddy] | type[Traefik] = request.param
        proxy = kind(port, gateway_port=gateway.port, tool_port=tool_port)
        async with running(proxy) as front:
            yield front, gateway
    finally:
        await gateway.stop()


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def echoed(body: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


async def test_alice_signs_in_through_the_proxy_and_the_tool_sees_her_identity(
    stack: tuple[FrontProxy, GatewayHarness], fake_hf: FakeHF, recorder: RecordingUpstream
) -> None:
    """A browser asks the proxy for a page, is sent to the sign-in page behind it, signs in,
    and the tool then receives her identity headers and an assertion that verifies with
    the JWKS (aud = the route), and never the session cookie."""
    front, _ = stack
    async with browser() as http:
        sign_in = await browser_sign_in(http, front.url, fake_hf, "alice", "/api/echo?x=1")
        assert "rd=%2Fapi%2Fecho%3Fx%3D1" in sign_in
        recorder.seen.clear()
        async with http.get(
            f"{front.url}/api/echo", headers={**API, "Cookie": "theme=dark"}
        ) as response:
            assert response.status == 200
            headers = echoed(await response.json())
        async with http.get(f"{front.url}/_gateway/jwks.json") as response:
            jwks = await response.json()
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-user-id"] == "3f501019b1460301dacf1e59"
    assert headers["x-forwarded-groups"] == "acme,hf-tools"
    assert headers["x-forwarded-email"] == "alice@example.com"
    token = headers["x-gateway-assertion"]
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="tool", issuer=front.url)
    assert claims["preferred_username"] == "alice"
    # Traefik cannot remove one cookie; its guide says so.
    assert ("hf_gateway=" not in headers.get("cookie", "")) is front.strips_session_cookie
    assert "theme=dark" in headers.get("cookie", "")
    assert len(recorder.seen) == 1  # the proxy proxied once; the gateway made no hop


async def test_bob_is_refused_on_the_write_only_location_and_let_in_on_a_signed_in_one(
    stack: tuple[FrontProxy, GatewayHarness], fake_hf: FakeHF, recorder: RecordingUpstream
) -> None:
    """The original URI decides: /writers needs write in acme (bob has read): 403, and the
    tool saw nothing; / needs a signed-in user: 200 as bob."""
    front, _ = stack
    async with browser() as http:
        await browser_sign_in(http, front.url, fake_hf, "bob", "/")
        recorder.seen.clear()
        async with http.get(f"{front.url}/writers/api/echo", headers=API) as response:
            assert response.status == 403
        assert recorder.seen == []
        async with http.get(f"{front.url}/api/echo", headers=API) as response:
            assert response.status == 200
            assert echoed(await response.json())["x-forwarded-user"] == "bob"


async def test_anonymous_api_clients_get_401_and_token_holders_get_in(
    stack: tuple[FrontProxy, GatewayHarness], recorder: RecordingUpstream
) -> None:
    """No redirect for an API client: 401 JSON with the sign-in URL and WWW-Authenticate,
    nothing proxied; the twin with alice's Hugging Face token reaches the tool as alice."""
    front, _ = stack
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{front.url}/api/echo", headers=API, allow_redirects=False
        ) as response:
            assert response.status == 401
            body = await response.json(content_type=None)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert body["error"] == "unauthenticated"
        assert body["login_url"].startswith(f"{front.url}/_gateway/sign_in?rd=")
        assert recorder.seen == []
        async with http.get(
            f"{front.url}/api/echo",
            headers={**API, "Authorization": f"Bearer {ALICE_TOKEN}"},
        ) as response:
            assert response.status == 200
            assert echoed(await response.json())["x-forwarded-user"] == "alice"


async def test_a_browser_gets_the_sign_in_redirect_and_public_paths_pass(
    stack: tuple[FrontProxy, GatewayHarness], recorder: RecordingUpstream
) -> None:
    """Anonymous: a navigation to a protected page is a 302 to the sign-in page; a public
    path is proxied, with no identity."""
    front, _ = stack
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{front.url}/dash", headers=BROWSER, allow_redirects=False
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == f"{front.url}/_gateway/sign_in?rd=%2Fdash"
        async with http.get(f"{front.url}/public/api/echo", headers=API) as response:
            assert response.status == 200  # proxied
    assert recorder.paths() == ["/public/api/echo"]
    assert recorder.seen[0].header("X-Forwarded-User") in (None, "")


async def test_forged_identity_and_forwarding_headers_never_reach_the_tool(
    stack: tuple[FrontProxy, GatewayHarness], fake_hf: FakeHF, recorder: RecordingUpstream
) -> None:
    """A client's identity headers are replaced (or dropped when the gateway's value is
    empty) and its X-Forwarded-Uri / X-Original-URL cannot change the URI judged: /admin
    with a forged public URI is still refused. The twin, alice signed in, passes as alice."""
    front, gateway = stack
    forged_uri = {"X-Forwarded-Uri": "/public/x", "X-Original-URL": f"{front.url}/public/x"}
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{front.url}/public/x", headers={**API, **FORGED}, allow_redirects=False
        ) as response:
            assert response.status == 200  # proxied, as a public path
        seen = {k.lower(): v for k, v in recorder.seen[-1].headers}
        # Absent (nginx drops an empty header) or empty (Caddy sets it): never the client's.
        assert {name: seen.get(name.lower(), "") for name in FORGED} == dict.fromkeys(FORGED, "")
        async with http.get(
            f"{front.url}/admin/x", headers={**API, **forged_uri}, allow_redirects=False
        ) as response:
            assert response.status == 401
    assert recorder.paths() == ["/public/x"]
    async with browser() as http:
        await browser_sign_in(http, front.url, fake_hf, "alice", "/")
        async with http.get(f"{front.url}/api/echo", headers={**API, **FORGED}) as response:
            headers = echoed(await response.json())
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-groups"] == "acme,hf-tools"
    assert headers["x-gateway-assertion"] != FORGED["X-Gateway-Assertion"]
    assert headers.get("x-forwarded-access-token") != FORGED["X-Forwarded-Access-Token"]


async def test_a_client_cannot_ask_the_auth_endpoint_through_the_proxy(
    stack: tuple[FrontProxy, GatewayHarness], fake_hf: FakeHF
) -> None:
    """The proxy is trusted, but it does not pass a client's own forward-auth question:
    with alice's session and a forged original request, /_gateway/auth through the proxy
    (in any spelling) is no 2xx and hands out no assertion. The twin: the proxy's own
    question, behind the same session, lets her in."""
    front, _ = stack
    async with browser() as http:
        await browser_sign_in(http, front.url, fake_hf, "alice", "/")
        cookie = next(c.value for c in http.cookie_jar if c.key == "hf_gateway")
    forged = [
        ("Cookie", f"hf_gateway={cookie}"),
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Uri", "/x"),
        ("X-Forwarded-Host", "127.0.0.1"),
        ("X-Original-Method", "GET"),
        ("X-Original-URL", "http://127.0.0.1/x"),
    ]
    for path in ("/_gateway/auth", "/_gateway//auth", "/_gateway/%61uth", "/x/../_gateway/auth"):
        direct = await raw_request(front.port, path, forged)
        assert direct.status >= 400, (path, direct.status)
        assert direct.header("X-Gateway-Assertion") is None, path
    async with browser() as http:
        http.cookie_jar.update_cookies({"hf_gateway": cookie})
        async with http.get(f"{front.url}/api/echo", headers=API) as response:
            assert response.status == 200


ALIASES = {
    "X_Forwarded_User": "admin",
    "X-Forwarded_Groups": "acme",
    "x_gateway_assertion": "forged.jwt.value",
    "X_FORWARDED_EMAIL": "admin@example.com",
}


async def test_underscore_spellings_of_identity_headers_never_reach_the_tool(
    stack: tuple[FrontProxy, GatewayHarness], fake_hf: FakeHF, recorder: RecordingUpstream
) -> None:
    """CGI, WSGI and PHP read ``X_Forwarded_User`` as X-Forwarded-User: a client's alias of
    an identity header is removed on the way (nginx ignores underscores in names; the
    Caddy and Traefik guides remove them), beside alice's real header, which arrives."""
    front, _ = stack
    async with browser() as http:
        await browser_sign_in(http, front.url, fake_hf, "alice", "/")
        recorder.seen.clear()
        async with http.get(f"{front.url}/api/echo", headers={**API, **ALIASES}) as response:
            assert response.status == 200
    seen = [name.lower().replace("_", "-") for name, _ in recorder.seen[-1].headers]
    assert seen.count("x-forwarded-user") == 1
    assert recorder.seen[-1].header("X-Forwarded-User") == "alice"
    assert [name for name, _ in recorder.seen[-1].headers if "_" in name] == []


async def test_gradio_clients_token_header_gets_in_through_every_proxy(
    stack: tuple[FrontProxy, GatewayHarness],
) -> None:
    """gradio_client sends its token as X-HF-Authorization; each guide's proxy hands it to
    /_gateway/auth (Traefik only lists what it passes), so alice gets in. Twin: a made-up
    token in that header is the gateway's 401."""
    front, _ = stack
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{front.url}/api/echo", headers={**API, "X-HF-Authorization": f"Bearer {ALICE_TOKEN}"}
        ) as response:
            assert response.status == 200
            assert echoed(await response.json())["x-forwarded-user"] == "alice"
        async with http.get(
            f"{front.url}/api/echo", headers={**API, "X-HF-Authorization": "Bearer hf_made_up"}
        ) as response:
            assert response.status == 401
