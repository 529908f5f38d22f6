"""Spaces mode over real HTTP: the gateway's pages may be framed by the Space page's origin
only, its cookies are ``SameSite=None; Secure`` (third-party in the huggingface.co iframe),
and a cross-site request carrying them is still refused by the Origin check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import RecordingUpstream, recording_upstream

FRAMER = "https://huggingface.co"
SPACES: dict[str, Any] = {
    "server": {"mode": "spaces", "frame_ancestors": [FRAMER]},
    "session": {"cookie_samesite": "none"},
}
SESSION = "__Host-hf_gateway"


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running:
        yield running


def browser(gateway: GatewayHarness) -> aiohttp.ClientSession:
    """A cookie jar that, like Chromium, keeps and sends Secure cookies on loopback http."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[gateway.url])
    return aiohttp.ClientSession(cookie_jar=jar)


async def signed_in(gateway: GatewayHarness, username: str = "alice") -> str:
    async with browser(gateway) as http:
        await gateway.sign_in(http, username)
        return next(c.value for c in http.cookie_jar if c.key == SESSION)


def csp(response: aiohttp.ClientResponse) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    pairs = (part.strip().partition(" ") for part in policy.split(";") if part.strip())
    return {name: value for name, _, value in pairs}


PAGES = [
    pytest.param("/_gateway/sign_in?rd=/", id="sign-in page"),
    pytest.param("/_gateway/logout", id="sign-out confirmation"),
    pytest.param("/_gateway/callback?state=nope", id="failed sign-in page"),
]


@pytest.mark.parametrize("path", PAGES)
async def test_in_spaces_mode_gateway_pages_may_be_framed_by_the_space_page_only(
    start_gateway: StartGateway, path: str
) -> None:
    """frame-ancestors names huggingface.co alone and X-Frame-Options (which cannot name an
    origin) is left out; every other directive stays as strict as outside Spaces mode."""
    plain = await start_gateway()
    spaces = await start_gateway(SPACES)
    async with aiohttp.ClientSession() as http:
        async with http.get(plain.url + path, headers=BROWSER) as response:
            strict = csp(response)
            assert response.headers["X-Frame-Options"] == "DENY"
            assert strict["frame-ancestors"] == "'none'"
        async with http.get(spaces.url + path, headers=BROWSER) as response:
            framed = csp(response)
            assert "X-Frame-Options" not in response.headers
            assert framed["frame-ancestors"] == FRAMER
    assert {k: v for k, v in framed.items() if k != "frame-ancestors"} == {
        k: v for k, v in strict.items() if k != "frame-ancestors"
    }
    assert strict["default-src"] == "'none'" and "script-src" not in strict


async def test_the_sign_in_button_leaves_the_frame(start_gateway: StartGateway) -> None:
    """HF's authorize page refuses to be framed: a page that may be framed opens it in a new
    tab (a Space's iframe sandbox lets popups escape, not top navigation); a page that may
    not be framed opens it at the top, in the same tab. No script either way."""
    pages = {}
    for name, overrides in (("spaces", SPACES), ("plain", {})):
        gateway = await start_gateway(overrides)
        async with aiohttp.ClientSession() as http:
            url = f"{gateway.url}/_gateway/sign_in?rd=/"
            async with http.get(url, headers=BROWSER) as response:
                pages[name] = await response.text()
    assert 'target="_blank" rel="noopener"' in pages["spaces"]
    assert 'target="_top"' in pages["plain"] and "_blank" not in pages["plain"]
    assert "<script" not in pages["spaces"] + pages["plain"]


async def test_spaces_cookies_are_samesite_none_secure_host_prefixed(
    start_gateway: StartGateway,
) -> None:
    """The login binding survives the top-level round trip to HF and back; the session
    cookie reaches the gateway inside the huggingface.co iframe (a third-party context)."""
    gateway = await start_gateway(SPACES)
    gateway.fake.settings.auto_login = "alice"
    async with browser(gateway) as http:
        async with http.get(
            f"{gateway.url}/_gateway/login", headers=BROWSER, allow_redirects=False
        ) as response:
            login = SimpleCookie(response.headers["Set-Cookie"])
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo", headers=API) as echoed:
            assert echoed.status == 200
            headers = {k.lower(): v for k, v in (await echoed.json())["headers"]}
            assert headers["x-forwarded-user"] == "alice"
        session = next(c for c in http.cookie_jar if c.key == SESSION)
    (binding,) = login.values()
    assert binding.key == "__Host-hf_gateway_login"
    for cookie in (binding, session):
        assert (cookie["samesite"], cookie["secure"], cookie["path"]) == ("None", True, "/")
        assert cookie["httponly"] is True
    assert not binding["domain"]  # __Host-: no Domain (the jar records the session's host)


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(FRAMER, id="the Space page that frames it"),
        pytest.param("https://evil.example", id="another site"),
        pytest.param("null", id="a sandboxed frame"),
    ],
)
async def test_attack_a_cross_site_post_with_the_samesite_none_cookie_is_refused(
    start_gateway: StartGateway, recorder: RecordingUpstream, origin: str
) -> None:
    """SameSite=None lets any site's page send the session cookie; the Origin check still
    refuses the unsafe request (403) and nothing reaches the upstream."""
    gateway = await start_gateway(SPACES, upstream_url=recorder.url)
    cookie = await signed_in(gateway)
    recorder.seen.clear()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        sent = {**API, "Cookie": f"{SESSION}={cookie}", "Origin": origin}
        async with http.post(f"{gateway.url}/api/echo", headers=sent, data=b"x") as response:
            assert response.status == 403
            assert (await response.json())["error"] == "cross_site"
    assert recorder.seen == []


async def test_a_same_origin_post_with_the_samesite_none_cookie_is_served(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """The positive twin: the Space's own page (inside the iframe its origin is the
    Space's) posts with the same cookie and reaches the upstream as alice."""
    gateway = await start_gateway(SPACES, upstream_url=recorder.url)
    cookie = await signed_in(gateway)
    recorder.seen.clear()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        sent = {**API, "Cookie": f"{SESSION}={cookie}", "Origin": gateway.url}
        async with http.post(f"{gateway.url}/api/echo", headers=sent, data=b"x") as response:
            assert response.status == 200
    assert len(recorder.seen) == 1
    assert ("X-Forwarded-User", "alice") in recorder.seen[0].headers
