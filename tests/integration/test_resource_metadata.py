"""RFC 9728 protected-resource metadata for agents and MCP clients (docs/cimd.md §4).

A 401 to an API client names the metadata in ``WWW-Authenticate: Bearer
resource_metadata=...``; the document names Hugging Face as the authorization server.
Only the exact well-known path is the gateway's; a tool's own well-known files still work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.redis_server import free_port

PRM_PATH = "/.well-known/oauth-protected-resource"


def _challenge(gateway: GatewayHarness, error: str | None = None) -> str:
    parts = ['realm="hf-gateway"']
    if error:
        parts.append(f'error="{error}"')
    parts.append(f'resource_metadata="{gateway.url}{PRM_PATH}"')
    return "Bearer " + ", ".join(parts)


async def _any_path(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "path": request.path})


@pytest.fixture
async def tool() -> AsyncIterator[str]:
    """An upstream answering every path with its method and path as JSON."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _routes(upstream: str) -> dict[str, Any]:
    return {
        "routes": [
            {"name": "wk", "path": "/.well-known", "upstream": upstream, "policy": "public"},
            {"name": "tool", "path": "/", "upstream": upstream, "policy": "authenticated"},
        ]
    }


async def test_userinfo_401_points_at_the_metadata_too(gateway: GatewayHarness) -> None:
    """/_gateway/userinfo without a credential: the same challenge as the proxy path."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/_gateway/userinfo", headers=API) as r,
    ):
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == _challenge(gateway)


async def test_a_page_load_with_an_hf_token_header_is_an_api_call(
    gateway: GatewayHarness,
) -> None:
    """A refused X-HF-Authorization token on an HTML GET gets 401 with the challenge (a
    client sending tokens is a script: a 302 to sign-in would hide the refusal); the twin
    without the header is a browser navigation and goes to sign-in."""
    async with aiohttp.ClientSession() as http:
        headers = {**BROWSER, "X-HF-Authorization": "Bearer hf_not_a_real_token_at_all"}
        async with http.get(f"{gateway.url}/api/echo", headers=headers, allow_redirects=False) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == _challenge(gateway, "invalid_token")
        async with http.get(f"{gateway.url}/api/echo", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302


async def test_a_401_to_an_api_client_points_at_the_metadata(gateway: GatewayHarness) -> None:
    """No credential: realm and resource_metadata, no error code (RFC 6750 §3.1)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/api/echo", headers=API) as r,
    ):
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == _challenge(gateway)


async def test_a_refused_token_gets_invalid_token_and_the_metadata(
    gateway: GatewayHarness,
) -> None:
    """A token HF refuses: error="invalid_token" beside resource_metadata."""
    headers = {**API, "Authorization": "Bearer hf_not_a_real_token"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/api/echo", headers=headers) as r,
    ):
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == _challenge(gateway, "invalid_token")


async def test_a_browser_is_redirected_without_a_challenge(gateway: GatewayHarness) -> None:
    """Browsers get the sign-in redirect, not a Bearer challenge."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/api/echo", headers=BROWSER, allow_redirects=False) as r,
    ):
        assert r.status == 302
        assert "WWW-Authenticate" not in r.headers


async def test_the_metadata_names_hugging_face_as_the_authorization_server(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """The RFC 9728 §2 document: resource = the origin asked, HF's issuer, header only."""
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + PRM_PATH) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            document = await r.json()
        async with http.head(gateway.url + PRM_PATH) as r:
            assert r.status == 200
    assert document == {
        "resource": gateway.url,
        "authorization_servers": [fake_hf.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["openid", "profile", "email", "read-memberships"],
        "resource_name": "127.0.0.1",
    }


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="a host the gateway does not serve"),
        pytest.param('a".example', id="a quote in the host"),
        pytest.param("127.0.0.1:x", id="a port that is not a number"),
    ],
)
async def test_a_forged_host_is_never_echoed_into_the_metadata(
    gateway: GatewayHarness, host: str
) -> None:
    """The resource and the challenge name only hosts the gateway serves, so a client's Host
    cannot point an agent at another origin or break the header's quoting."""
    headers = {**API, "Host": host}
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + PRM_PATH, headers=headers) as r:
            assert (await r.json())["resource"] == gateway.url
        async with http.get(f"{gateway.url}/api/echo", headers=headers) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == _challenge(gateway)


async def test_the_public_host_with_its_port_is_its_own_resource(gateway: GatewayHarness) -> None:
    """The twin: the served host, port included, is the resource."""
    headers = {"Host": f"127.0.0.1:{gateway.port}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(gateway.url + PRM_PATH, headers=headers) as r,
    ):
        assert (await r.json())["resource"] == f"http://127.0.0.1:{gateway.port}"


async def test_other_well_known_paths_still_reach_the_tool(
    start_gateway: StartGateway, tool: str
) -> None:
    """A tool's own well-known files, a path-suffixed metadata URL (RFC 9728 §3.1) and a
    POST go to the route; only GET/HEAD of the exact path are the gateway's."""
    gateway = await start_gateway(_routes(tool))
    async with aiohttp.ClientSession() as http:
        for path in (
            "/.well-known/openid-configuration",
            PRM_PATH + "/mcp",
            "/.well-known/oauth-cimd",  # not the gateway's with a registered app
        ):
            async with http.get(gateway.url + path) as r:
                assert r.status == 200
                assert (await r.json())["path"] == path
        async with http.post(gateway.url + PRM_PATH) as r:
            assert (await r.json())["method"] == "POST"
        async with http.get(gateway.url + PRM_PATH) as r:
            assert "authorization_servers" in await r.json()


async def test_without_bearer_tokens_there_is_no_metadata(
    start_gateway: StartGateway, tool: str
) -> None:
    """bearer_tokens: false: no token would be accepted, so none is advertised and the
    path is the tool's."""
    gateway = await start_gateway({**_routes(tool), "provider": {"bearer_tokens": False}})
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + PRM_PATH) as r:
            assert (await r.json())["path"] == PRM_PATH
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="hf-gateway"'
