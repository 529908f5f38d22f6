"""Attacks on the login binding, the pending-login store, sign-out and the login hop, over
real HTTP (SECURITY.md §8, §11; issue 7 items 3, 4, 7 and 11). Each attack sits next to the
positive case it must not break.

- Login CSRF by cookie tossing: a sibling subdomain plants a binding cookie and signs the
  victim in as the attacker. On https the binding is ``__Host-`` prefixed, every login mints
  its own binding, and a binding the browser presents is never adopted.
- Store flood: anonymous /_gateway/login requests store nothing (the pending login is sealed
  into the binding cookie); a replayed state is still refused.
- Logout CSRF: a cross-site GET or POST signs nobody out; a POST from our own pages does.
- The login hop to public_url carries the raw query untouched.

The browser here keeps its cookies by hand (``Browser``): the gateways with an https
public_url are reached over plain HTTP (the test client stands in for the TLS terminator),
and a cookie jar would not send Secure cookies over it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.config import parse_config
from gateway.devtools.fake_hf import FakeHF
from gateway.session.model import (
    MAX_SEALED_LOGIN,
    PENDING_LOGIN_TTL,
    PendingLogin,
    SessionKeys,
    new_code_verifier,
    new_nonce,
    new_state,
    seal_pending,
)
from gateway.session.redis import RedisStore
from gateway.web.context import CookieSettings
from tests.integration.conftest import StartGateway
from tests.support.harness import (
    API,
    BROWSER,
    CLIENT_ID,
    SECRET,
    GatewayHarness,
    base_raw_config,
)
from tests.support.raw_http import raw_request, recording_upstream
from tests.support.redis_server import RedisServer

SESSION = "hf_gateway"
BINDING = "hf_gateway_login"
HOST_BINDING = "__Host-hf_gateway_login"
SLOTS = (BINDING, f"{BINDING}_2", f"{BINDING}_3", f"{BINDING}_4")
HOST_SLOTS = tuple(f"__Host-{name}" for name in SLOTS)
ECHO = "/api/echo"
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


def state_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["state"]


HttpsGateway = Callable[..., Awaitable[GatewayHarness]]


@pytest.fixture
async def https_gateways(fake_hf: FakeHF, upstream: str) -> AsyncIterator[HttpsGateway]:
    """Gateways with an https public_url, served over plain HTTP."""
    started: list[GatewayHarness] = []

    async def start(
        session: dict[str, Any] | None = None, upstream_url: str = ""
    ) -> GatewayHarness:
        harness = GatewayHarness(fake_hf, upstream_url or upstream)
        public = f"https://127.0.0.1:{harness.port}"
        harness.overrides = {"server": {"public_url": public}, "session": session or {}}
        fake_hf.clients[CLIENT_ID].redirect_uris.append(f"{public}/_gateway/callback")
        started.append(harness)
        return await harness.start()

    yield start
    for harness in started:
        await harness.stop()


@pytest.fixture
async def https_gateway(https_gateways: HttpsGateway) -> GatewayHarness:
    return await https_gateways()


@pytest.fixture
def alice(fake_hf: FakeHF) -> FakeHF:
    fake_hf.settings.auto_login = "alice"
    return fake_hf


# --------------------------------------------------------------------------- 3: cookie tossing


async def test_on_https_the_binding_cookie_is_host_prefixed_and_secure(
    https_gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """The binding lives only on public_url's host, where the callback is: __Host- prefix,
    Path=/, Secure, HttpOnly, no Domain, 10 minutes. The login it starts completes and the
    callback clears the binding it used."""
    browser = await browsers(https_gateway)
    started = await browser.begin()
    assert [n for n in started.set_names() if "login" in n] == [HOST_BINDING]
    assert attributes(started.cookie_line(HOST_BINDING)) == {
        "httponly": "",
        "max-age": "600",
        "path": "/",
        "samesite": "Lax",
        "secure": "",
    }
    finished = await browser.go(await browser.approve(started.location))
    assert finished.status == 302
    assert browser.session() is not None
    assert HOST_BINDING not in browser.cookies


@pytest.mark.parametrize(
    ("public_url", "session", "names", "path"),
    [
        pytest.param("https://tools.example.com", {}, HOST_SLOTS, "/", id="https"),
        pytest.param(
            "https://tools.example.com",
            {"cookie_domain": ".example.com"},
            HOST_SLOTS,
            "/",
            id="https with cookie_domain: still __Host-",
        ),
        pytest.param("http://tools.example.com", {}, SLOTS, "/_gateway/", id="http"),
    ],
)
def test_binding_cookie_names_follow_the_scheme_not_cookie_domain(
    public_url: str, session: dict[str, str], names: tuple[str, ...], path: str
) -> None:
    """The session cookie may be shared across subdomains, the binding never is: the
    callback is always on public_url's host."""
    raw = base_raw_config(8080, "https://huggingface.co", "http://127.0.0.1:3000")
    raw["server"]["public_url"] = public_url
    raw["session"].update(session)
    cookies = CookieSettings.from_config(parse_config(raw))
    assert (cookies.login_names, cookies.login_path) == (names, path)


def _genuine_binding() -> str:
    pending = PendingLogin(
        state=new_state(),
        code_verifier=new_code_verifier(),
        nonce=new_nonce(),
        redirect_to="/",
        created_at=time.time(),
    )
    return seal_pending(pending, SessionKeys.derive([SECRET]))


@pytest.mark.parametrize(
    "planted",
    [
        pytest.param("B" * 43, id="a value of the old binding's shape"),
        pytest.param(secrets.token_urlsafe(32), id="a random value"),
        pytest.param("genuine", id="a genuine binding of another login"),
    ],
)
async def test_a_binding_the_browser_presents_is_never_adopted(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF, planted: str
) -> None:
    """Every login mints its own binding: whatever value sits in the browser's binding
    cookie (planted by an attacker who knows it) is replaced, never reused. The minted
    binding finishes the login."""
    if planted == "genuine":
        planted = _genuine_binding()
    browser = await browsers(gateway)
    browser.cookies[BINDING] = planted
    started = await browser.begin()
    minted = [value_of(line) for line in started.set_cookies if line.startswith(BINDING)]
    assert minted and planted not in minted
    finished = await browser.go(await browser.approve(started.location))
    assert finished.status == 302
    assert await browser.whoami() == "alice"


@pytest.mark.parametrize(
    "tossed_as",
    [
        pytest.param((BINDING,), id="under the base name"),
        pytest.param(SLOTS, id="under every slot name"),
    ],
)
async def test_a_tossed_binding_never_signs_the_victim_in_as_the_attacker(
    https_gateway: GatewayHarness, browsers: Browsers, fake_hf: FakeHF, tossed_as: Sequence[str]
) -> None:
    """Login CSRF by cookie tossing: mallory (dave here) starts a login in her browser,
    approves it as herself and plants the binding the gateway gave her into the victim's
    browser from a sibling subdomain, under the names a subdomain can set (no __Host-).
    The victim following her callback URL is not signed in as her; in mallory's own browser,
    which holds the real binding, the same callback signs in."""
    attacker, victim = await browsers(https_gateway), await browsers(https_gateway)
    fake_hf.settings.auto_login = "dave"
    started = await attacker.begin()
    [(name, binding)] = [
        (line.split("=", 1)[0], value_of(line)) for line in started.set_cookies if "login" in line
    ]
    assert name == HOST_BINDING
    callback = await attacker.approve(started.location)
    for tossed in tossed_as:
        victim.cookies[tossed.removeprefix("__Host-")] = binding
    answer = await victim.go(callback)
    assert answer.status == 400
    assert "another browser" in answer.body
    assert victim.session() is None
    assert await victim.whoami() is None
    # The positive twin: the browser that started the login finishes it.
    assert (await attacker.go(callback)).status == 302
    assert await attacker.whoami() == "dave"


async def test_a_binding_only_finishes_its_own_login(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """Two logins in one browser: the callback of the first with only the second's binding
    is refused; with its own binding it completes."""
    browser = await browsers(gateway)
    first = await browser.login_url("/one")
    second_started = await browser.begin("/two")
    first_binding = browser.cookies.pop(BINDING)
    second_binding = browser.cookies[f"{BINDING}_2"]
    assert value_of(second_started.cookie_line(f"{BINDING}_2")) == second_binding
    browser.cookies[BINDING] = second_binding
    del browser.cookies[f"{BINDING}_2"]
    assert (await browser.go(first)).status == 400
    browser.cookies[BINDING] = first_binding
    finished = await browser.go(first)
    assert (finished.status, finished.location) == (302, "/one")


async def test_four_tabs_sign_in_at_once_each_with_its_own_binding(
    https_gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """Four logins started before any finishes each get a binding cookie of their own and
    all complete, in any order; each callback clears only the binding it used."""
    browser = await browsers(https_gateway)
    callbacks = [await browser.login_url(f"/tab{n}") for n in range(1, 5)]
    assert sorted(browser.cookies) == sorted(f"__Host-{slot}" for slot in SLOTS)
    for n in (3, 1, 4, 2):
        before = set(browser.cookies)
        answer = await browser.go(callbacks[n - 1])
        assert (answer.status, answer.location) == (302, f"/tab{n}")
        cleared = before - set(browser.cookies) - {f"__Host-{SESSION}"}
        assert len(cleared) == 1 and "login" in next(iter(cleared))
    assert not [name for name in browser.cookies if "login" in name]
    assert await browser.whoami() == "alice"


async def test_a_fifth_login_in_flight_replaces_the_oldest(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """The bindings are bounded: a fifth login in flight takes the slot of the oldest, whose
    callback then fails; the four others complete."""
    browser = await browsers(gateway)
    callbacks = [await browser.login_url(f"/tab{n}") for n in range(1, 6)]
    assert sorted(browser.cookies) == sorted(SLOTS)
    oldest = await browser.go(callbacks[0])
    assert oldest.status == 400
    for n in range(2, 6):
        answer = await browser.go(callbacks[n - 1])
        assert (answer.status, answer.location) == (302, f"/tab{n}")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(HOST_BINDING, id="__Host- base name"),
        pytest.param(f"{HOST_BINDING}_4", id="__Host- last slot"),
        pytest.param(f"{BINDING}_3", id="plain slot name"),
        pytest.param(BINDING, id="plain base name"),
    ],
)
async def test_binding_cookies_never_reach_the_upstream(
    https_gateways: HttpsGateway, browsers: Browsers, alice: FakeHF, name: str
) -> None:
    """The binding cookies are sent with every request on https (Path=/ is what __Host-
    demands), and are removed before the upstream; the tool's own cookies pass."""
    async with recording_upstream() as recorder:
        gateway = await https_gateways(upstream_url=recorder.url)
        browser = await browsers(gateway)
        await browser.go(await browser.login_url())
        assert browser.session() is not None
        recorder.seen.clear()
        answer = await browser.go(
            gateway.url + ECHO, API, extra_cookies={"theme": "dark", name: "sealed-value"}
        )
        assert answer.status == 200
        [seen] = recorder.seen
        assert seen.header("Cookie") == "theme=dark"


# --------------------------------------------------------------------------- 4: store flood


@pytest.fixture
async def redis_gateway(
    start_gateway: StartGateway, redis_server: RedisServer
) -> AsyncIterator[tuple[GatewayHarness, aioredis.Redis, str]]:
    prefix = f"flood-{secrets.token_hex(4)}:"
    gateway = await start_gateway(
        store_factory=lambda: RedisStore(aioredis.Redis.from_url(redis_server.url), prefix=prefix)
    )
    client = aioredis.Redis.from_url(redis_server.url)
    yield gateway, client, prefix
    await client.aclose()


async def _keys(client: aioredis.Redis, prefix: str) -> list[str]:
    return sorted([k.decode().removeprefix(prefix) async for k in client.scan_iter(f"{prefix}*")])


async def test_anonymous_logins_store_nothing(
    redis_gateway: tuple[GatewayHarness, aioredis.Redis, str], browsers: Browsers, alice: FakeHF
) -> None:
    """Three hundred anonymous GETs of /_gateway/login, as one client could send in a loop,
    leave no key in Redis: the pending logins are sealed into their cookies. A login that
    comes back and finishes writes its session, the user index and one small marker that
    its state was used, kept no longer than the login could have lived."""
    gateway, client, prefix = redis_gateway
    login = f"{gateway.url}/_gateway/login?rd=%2Fdash"

    async def anonymous() -> int:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(30):
                async with http.get(login, headers=BROWSER, allow_redirects=False) as response:
                    assert response.status == 302
        return 30

    assert sum(await asyncio.gather(*(anonymous() for _ in range(10)))) == 300
    assert await _keys(client, prefix) == []

    browser = await browsers(gateway)
    assert (await browser.go(await browser.login_url())).status == 302
    keys = await _keys(client, prefix)
    assert [k.split(":")[0] for k in keys] == ["s", "u", "used"]
    [marker] = [k for k in keys if k.startswith("used:")]
    assert await client.strlen(prefix + marker) <= 64
    assert 0 < await client.pttl(prefix + marker) <= PENDING_LOGIN_TTL * 1000


async def test_a_replayed_state_is_refused_before_the_provider(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """Single use without a stored pending login: the callback replayed with a kept copy of
    its binding cookie, and again with a fresh code for the same state, is refused, and
    neither replay reaches the provider's token endpoint. The first use signs in."""
    browser = await browsers(gateway)
    started = await browser.begin("/dash")
    binding = browser.cookies[BINDING]
    callback = await browser.approve(started.location)
    first = await browser.go(callback)
    assert (first.status, first.location) == (302, "/dash")
    assert BINDING not in browser.cookies
    exchanges = len(alice.token_requests)

    copy = await browsers(gateway)
    copy.cookies[BINDING] = binding
    replay = await copy.go(callback, API)
    assert replay.status == 400
    assert "already used" in replay.body
    fresh_code = await copy.approve(started.location)
    assert state_of(fresh_code) == state_of(callback)
    assert (
        dict(parse_qsl(urlsplit(fresh_code).query))["code"]
        != (dict(parse_qsl(urlsplit(callback).query))["code"])
    )
    again = await copy.go(fresh_code, API)
    assert again.status == 400
    assert copy.session() is None
    assert len(alice.token_requests) == exchanges


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        pytest.param(PENDING_LOGIN_TTL + 1, "login_failed", id="older than ten minutes"),
        pytest.param(5, "token_error", id="fresh: reaches the code exchange"),
    ],
)
async def test_a_binding_older_than_ten_minutes_is_refused(
    gateway: GatewayHarness, browsers: Browsers, age: int, expected: str
) -> None:
    """The seal carries its creation time: a binding past its ten minutes is refused before
    any code is redeemed, whatever the cookie's Max-Age was; a fresh one (sealed the same
    way, with the gateway's secret) gets as far as the code exchange."""
    state = new_state()
    pending = PendingLogin(
        state=state,
        code_verifier=new_code_verifier(),
        nonce=new_nonce(),
        redirect_to="/",
        created_at=time.time() - age,
    )
    browser = await browsers(gateway)
    browser.cookies[BINDING] = seal_pending(pending, SessionKeys.derive([SECRET]))
    answer = await browser.go(f"{gateway.url}/_gateway/callback?code=made-up&state={state}", API)
    assert answer.status == 400
    assert f'"error": "{expected}"' in answer.body


async def test_binding_cookies_stay_small(
    gateway: GatewayHarness, browsers: Browsers, alice: FakeHF
) -> None:
    """Measured: a plain login's binding is about 400 characters; a target of 1 KiB still
    fits under MAX_SEALED_LOGIN (1800), a longer one becomes / and the login proceeds; the
    largest re-consent request is either sealed under the limit or refused with 400. Four
    bindings in flight and the session cookie fit an 8 KiB header line."""
    browser = await browsers(gateway)
    plain = (await browser.begin("/dash")).cookie_line(BINDING)
    assert len(value_of(plain)) < 500

    long_rd = "/" + "a" * 1023
    kept = await browser.begin(long_rd)
    assert len(value_of(kept.cookie_line(f"{BINDING}_2"))) <= MAX_SEALED_LOGIN
    finished = await browser.go(await browser.approve(kept.location))
    assert (finished.status, finished.location) == (302, long_rd)

    too_long = await browser.begin("/" + "a" * 1024)
    finished = await browser.go(await browser.approve(too_long.location))
    assert (finished.status, finished.location) == (302, "/")

    extras = [("scope", "s" * 63 + str(n)) for n in range(10)]
    extras += [("org", "o" * 63 + str(n)) for n in range(10)]
    url = f"{gateway.url}/_gateway/login?{urlencode([('rd', long_rd), *extras])}"
    largest = await browser.go(url)
    if largest.status == 302:
        assert all(len(value_of(c)) <= MAX_SEALED_LOGIN for c in largest.set_cookies)
    else:
        assert largest.status == 400 and "more organizations or permissions" in largest.body

    full = await browsers(gateway)
    for _ in range(4):
        await full.begin(long_rd)
    full.cookies[SESSION] = browser.cookies[SESSION]
    header = "; ".join(f"{k}={v}" for k, v in full.cookies.items())
    assert len(full.cookies) == 5 and len(header) < 8192


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
        f"{gateway.url}/_gateway/logout", {**BROWSER, "Origin": gateway.url}, method="POST"
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
        pytest.param("rd=%2Fdash%3Fx%3D1&scope=read-repos&org=6650a1c2e3f4a5b6c7d8e9f0", id="many"),
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
        gateway.port, f"/_gateway/login?{query}", list(BROWSER.items()), host="localhost"
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
