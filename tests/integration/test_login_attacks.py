"""Attacks on sign-in and sign-out over real HTTP (SECURITY.md §8, §11; issue 7). Each
attack sits next to the positive case it must not break.

- Logout CSRF: a cross-site GET or POST signs nobody out; a POST from our own pages does.
- The login hop to public_url carries the raw query untouched.

The browser here keeps its cookies by hand (``Browser``), so a test can plant, copy or drop
any of them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from gateway.devtools.fake_hf import FakeHF
from tests.support.harness import (
    API,
    BROWSER,
    GatewayHarness,
)
from tests.support.raw_http import raw_request

SESSION = "hf_gateway"
EVIL = "https://evil.example"


# --------------------------------------------------------------------------- a browser


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    set_cookies: tuple[str, ...]
    body: str

    @property
    def location(self) -> str:
        return self.headers["Location"]

    def cookie_line(self, name: str) -> str:
        [line] = [c for c in self.set_cookies if c.startswith(f"{name}=")]
        return line

    def set_names(self) -> list[str]:
        return [c.split("=", 1)[0] for c in self.set_cookies]


def attributes(line: str) -> dict[str, str]:
    """Cookie attributes as lower-case name -> value ("" for flags)."""
    pairs = [part.strip().partition("=") for part in line.split(";")[1:]]
    return {name.lower(): value for name, _, value in pairs}


def value_of(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


@dataclass
class Browser:
    """One browser's cookies on the gateway, sent to the gateway only."""

    gateway: GatewayHarness
    http: aiohttp.ClientSession
    cookies: dict[str, str] = field(default_factory=dict)

    async def go(
        self,
        url: str,
        headers: Mapping[str, str] = BROWSER,
        *,
        method: str = "GET",
        extra_cookies: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request, redirects not followed; Set-Cookie applied to this browser."""
        sent = dict(headers)
        parts = urlsplit(url)
        ours = f"{parts.scheme}://{parts.netloc}" in self.gateway_origins
        jar = {**self.cookies, **(extra_cookies or {})} if ours else {}
        if jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        target = parts._replace(scheme="http").geturl() if ours else url
        async with self.http.request(
            method, target, headers=sent, allow_redirects=False
        ) as response:
            body = await response.text()
            lines = tuple(response.headers.getall("Set-Cookie", []))
            answer = Answer(response.status, response.headers, lines, body)
        if ours:
            for line in lines:
                name, value = line.split(";", 1)[0].split("=", 1)
                if attributes(line).get("max-age") == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        return answer

    @property
    def gateway_origins(self) -> tuple[str, ...]:
        public = self.gateway.config.server.public_url if self.gateway.config else ""
        return (self.gateway.url, public)

    async def begin(self, rd: str = "/") -> Answer:
        """GET /_gateway/login; the 302 to the provider."""
        answer = await self.go(f"{self.gateway.url}/_gateway/login?{urlencode({'rd': rd})}")
        assert answer.status == 302, answer.body
        return answer

    async def approve(self, authorize_url: str) -> str:
        """The fake provider approves (auto_login); the callback URL it sends back."""
        answer = await self.go(authorize_url)
        assert answer.status == 303
        return answer.location

    async def login_url(self, rd: str = "/") -> str:
        """Begin and approve a login; the callback URL, not yet visited."""
        return await self.approve((await self.begin(rd)).location)

    def session(self) -> str | None:
        return self.cookies.get(f"__Host-{SESSION}") or self.cookies.get(SESSION)

    async def whoami(self) -> str | None:
        """The username this browser is signed in as, or None."""
        answer = await self.go(f"{self.gateway.url}/_gateway/userinfo", API)
        if answer.status != 200:
            return None
        username = re.search(r'"username": "([^"]+)"', answer.body)
        return username.group(1) if username else None


Browsers = Callable[[GatewayHarness], Awaitable[Browser]]


@pytest.fixture
async def browsers() -> AsyncIterator[Browsers]:
    sessions: list[aiohttp.ClientSession] = []

    async def make(gateway: GatewayHarness) -> Browser:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        sessions.append(http)
        return Browser(gateway, http)

    yield make
    for http in sessions:
        await http.close()


@pytest.fixture
def alice(fake_hf: FakeHF) -> FakeHF:
    fake_hf.settings.auto_login = "alice"
    return fake_hf


# --------------------------------------------------------------------------- 7: logout CSRF


CROSS_SITE_NAVIGATION = {
    **BROWSER,
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Dest": "document",
    "Referer": f"{EVIL}/page",
}


async def test_a_cross_site_get_of_logout_signs_nobody_out(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """A link or redirect from another site to /_gateway/logout only shows a confirmation
    page: the session and its cookie stay. The page's button POSTs the sign-out."""
    browser = await browsers(gateway)
    await browser.go(await browser.login_url())
    answer = await browser.go(f"{gateway.url}/_gateway/logout", CROSS_SITE_NAVIGATION)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert SESSION not in answer.set_names()
    assert re.search(r'<form [^>]*method="post" action="/_gateway/logout"', answer.body)
    assert ">Sign out</button>" in answer.body
    assert await browser.whoami() == "alice"


@pytest.mark.parametrize(
    ("headers", "signed_out"),
    [
        pytest.param({"Origin": EVIL}, False, id="foreign Origin"),
        pytest.param({"Origin": "null"}, False, id="opaque Origin"),
        pytest.param({"Referer": f"{EVIL}/page"}, False, id="foreign Referer"),
        pytest.param({}, False, id="no Origin or Referer"),
        pytest.param({"Origin": "http://127.0.0.1.evil.example"}, False, id="suffix trick"),
        pytest.param({"Origin": "http://127.0.0.1:1"}, False, id="our host, another port"),
        pytest.param({"Origin": "https://SELFHOST"}, False, id="our host, another scheme"),
        pytest.param({"Origin": "SELF"}, True, id="our Origin"),
        pytest.param({"Referer": "SELF/_gateway/logout"}, True, id="our Referer"),
    ],
)
async def test_signing_out_takes_a_post_from_our_own_site(
    gateway: GatewayHarness,
    browsers: Browsers,
    alice: FakeHF,
    headers: dict[str, str],
    signed_out: bool,
) -> None:
    """A POST to /_gateway/logout whose Origin (or Referer) is not the gateway's is 403 and
    the session lives on; from our own origin it ends the session server-side."""
    browser = await browsers(gateway)
    await browser.go(await browser.login_url())
    cookie = browser.session()
    host = gateway.url.removeprefix("http://")
    ours = {k: v.replace("SELFHOST", host).replace("SELF", gateway.url) for k, v in headers.items()}
    sent = {**BROWSER, **ours}
    answer = await browser.go(f"{gateway.url}/_gateway/logout", sent, method="POST")
    if not signed_out:
        assert answer.status == 403
        assert "cross_site" in answer.body
        assert await browser.whoami() == "alice"
        return
    assert answer.status == 200
    assert "You have been signed out" in answer.body
    assert browser.session() is None
    copy = await browsers(gateway)
    copy.cookies[SESSION] = cookie or ""
    assert await copy.whoami() is None


@pytest.mark.parametrize(
    ("rd", "action", "landing"),
    [
        pytest.param("/dash?x=1", "/_gateway/logout?rd=%2Fdash%3Fx%3D1", "/dash?x=1", id="local"),
        pytest.param("//evil.com", "/_gateway/logout?rd=%2F", "/", id="hostile becomes /"),
    ],
)
async def test_the_confirmation_carries_rd_into_the_sign_out(
    gateway: GatewayHarness,
    browsers: Browsers,
    alice: FakeHF,
    rd: str,
    action: str,
    landing: str,
) -> None:
    """GET /_gateway/logout?rd= renders a form posting to the same URL with the sanitised
    rd; submitting it from the page (Origin sent, since the page's Referrer-Policy is
    same-origin) signs out and lands on rd."""
    browser = await browsers(gateway)
    await browser.go(await browser.login_url())
    page = await browser.go(f"{gateway.url}/_gateway/logout?{urlencode({'rd': rd})}")
    assert page.status == 200
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert f'action="{action.replace("&", "&amp;")}"' in page.body
    assert await browser.whoami() == "alice"
    submitted = await browser.go(
        gateway.url + action, {**BROWSER, "Origin": gateway.url}, method="POST"
    )
    assert (submitted.status, submitted.location) == (303, landing)
    assert await browser.whoami() is None


async def test_the_sign_out_button_of_a_403_page_works_from_the_page(
    gateway: GatewayHarness, browsers: Browsers, fake_hf: FakeHF
) -> None:
    """The 403 page's "Sign out" form is served with Referrer-Policy same-origin, so the
    browser sends our Origin with it (no-referrer would make it ``Origin: null``)."""
    fake_hf.settings.auto_login = "bob"
    browser = await browsers(gateway)
    await browser.go(await browser.login_url())
    denied = await browser.go(f"{gateway.url}/admin/")
    assert denied.status == 403
    assert denied.headers["Referrer-Policy"] == "same-origin"
    assert 'action="/_gateway/logout"' in denied.body
    out = await browser.go(
        f"{gateway.url}/_gateway/logout",
        {**BROWSER, "Origin": gateway.url},
        method="POST",
    )
    assert out.status == 200
    assert await browser.whoami() is None


# --------------------------------------------------------------------------- 11: the login hop


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("rd=%2Fa%0d%0aSet-Cookie:%20x=1", id="CR LF"),
        pytest.param("rd=%2Fx%23y", id="%23"),
        pytest.param("rd=%2Fa%20b", id="%20"),
        pytest.param("rd=%2Fa+b", id="plus"),
        pytest.param(
            "rd=%2Fdash%3Fx%3D1&scope=read-repos&org=6650a1c2e3f4a5b6c7d8e9f0",
            id="many",
        ),
        pytest.param("rd=%2Fdash", id="plain rd"),
    ],
)
async def test_the_login_hop_to_the_public_host_keeps_the_query_byte_for_byte(
    gateway: GatewayHarness, query: str
) -> None:
    """/_gateway/login on another host name sends the browser to public_url with the query
    exactly as it came: never decoded and re-encoded (which dropped the connection on
    %0d%0a and cut rd at %23)."""
    answer = await raw_request(
        gateway.port,
        f"/_gateway/login?{query}",
        list(BROWSER.items()),
        host="localhost",
    )
    assert answer.status == 302
    assert answer.header("Location") == f"{gateway.url}/_gateway/login?{query}"
    assert answer.header("Set-Cookie") is None


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        pytest.param("rd=%2F<x>", "rd=%2F%3Cx%3E", id="angle brackets"),
        pytest.param('rd=%2F"x"', "rd=%2F%22x%22", id="quotes"),
        pytest.param("rd=%2F%zz", "rd=%2F%25zz", id="a broken escape"),
        pytest.param("rd=%2F{x}|y", "rd=%2F%7Bx%7D%7Cy", id="braces and bar"),
    ],
)
async def test_characters_with_no_place_in_a_query_are_escaped_on_the_hop(
    gateway: GatewayHarness, raw: str, escaped: str
) -> None:
    """What the request parser lets through but a URL may not hold is escaped; everything
    else of the query stays as it was."""
    answer = await raw_request(
        gateway.port, f"/_gateway/login?{raw}", list(BROWSER.items()), host="localhost"
    )
    assert answer.status == 302
    assert answer.header("Location") == f"{gateway.url}/_gateway/login?{escaped}"


@pytest.mark.parametrize(
    "rd",
    [
        pytest.param("/x#y", id="fragment"),
        pytest.param("/dash?x=1&y=2", id="query"),
        pytest.param("/a b", id="space (refused, so /)"),
    ],
)
async def test_a_login_through_the_hop_lands_where_a_direct_one_does(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF, rd: str
) -> None:
    """Signing in from another host name ends on the same target as signing in on the
    public host itself."""
    direct = await browsers(gateway)
    landed_direct = (await direct.go(await direct.login_url(rd))).location
    hop = await raw_request(
        gateway.port,
        f"/_gateway/login?{urlencode({'rd': rd}, safe='')}",
        list(BROWSER.items()),
        host="localhost",
    )
    assert hop.status == 302
    via_hop = await browsers(gateway)
    started = await via_hop.go(hop.header("Location") or "")
    assert started.status == 302
    landed = (await via_hop.go(await via_hop.approve(started.location))).location
    assert landed == landed_direct
    assert landed != "/" or rd == "/a b"
