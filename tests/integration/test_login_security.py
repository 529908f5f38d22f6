"""Attacks on sign-in, cookies and cross-site requests, over real HTTP (SECURITY.md §5,
§8, §9, §11, §12). Each attack sits next to the positive case it must not break.

The login is driven step by step: ``/_gateway/login`` (302 to the fake Hugging Face),
the fake's authorize endpoint (303 back with code and state), then the callback, so a
test can replay, move or alter any of the three.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from yarl import URL

from gateway.config import parse_config
from gateway.devtools.fake_hf import FakeHF
from gateway.devtools.fake_hf_tokens import pkce_s256
from gateway.session.model import SessionKeys, new_session_id, sign_cookie
from gateway.web.context import LOGIN_COOKIE, CookieSettings
from tests.integration.conftest import StartGateway
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import (
    API,
    BROWSER,
    CLIENT_ID,
    SECRET,
    GatewayHarness,
    base_raw_config,
)
from tests.support.raw_http import RecordingUpstream, raw_request, recording_upstream
from tests.support.redis_server import RedisServer

COOKIE = "hf_gateway"
ECHO = "/api/echo"
EVIL = "https://evil.example"
COOKIE_SHAPE = re.compile(r"^v1\.([A-Za-z0-9_-]{43})\.[A-Za-z0-9_-]{43}$")


# --------------------------------------------------------------------------- flow helpers


async def begin(http: aiohttp.ClientSession, base: str, rd: str = "/") -> str:
    """Start a login in this browser; the provider's authorize URL it was sent to."""
    url = f"{base}/_gateway/login?{urlencode({'rd': rd})}"
    async with http.get(url, headers=BROWSER, allow_redirects=False) as response:
        assert response.status == 302
        return response.headers["Location"]


async def authorize(http: aiohttp.ClientSession, url: str) -> str:
    """Approve at the fake provider (auto_login); the callback URL it redirects to."""
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 303
        return response.headers["Location"]


async def login_url(http: aiohttp.ClientSession, gateway: GatewayHarness, rd: str = "/") -> str:
    """Begin and approve a login; the callback URL, not yet visited."""
    return await authorize(http, await begin(http, gateway.url, rd))


@dataclass(frozen=True)
class Answer:
    """A response read to the end: status, headers, Set-Cookie values by name, body."""

    status: int
    headers: Mapping[str, str]
    cookies: SimpleCookie
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


async def visit(
    http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] = BROWSER
) -> Answer:
    async with http.get(url, headers=dict(headers), allow_redirects=False) as response:
        body = await response.text()
        return Answer(response.status, response.headers, response.cookies, body)


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def jar_cookie(http: aiohttp.ClientSession, name: str = COOKIE) -> str | None:
    for cookie in http.cookie_jar:
        if cookie.key == name:
            return cookie.value
    return None


async def status_with(
    url: str,
    cookie: str | None,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    name: str = COOKIE,
) -> int:
    """The status of one request from a fresh client carrying only this cookie."""
    sent = {**API, **(headers or {})}
    if cookie is not None:
        sent["Cookie"] = f"{name}={cookie}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.request(method, url, headers=sent, allow_redirects=False) as response:
            await response.read()
            return response.status


def assert_signed_out(answer: Answer, http: aiohttp.ClientSession) -> None:
    """No session cookie was set by the answer nor kept in the browser."""
    assert COOKIE not in answer.cookies
    assert jar_cookie(http) is None


@pytest.fixture
def alice(fake_hf: FakeHF) -> FakeHF:
    """The fake provider approving every authorization as alice."""
    fake_hf.settings.auto_login = "alice"
    return fake_hf


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as upstream:
        yield upstream


@pytest.fixture
async def guarded(start_gateway: StartGateway, recorder: RecordingUpstream) -> GatewayHarness:
    """A gateway whose routes all lead to the recording upstream."""
    routes = base_raw_config(0, "", recorder.url)["routes"]
    return await start_gateway({"routes": routes})


# --------------------------------------------------------------------------- the happy path


async def test_a_login_uses_state_nonce_pkce_and_basic_auth(
    gateway: GatewayHarness, alice: FakeHF
) -> None:
    """The authorize request carries state, nonce and an S256 challenge; the code exchange
    sends the matching code_verifier with HTTP Basic client authentication."""
    async with gateway.browser() as http:
        authorize_url = await begin(http, gateway.url, "/dash")
        params = dict(parse_qsl(urlsplit(authorize_url).query))
        assert params["code_challenge_method"] == "S256"
        assert params["state"] and params["nonce"]
        assert "code_verifier" not in params
        callback = await authorize(http, authorize_url)
        answer = await visit(http, callback)
        assert answer.status == 302
        assert answer.headers["Location"] == "/dash"
        assert COOKIE in answer.cookies
    [exchange] = [r for r in alice.token_requests if r["grant_type"] == "authorization_code"]
    assert exchange["auth"] == "basic"
    assert exchange["client_id"] == CLIENT_ID
    form = exchange["form"]
    assert pkce_s256(form["code_verifier"]) == params["code_challenge"]
    assert form["redirect_uri"] == f"{gateway.url}/_gateway/callback"
    assert "nonce" not in form and "state" not in form


# --------------------------------------------------------------------------- state and binding


@pytest.mark.parametrize(
    "headers", [pytest.param(BROWSER, id="browser"), pytest.param(API, id="api")]
)
async def test_a_callback_without_state_is_refused(
    gateway: GatewayHarness, alice: FakeHF, headers: dict[str, str]
) -> None:
    """A callback with a code but no state fails with 400 and starts no session."""
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        answer = await visit(http, with_query(callback, state=None), headers)
        assert answer.status == 400
        assert_signed_out(answer, http)
        if headers is API:
            assert answer.json()["error"] == "login_failed"
        else:
            assert "Sign-in failed" in answer.body
        assert (await visit(http, callback)).status == 302  # the real callback still works


async def test_an_unknown_state_is_refused(gateway: GatewayHarness, alice: FakeHF) -> None:
    """A state the gateway never issued fails; the genuine one is unaffected."""
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        forged = await visit(http, with_query(callback, state="A" * 43))
        assert forged.status == 400
        assert_signed_out(forged, http)
        assert "expired or was already used" in forged.body
        assert (await visit(http, callback)).status == 302


async def test_a_replayed_callback_is_refused(gateway: GatewayHarness, alice: FakeHF) -> None:
    """The second use of a valid callback URL fails and sets no cookie; the first session
    keeps working."""
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        first = await visit(http, callback)
        assert first.status == 302
        session = jar_cookie(http)
        replay = await visit(http, callback)
        assert replay.status == 400
        assert COOKIE not in replay.cookies
        assert jar_cookie(http) == session
    assert await status_with(gateway.url + ECHO, session) == 200


@pytest.mark.parametrize(
    "binding",
    [
        pytest.param("none", id="no binding cookie"),
        pytest.param("own", id="the other browser's own binding cookie"),
        pytest.param("forged", id="a made-up binding cookie"),
    ],
)
async def test_a_callback_carried_to_another_browser_is_refused(
    gateway: GatewayHarness, alice: FakeHF, binding: str
) -> None:
    """A callback URL started in the victim's browser fails in the attacker's (login CSRF)."""
    async with gateway.browser() as victim, gateway.browser() as attacker:
        callback = await login_url(victim, gateway)
        if binding == "own":
            await begin(attacker, gateway.url)
            assert jar_cookie(attacker, LOGIN_COOKIE) is not None
        elif binding == "forged":
            attacker.cookie_jar.update_cookies({LOGIN_COOKIE: "B" * 43}, URL(gateway.url))
        answer = await visit(attacker, callback)
        assert answer.status == 400
        assert "another browser" in answer.body
        assert_signed_out(answer, attacker)
        # The victim's own browser finishes a login normally.
        assert (await visit(victim, await login_url(victim, gateway))).status == 302
        assert jar_cookie(victim) is not None


async def test_a_rate_limited_code_exchange_can_be_tried_again(
    gateway: GatewayHarness, alice: FakeHF
) -> None:
    """A 429 from the token endpoint is a 503 (try again), not a failed login: the code
    was not spent, and the same callback then signs in (the refused twin is below)."""
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        alice.settings.token_status = 429
        answer = await visit(http, callback, API)
        assert answer.status == 503
        assert jar_cookie(http) is None
        alice.settings.token_status = None
        assert (await visit(http, callback)).status == 302
        assert jar_cookie(http) is not None


async def test_a_replayed_code_is_refused(gateway: GatewayHarness, alice: FakeHF) -> None:
    """An authorization code already redeemed, sent with a fresh state, fails at the
    provider (invalid_grant) and no session is created."""
    async with gateway.browser() as http:
        used = await login_url(http, gateway)
        assert (await visit(http, used)).status == 302
        session = jar_cookie(http)
        fresh = await login_url(http, gateway)
        old_code = dict(parse_qsl(urlsplit(used).query))["code"]
        answer = await visit(http, with_query(fresh, code=old_code), API)
        assert answer.status == 400
        assert answer.json()["error"] == "token_error"
        assert COOKIE not in answer.cookies
        assert jar_cookie(http) == session
    last = alice.token_requests[-1]
    assert (last["grant_type"], last["form"]["code"]) == ("authorization_code", old_code)


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        pytest.param(None, 302, id="iss from the provider is accepted"),
        pytest.param("https://evil.example", 400, id="iss of another provider is refused"),
    ],
)
async def test_the_authorization_response_issuer_must_be_ours(
    gateway: GatewayHarness, alice: FakeHF, issuer: str | None, expected: int
) -> None:
    """RFC 9207 mix-up defence: an ``iss`` on the callback must name the configured issuer."""
    alice.settings.authorization_response_iss = True
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        assert dict(parse_qsl(urlsplit(callback).query))["iss"] == alice.issuer
        answer = await visit(http, with_query(callback, iss=issuer or alice.issuer), API)
        assert answer.status == expected
        if expected == 400:
            assert answer.json()["error"] == "wrong_issuer"
            assert_signed_out(answer, http)
            assert alice.token_requests == []  # refused before the code was redeemed


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(BROWSER, "Sign-in cancelled", id="browser gets a page"),
        pytest.param(API, '"error": "access_denied"', id="api gets JSON"),
    ],
)
async def test_a_denied_consent_shows_a_clear_403_and_starts_no_session(
    gateway: GatewayHarness, alice: FakeHF, headers: dict[str, str], expected: str
) -> None:
    """error=access_denied from HF ends in 403 with an explanation, no token request and
    no cookie; approving afterwards signs in."""
    alice.settings.deny = True
    async with gateway.browser() as http:
        callback = await login_url(http, gateway)
        assert dict(parse_qsl(urlsplit(callback).query))["error"] == "access_denied"
        answer = await visit(http, callback, headers)
        assert answer.status == 403
        assert expected in answer.body
        assert "declined" in answer.body
        assert_signed_out(answer, http)
        assert alice.token_requests == []
        alice.settings.deny = False
        assert (await visit(http, await login_url(http, gateway))).status == 302


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("nonce", id="wrong nonce"),
        pytest.param("aud", id="wrong audience"),
        pytest.param("iss", id="wrong issuer"),
        pytest.param("signature", id="forged signature"),
        pytest.param("expired", id="expired"),
        pytest.param(None, id="untampered signs in"),
    ],
)
async def test_a_tampered_id_token_fails_the_sign_in(
    gateway: GatewayHarness, alice: FakeHF, tamper: str | None
) -> None:
    """Every ID token defect ends the callback in 400 without a session cookie."""
    alice.settings.id_token_tamper = tamper
    async with gateway.browser() as http:
        answer = await visit(http, await login_url(http, gateway), API)
        if tamper is None:
            assert answer.status == 302
            assert COOKIE in answer.cookies
            return
        assert answer.status == 400
        assert answer.json()["error"] == "invalid_id_token"
        assert_signed_out(answer, http)


async def test_two_tabs_of_one_browser_can_sign_in_at_once(
    gateway: GatewayHarness, alice: FakeHF
) -> None:
    """Two logins started before either finishes both complete, in either order."""
    async with gateway.browser() as http:
        first = await login_url(http, gateway, "/one")
        second = await login_url(http, gateway, "/two")
        finished_second = await visit(http, second)
        assert (finished_second.status, finished_second.headers["Location"]) == (302, "/two")
        finished_first = await visit(http, first)
        assert (finished_first.status, finished_first.headers["Location"]) == (302, "/one")
        assert await status_with(gateway.url + ECHO, jar_cookie(http)) == 200


# --------------------------------------------------------------------------- session ids


async def test_login_rotates_the_session_id(gateway: GatewayHarness, alice: FakeHF) -> None:
    """Signing in again issues a new cookie; the previous one stops working."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        before = gateway.session_cookie(http)
        await gateway.sign_in(http, "alice")
        after = gateway.session_cookie(http)
    assert after != before
    assert await status_with(gateway.url + ECHO, before) == 401
    assert await status_with(gateway.url + ECHO, after) == 200


async def test_a_planted_session_cookie_is_never_signed_in(
    gateway: GatewayHarness, alice: FakeHF
) -> None:
    """Session fixation: a validly signed cookie set before login is replaced, not adopted."""
    planted = sign_cookie(new_session_id(), SessionKeys.derive([SECRET]))
    async with gateway.browser() as http:
        http.cookie_jar.update_cookies({COOKIE: planted}, URL(gateway.url))
        assert await status_with(gateway.url + ECHO, planted) == 401
        await gateway.sign_in(http, "alice")
        assert gateway.session_cookie(http) != planted
    assert await status_with(gateway.url + ECHO, planted) == 401


# --------------------------------------------------------------------------- cookies


def set_cookie_line(answer_headers: Any, name: str) -> str:
    [line] = [v for v in answer_headers.getall("Set-Cookie") if v.startswith(f"{name}=")]
    return str(line)


def attributes(line: str) -> dict[str, str]:
    """Cookie attributes as lower-case name -> value ("" for flags)."""
    pairs = [part.strip().partition("=") for part in line.split(";")[1:]]
    return {name.lower(): value for name, _, value in pairs}


async def test_cookies_are_httponly_lax_and_not_secure_on_http(
    gateway: GatewayHarness, alice: FakeHF
) -> None:
    """Session cookie: HttpOnly, SameSite=Lax, Path=/, no Domain, no Secure on an http
    public_url. Login-binding cookie: HttpOnly, Lax, /_gateway/ only, 10 minutes."""
    async with gateway.browser() as http:
        url = f"{gateway.url}/_gateway/login"
        async with http.get(url, headers=BROWSER, allow_redirects=False) as response:
            binding = attributes(set_cookie_line(response.headers, LOGIN_COOKIE))
            provider = response.headers["Location"]
        callback = await authorize(http, provider)
        async with http.get(callback, allow_redirects=False) as response:
            session = attributes(set_cookie_line(response.headers, COOKIE))
    assert session == {
        "httponly": "",
        "max-age": "604800",
        "path": "/",
        "samesite": "Lax",
    }
    assert binding == {"httponly": "", "max-age": "600", "path": "/_gateway/", "samesite": "Lax"}


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        pytest.param({}, ("__Host-hf_gateway", True, "Lax", None), id="https: __Host- and Secure"),
        pytest.param(
            {"cookie_domain": ".example.com"},
            ("hf_gateway", True, "Lax", ".example.com"),
            id="https with cookie_domain: no prefix, still Secure",
        ),
        pytest.param(
            {"cookie_samesite": "none"},
            ("__Host-hf_gateway", True, "None", None),
            id="https with samesite none",
        ),
        pytest.param(
            {"cookie_samesite": "strict"},
            ("__Host-hf_gateway", True, "Strict", None),
            id="https with samesite strict",
        ),
    ],
)
def test_https_public_urls_get_secure_host_prefixed_cookies(
    session: dict[str, str], expected: tuple[str, bool, str, str | None]
) -> None:
    """CookieSettings follow SECURITY §11 for an https public_url."""
    raw = base_raw_config(8080, "https://huggingface.co", "http://127.0.0.1:3000")
    raw["server"]["public_url"] = "https://tools.example.com"
    raw["session"].update(session)
    cookies = CookieSettings.from_config(parse_config(raw))
    assert (cookies.name, cookies.secure, cookies.samesite, cookies.domain) == expected
    assert cookies.login_samesite == ("None" if expected[2] == "None" else "Lax")


async def test_the_cookie_is_opaque_and_userinfo_holds_no_token(
    start_gateway: StartGateway, alice: FakeHF
) -> None:
    """The cookie is 32 random bytes plus a MAC: no identity, no token; /_gateway/userinfo
    shows the identity but never the access or refresh token."""
    gateway = await start_gateway({"identity": {"pass_access_token": True}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
        async with http.get(gateway.url + ECHO, headers=API) as response:
            echoed = {k.lower(): v for k, v in (await response.json())["headers"]}
        async with http.get(f"{gateway.url}/_gateway/userinfo") as response:
            info = await response.text()
    access = echoed["x-forwarded-access-token"]
    assert access.startswith("hf_oauth_")
    match = COOKIE_SHAPE.match(cookie)
    assert match is not None
    raw_id = base64.urlsafe_b64decode(match.group(1) + "=")
    for secret in ("alice", "3f501019b1460301dacf1e59", "alice@example.com", access, "hf_oauth"):
        assert secret not in cookie
        assert secret.encode() not in raw_id
    assert '"username": "alice"' in info
    assert access not in info
    assert "hf_oauth" not in info and "refresh" not in info.lower()


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("rd", "landing"),
    [
        pytest.param("//evil.com", "/", id="protocol-relative"),
        pytest.param("https://evil.com/x", "/", id="absolute foreign"),
        pytest.param("/\\evil.com", "/", id="backslash"),
        pytest.param("/%09/evil.com", "/", id="encoded tab"),
        pytest.param("javascript:alert(1)", "/", id="javascript"),
        pytest.param("/dash?x=1", "/dash?x=1", id="same-origin path kept"),
    ],
)
async def test_the_post_login_target_is_sanitised_and_login_still_succeeds(
    gateway: GatewayHarness, alice: FakeHF, rd: str, landing: str
) -> None:
    """A foreign rd lands on the gateway's / after a successful login; a local one is kept."""
    async with gateway.browser() as http:
        url = f"{gateway.url}/_gateway/login?{urlencode({'rd': rd})}"
        async with http.get(url, headers=BROWSER) as response:
            assert response.status == 200
            assert str(response.url) == gateway.url + landing
            assert [str(h.url.origin()) for h in response.history][-1] == gateway.url
        assert jar_cookie(http) is not None


# --------------------------------------------------------------------------- malformed cookies


def _forged_with_other_secret() -> str:
    return sign_cookie(new_session_id(), SessionKeys.derive(["another-secret-" + "y" * 30]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("garbage", 401, id="garbage"),
        pytest.param("v1.AAAA.BBBB", 401, id="cookie-shaped garbage"),
        pytest.param("x" * 8192, 401, id="8 KB"),
        pytest.param("x" * 65536, 400, id="64 KB"),
        pytest.param(_forged_with_other_secret(), 401, id="signed with another secret"),
        pytest.param(
            sign_cookie(new_session_id(), SessionKeys.derive([SECRET])),
            401,
            id="validly signed but unknown id",
        ),
    ],
)
async def test_malformed_session_cookies_are_refused_and_never_proxied(
    guarded: GatewayHarness, recorder: RecordingUpstream, value: str, expected: int
) -> None:
    """Bad cookies on a protected route end in 401 (or 400 when too large), never upstream."""
    assert await status_with(guarded.url + ECHO, value) == expected
    assert recorder.seen == []


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"{COOKIE}=v1.abc\x00def", id="NUL byte"),
        pytest.param(f"{COOKIE}=v1.\xff\xfe\xfd", id="invalid UTF-8"),
        pytest.param(f"{COOKIE}=\x80\x81; other=\xc3\x28", id="invalid UTF-8 in two cookies"),
    ],
)
async def test_raw_bytes_in_the_cookie_header_are_refused_and_never_proxied(
    guarded: GatewayHarness, recorder: RecordingUpstream, header: str
) -> None:
    """Bytes no client library would send (sent on a raw socket) end in 400/401."""
    answer = await raw_request(
        guarded.port, ECHO, [("Cookie", header), ("Accept", "application/json")]
    )
    assert answer.status in (400, 401)
    assert recorder.seen == []


async def test_a_valid_cookie_reaches_the_upstream(
    guarded: GatewayHarness, recorder: RecordingUpstream, alice: FakeHF
) -> None:
    """The positive case of the malformed-cookie tests: a real session is proxied, once."""
    async with guarded.browser() as http:
        await guarded.sign_in(http, "alice")
        cookie = guarded.session_cookie(http)
    recorder.seen.clear()
    answer = await raw_request(
        guarded.port, ECHO, [("Cookie", f"{COOKIE}={cookie}"), ("Accept", "application/json")]
    )
    assert answer.status == 200
    assert recorder.paths() == [ECHO]
    assert recorder.seen[0].header("X-Forwarded-User") == "alice"
    assert COOKIE not in (recorder.seen[0].header("Cookie") or "")


async def test_a_400_for_a_broken_cookie_header_never_echoes_the_session_cookie(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Script on any proxied tool can pad document.cookie until the header is too long and
    read the 400 answer (same origin): it must not contain the HttpOnly session cookie.
    Runs ``hf-gateway run`` itself, since the server setup is what answers parse errors."""
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    await process.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await process.sign_in(http, fake_hf, "alice")
            cookie = jar_cookie(http)
        assert cookie is not None
        sent = f"{COOKIE}={cookie}"
        assert (await raw_request(process.port, ECHO, [("Cookie", sent)])).status == 200
        answers = {
            "oversized": await raw_request(
                process.port, ECHO, [("Cookie", f"{sent}; pad={'x' * 20000}")]
            ),
            "NUL byte": await raw_request(process.port, ECHO, [("Cookie", f"{sent}; bad=\x00")]),
        }
    finally:
        process.stop()
    assert {name: a.status for name, a in answers.items()} == {"oversized": 400, "NUL byte": 400}
    session_id = cookie.split(".")[1]
    assert [name for name, a in answers.items() if session_id in a.body.decode("latin-1")] == []


# --------------------------------------------------------------------------- cross-site


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        pytest.param("POST", {"Origin": EVIL}, 403, id="POST from a foreign origin"),
        pytest.param("PUT", {"Origin": EVIL}, 403, id="PUT from a foreign origin"),
        pytest.param("PATCH", {"Origin": EVIL}, 403, id="PATCH from a foreign origin"),
        pytest.param("DELETE", {"Origin": EVIL}, 403, id="DELETE from a foreign origin"),
        pytest.param("POST", {"Origin": "null"}, 403, id="POST from an opaque origin"),
        pytest.param("POST", {"Referer": f"{EVIL}/page"}, 403, id="POST with a foreign referer"),
        pytest.param("POST", {"Origin": "https://127.0.0.1.evil.example"}, 403, id="suffix trick"),
        pytest.param("POST", {"Origin": "SELF"}, 200, id="POST from the same origin"),
        pytest.param("POST", {"Referer": "SELF/page"}, 200, id="POST with a same-origin referer"),
        pytest.param("POST", {}, 200, id="POST without origin under SameSite=Lax"),
        pytest.param("GET", {"Origin": EVIL}, 200, id="GET from a foreign origin"),
    ],
)
async def test_unsafe_requests_with_a_session_must_come_from_our_own_site(
    guarded: GatewayHarness,
    recorder: RecordingUpstream,
    alice: FakeHF,
    method: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    """SECURITY §12: a valid cookie on an unsafe method from a foreign origin gets 403 and
    nothing reaches the upstream; same-origin requests pass."""
    async with guarded.browser() as http:
        await guarded.sign_in(http, "alice")
        cookie = guarded.session_cookie(http)
    recorder.seen.clear()
    sent = {k: v.replace("SELF", guarded.url) for k, v in headers.items()}
    assert await status_with(guarded.url + ECHO, cookie, method=method, headers=sent) == expected
    assert len(recorder.seen) == (1 if expected == 200 else 0)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        pytest.param(EVIL, False, id="foreign origin"),
        pytest.param("SELF", True, id="same origin"),
    ],
)
async def test_websocket_upgrades_with_a_session_must_come_from_our_own_site(
    guarded: GatewayHarness,
    recorder: RecordingUpstream,
    alice: FakeHF,
    origin: str,
    allowed: bool,
) -> None:
    """Cross-site websocket hijacking: a foreign Origin gets 403 before anything is proxied."""
    async with guarded.browser() as http:
        await guarded.sign_in(http, "alice")
        cookie = guarded.session_cookie(http)
    recorder.seen.clear()
    headers = {"Cookie": f"{COOKIE}={cookie}", "Origin": origin.replace("SELF", guarded.url)}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        if not allowed:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(guarded.url + "/api/ws", headers=headers)
            assert refused.value.status == 403
            assert recorder.seen == []
            return
        async with client.ws_connect(guarded.url + "/api/ws", headers=headers) as ws:
            assert await ws.receive_str() == "hello alice"
            await ws.send_str("ping")
            assert await ws.receive_str() == "ping"
    assert recorder.paths() == ["/api/ws"]


# --------------------------------------------------------------------------- SameSite=None


@pytest.fixture
async def spaces_gateway(
    fake_hf: FakeHF, upstream: str, alice: FakeHF
) -> AsyncIterator[GatewayHarness]:
    """A gateway with an https public_url and cookie_samesite: none (Spaces mode), served
    over plain HTTP: the test client stands in for the TLS terminator."""
    harness = GatewayHarness(fake_hf, upstream)
    public = f"https://127.0.0.1:{harness.port}"
    harness.overrides = {
        "server": {"public_url": public},
        "session": {"cookie_samesite": "none"},
    }
    fake_hf.clients[CLIENT_ID].redirect_uris.append(f"{public}/_gateway/callback")
    await harness.start()
    yield harness
    await harness.stop()


async def spaces_sign_in(gateway: GatewayHarness) -> tuple[str, dict[str, str]]:
    """Sign in through the https-configured gateway; the cookie and its attributes."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(
            f"{gateway.url}/_gateway/login", headers=BROWSER, allow_redirects=False
        ) as response:
            line = set_cookie_line(response.headers, f"__Host-{LOGIN_COOKIE}")
            binding = line.split(";")[0].split("=", 1)[1]
            binding_attributes = attributes(line)
            provider = response.headers["Location"]
        async with http.get(provider, allow_redirects=False) as response:
            callback = response.headers["Location"]
        assert callback.startswith("https://")
        plain = "http://" + callback.removeprefix("https://")
        headers = {"Cookie": f"__Host-{LOGIN_COOKIE}={binding}"}
        async with http.get(plain, headers=headers, allow_redirects=False) as response:
            assert response.status == 302
            line = set_cookie_line(response.headers, "__Host-hf_gateway")
    assert binding_attributes == {
        "httponly": "",
        "max-age": "600",
        "path": "/",
        "samesite": "None",
        "secure": "",
    }
    return line.split(";")[0].split("=", 1)[1], attributes(line)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, 403, id="no origin"),
        pytest.param({"Origin": EVIL}, 403, id="foreign origin"),
        pytest.param({"Origin": "http://127.0.0.1"}, 403, id="same host over http"),
        pytest.param({"Origin": "PUBLIC"}, 200, id="the public origin"),
        pytest.param({"Referer": "PUBLIC/page"}, 200, id="a same-origin referer"),
    ],
)
async def test_with_samesite_none_a_post_without_our_origin_is_refused(
    spaces_gateway: GatewayHarness, headers: dict[str, str], expected: int
) -> None:
    """With SameSite=None the browser sends the cookie cross-site, so a POST must prove its
    origin: a missing or foreign Origin is 403, the public origin passes. The cookie is
    __Host- prefixed, Secure and SameSite=None."""
    cookie, attrs = await spaces_sign_in(spaces_gateway)
    assert attrs == {
        "httponly": "",
        "max-age": "604800",
        "path": "/",
        "samesite": "None",
        "secure": "",
    }
    public = f"https://127.0.0.1:{spaces_gateway.port}"
    sent = {k: v.replace("PUBLIC", public) for k, v in headers.items()}
    code = await status_with(
        spaces_gateway.url + ECHO, cookie, method="POST", headers=sent, name="__Host-hf_gateway"
    )
    assert code == expected
