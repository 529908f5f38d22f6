"""The product's main promise, end to end: a real Chromium signs in through
``hf-gateway run`` (Redis store) against the fake Hugging Face, in front of an echo upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from playwright.async_api import Browser, Page

from gateway.devtools.fake_hf import FakeHF
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import running_upstream
from tests.support.redis_server import RedisServer


@pytest.fixture
async def world(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FakeHF, GatewayProcess]]:
    fake = FakeHF.demo()
    async with fake.serve() as issuer, running_upstream() as upstream:
        process = GatewayProcess(
            tmp_path_factory.mktemp("gateway"),
            issuer=issuer,
            upstream=upstream,
            redis_url=redis_server.url,
        )
        await process.start()
        try:
            yield fake, process
        finally:
            process.stop()


async def sign_in_with_browser(page: Page, url: str, username: str) -> None:
    """Click through the gateway's sign-in page and the fake HF's account picker."""
    await page.goto(url)
    await page.get_by_role("link", name="Sign in with Hugging Face").click()
    await page.get_by_role("button", name=f"Sign in as {username}").click()
    await page.wait_for_url(url)


async def echoed_headers(page: Page, url: str) -> dict[str, str]:
    await page.goto(url)
    body = json.loads(await page.locator("body").inner_text())
    return {k.lower(): v for k, v in body["headers"]}


async def test_alice_signs_in_with_a_real_browser_through_hf_gateway_run(
    browser: Browser, world: tuple[FakeHF, GatewayProcess]
) -> None:
    """The whole journey: sign in, identity upstream, spoofing, restart, 403, sign-out."""
    fake, gateway = world
    echo_url = f"{gateway.url}/api/echo"
    alice = await browser.new_context()
    page = await alice.new_page()

    # Unauthenticated: the browser lands on the branded sign-in page.
    await page.goto(echo_url)
    assert "/_gateway/sign_in" in page.url
    await sign_in_with_browser(page, echo_url, "alice")
    headers = await echoed_headers(page, echo_url)
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-user-id"] == fake.users["alice"].sub
    assert headers["x-forwarded-groups"] == "acme,hf-tools"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/jwks.json") as response:
            jwks = jwt.PyJWKSet.from_dict(await response.json())
    token = headers["x-gateway-assertion"]
    key = jwks[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="tool", issuer=gateway.url)
    assert claims["preferred_username"] == "alice"

    # A forged identity header never reaches the upstream, whatever its spelling.
    await alice.set_extra_http_headers(
        {"X-Forwarded-User": "mallory", "X_Forwarded_User": "mallory", "x-gateway-assertion": "x"}
    )
    spoofed = await echoed_headers(page, echo_url)
    assert spoofed["x-forwarded-user"] == "alice"
    assert "mallory" not in json.dumps(spoofed)
    await alice.set_extra_http_headers({})

    # The session lives in Redis: it survives a restart of the gateway.
    cookie = next(c for c in await alice.cookies() if c["name"] == "hf_gateway")
    gateway.stop()
    await gateway.start()
    assert (await echoed_headers(page, echo_url))["x-forwarded-user"] == "alice"

    # bob (read role in acme) is refused on the write-only route.
    bob = await browser.new_context()
    bob_page = await bob.new_page()
    await sign_in_with_browser(bob_page, echo_url, "bob")
    response = await bob_page.goto(f"{gateway.url}/writers/")
    assert response is not None and response.status == 403
    assert "Access denied" in await bob_page.content()

    # A GET of logout only asks; the page's button POSTs the sign-out (the browser sends our
    # Origin with it), which deletes the session server-side: a copied cookie stops working.
    await page.goto(f"{gateway.url}/_gateway/logout?rd=/api/echo")
    assert (await echoed_headers(page, echo_url))["x-forwarded-user"] == "alice"
    await page.goto(f"{gateway.url}/_gateway/logout?rd=/api/echo")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{gateway.url}/_gateway/sign_in?rd=%2Fapi%2Fecho")
    async with aiohttp.ClientSession(cookies={"hf_gateway": cookie["value"]}) as http:
        async with http.get(echo_url, headers={"Accept": "application/json"}) as response:
            assert response.status == 401
    await alice.close()
    await bob.close()
