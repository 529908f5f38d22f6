"""optional_sign_in on public paths: identity headers when a valid session or token is
present; anonymous otherwise, and never a sign-in redirect or a refusal."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import StartGateway

BROWSER = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


def _routes(upstream: str, **extra: Any) -> dict[str, Any]:
    route = {"name": "blog", "path": "/", "upstream": upstream, "policy": "public", **extra}
    return {"routes": [route]}


def _user(body: Any) -> str:
    return str({k.lower(): v for k, v in body["headers"]}.get("x-forwarded-user", ""))


async def test_a_signed_in_reader_is_named_and_an_anonymous_one_passes(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream, optional_sign_in=True))
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo") as r:
            assert r.status == 200
            assert _user(await r.json()) == "alice"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/echo", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 200
            assert _user(await r.json()) == ""


async def test_an_invalid_cookie_or_token_just_passes_anonymous(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream, optional_sign_in=True))
    bad = {"Cookie": "hf_gateway=not-a-session", **BROWSER}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/echo", headers=bad, allow_redirects=False) as r:
            assert r.status == 200
            assert _user(await r.json()) == ""
        token = {"Authorization": "Bearer hf_not_a_real_token"}
        async with http.get(f"{gateway.url}/api/echo", headers=token) as r:
            assert r.status == 200
            assert _user(await r.json()) == ""
        good = {"Authorization": "Bearer hf_alice_demo_read_token"}
        async with http.get(f"{gateway.url}/api/echo", headers=good) as r:
            assert _user(await r.json()) == "alice"


async def test_without_optional_sign_in_a_public_route_stays_anonymous(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_routes(upstream))
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo") as r:
            assert r.status == 200
            assert _user(await r.json()) == ""
