"""CORS preflights: a route with cors_preflight lets OPTIONS + Origin +
Access-Control-Request-Method through unauthenticated, without the client's credentials."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import StartGateway
from tests.support.raw_http import raw_request

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
CREDENTIALS = {"Cookie": "hf_gateway=x; theme=dark", "Authorization": "Basic dXNlcjpwdw=="}


def _routes(upstream: str, **extra: Any) -> dict[str, Any]:
    return {
        "routes": [
            {"name": "api", "path": "/", "upstream": upstream, "policy": "authenticated", **extra}
        ]
    }


async def _options(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.options(url, headers={"Accept": "application/json", **headers}) as r:
            return r.status, await r.json(content_type=None)


async def test_a_preflight_reaches_the_upstream_without_credentials(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream, cors_preflight=True))
    status, body = await _options(f"{gateway.url}/api/echo", {**PREFLIGHT, **CREDENTIALS})
    assert status == 200
    assert body["method"] == "OPTIONS"
    sent = {k.lower(): v for k, v in body["headers"]}
    assert sent["access-control-request-method"] == "POST"
    assert "cookie" not in sent and "authorization" not in sent
    assert sent.get("x-forwarded-user", "") == ""


async def test_without_cors_preflight_a_preflight_needs_sign_in(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream))
    assert (await _options(f"{gateway.url}/api/echo", PREFLIGHT))[0] == 401


async def test_an_options_request_that_is_not_a_preflight_needs_sign_in(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream, cors_preflight=True))
    assert (await _options(f"{gateway.url}/api/echo", {"Origin": "https://app.example"}))[0] == 401
    only_method = {"Access-Control-Request-Method": "POST"}
    assert (await _options(f"{gateway.url}/api/echo", only_method))[0] == 401
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway.url}/api/echo", headers={**PREFLIGHT, "Accept": "application/json"}
        ) as r:
            assert r.status == 401


async def test_forward_auth_grants_a_preflight_only_on_a_cors_preflight_route(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The front proxy asks /_gateway/auth about the preflight: 200 anonymous where the
    route lets preflights through, 401 where it does not."""
    routes = {
        "routes": [
            {
                "name": "api",
                "path": "/api",
                "upstream": upstream,
                "policy": "authenticated",
                "cors_preflight": True,
            },
            {"name": "app", "path": "/", "upstream": upstream, "policy": "authenticated"},
        ],
        "server": {"trusted_proxies": ["127.0.0.1/32"]},
    }
    gateway = await start_gateway(routes)

    async def ask(uri: str) -> int:
        sent = [
            ("X-Forwarded-Method", "OPTIONS"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", f"127.0.0.1:{gateway.port}"),
            ("X-Forwarded-Uri", uri),
            *PREFLIGHT.items(),
            ("Accept", "application/json"),
        ]
        return (await raw_request(gateway.port, "/_gateway/auth", sent)).status

    assert await ask("/api/items") == 200
    assert await ask("/items") == 401
