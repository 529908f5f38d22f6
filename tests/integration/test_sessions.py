"""Session lifecycle over real HTTP: logout, restarts, Redis outages, idle timeout,
revalidation of org roles, token revocation and refresh (SECURITY.md §5, §7, §8).

Every gateway here runs with short session durations (1-2 s) so the behaviours show
within a test; the fake Hugging Face and Redis are real servers.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gateway.devtools.fake_hf import FakeHF
from gateway.session.redis import RedisStore
from gateway.session.store import SessionStore
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness, base_raw_config
from tests.support.raw_http import RecordingUpstream, recording_upstream
from tests.support.redis_server import RedisServer

COOKIE = "hf_gateway"
ECHO = "/api/echo"
REVALIDATE = 1
"""session.revalidate_after used by the revalidation and refresh tests (seconds)."""
PAST_REVALIDATION = REVALIDATE + 0.2

Launch = StartGateway


@pytest.fixture
def launch(start_gateway: StartGateway) -> Launch:
    """Start gateways (optionally on another upstream or store factory); stop them after."""
    return start_gateway


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    """An echo upstream that lists every request reaching it."""
    async with recording_upstream() as upstream:
        yield upstream


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start again."""
    server = RedisServer().start()
    yield server
    server.cleanup()


def redis_stores(url: str, prefix: str | None = None) -> Callable[[], SessionStore]:
    """A factory of RedisStores sharing one key prefix (a new client per gateway start)."""
    shared = prefix or f"it-{secrets.token_hex(4)}:"
    return lambda: RedisStore(aioredis.Redis.from_url(url), prefix=shared)


async def fetch(
    url: str,
    cookie: str | None,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    """One request from a fresh client carrying only ``cookie``: status, JSON body, headers."""
    sent = {**API, **(headers or {})}
    if cookie is not None:
        sent["Cookie"] = f"{COOKIE}={cookie}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.request(method, url, headers=sent, allow_redirects=False) as response:
            body = await response.read()
            data: Any = None
            if response.content_type == "application/json":
                data = await response.json()
            elif body:
                data = body.decode("utf-8", "replace")
            return response.status, data, response.headers


async def status(url: str, cookie: str | None) -> int:
    return (await fetch(url, cookie))[0]


def refreshes_since(fake_hf: FakeHF, start: int) -> list[dict[str, Any]]:
    return [r for r in fake_hf.token_requests[start:] if r["grant_type"] == "refresh_token"]


# --------------------------------------------------------------------------- logout


async def test_logout_deletes_the_session_so_a_copied_cookie_stops_working(
    launch: Launch,
) -> None:
    """A copy of the cookie works until logout; afterwards the server no longer knows it.
    A GET only asks for confirmation: the session is still there after it."""
    gateway = await launch()
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
        assert await status(gateway.url + ECHO, cookie) == 200
        async with http.get(f"{gateway.url}/_gateway/logout", headers=API) as r:
            assert r.status == 200
            assert (await r.json())["signed_out"] is False
            assert COOKIE not in r.cookies
        assert await status(gateway.url + ECHO, cookie) == 200
        logout = f"{gateway.url}/_gateway/logout"
        async with http.post(logout, headers={**API, "Origin": gateway.url}) as r:
            assert r.status == 200
            cleared = r.cookies[COOKIE]
            assert cleared.value == ""
            assert cleared["max-age"] == "0"
        assert await status(gateway.url + ECHO, cookie) == 401
        async with http.get(f"{gateway.url}/_gateway/userinfo") as r:
            assert r.status == 401


async def test_logout_without_a_session_is_harmless(launch: Launch) -> None:
    """Signing out when not signed in (or twice) answers normally and signs nobody else out."""
    gateway = await launch()
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        bob = gateway.session_cookie(http)
    for cookie in (None, "garbage"):
        code, body, _ = await fetch(
            f"{gateway.url}/_gateway/logout", cookie, method="POST", headers={"Origin": gateway.url}
        )
        assert (code, body) == (200, {"signed_out": True})
    assert await status(gateway.url + ECHO, bob) == 200


# --------------------------------------------------------------------------- restarts


@pytest.mark.parametrize(
    ("kind", "after_restart"),
    [
        pytest.param("redis", 200, id="redis keeps the session"),
        pytest.param("memory", 401, id="memory loses it"),
    ],
)
async def test_sessions_survive_a_gateway_restart_only_in_redis(
    launch: Launch, redis_server: RedisServer, kind: str, after_restart: int
) -> None:
    """With the Redis store a restarted gateway still knows the session; memory forgets it."""
    factory = redis_stores(redis_server.url) if kind == "redis" else None
    gateway = await launch(store_factory=factory)
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    assert await status(gateway.url + ECHO, cookie) == 200
    await gateway.restart()
    code, body, _ = await fetch(gateway.url + ECHO, cookie)
    assert code == after_restart
    if code == 200:
        headers = {k.lower(): v for k, v in body["headers"]}
        assert headers["x-forwarded-user"] == "alice"


# --------------------------------------------------------------------------- store outage


async def test_a_redis_outage_fails_closed_and_recovers(
    launch: Launch, own_redis: RedisServer, recorder: RecordingUpstream
) -> None:
    """Redis down: protected routes answer 503 with Retry-After and proxy nothing, public
    routes still work; once Redis is back the same session works again."""
    gateway = await launch(store_factory=redis_stores(own_redis.url), upstream_url=recorder.url)
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    assert await status(gateway.url + ECHO, cookie) == 200
    async with aioredis.Redis.from_url(own_redis.url) as client:
        await client.save()  # so the session is still there when this redis-server returns
    own_redis.stop()
    recorder.seen.clear()

    code, body, headers = await fetch(gateway.url + ECHO, cookie)
    assert (code, body["error"]) == (503, "unavailable")
    assert headers["Retry-After"] == "5"
    code, page, headers = await fetch(gateway.url + "/dash", cookie, headers=BROWSER)
    assert code == 503 and "Temporarily unavailable" in page
    assert headers["Retry-After"] == "5"
    code, _, _ = await fetch(gateway.url + ECHO, cookie, method="POST")
    assert code == 503
    assert recorder.seen == []  # nothing was proxied while the store was down

    assert await status(gateway.url + "/open/api/echo", None) == 200
    assert await status(gateway.url + "/public", cookie) == 200
    assert recorder.paths() == ["/open/api/echo", "/public"]

    # Starting a login needs no store (the pending login is sealed into its cookie);
    # finishing one does, and so does signing out.
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/_gateway/login", headers=API) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "5"
            assert r.url.path == "/_gateway/callback"
    code, _, headers = await fetch(
        f"{gateway.url}/_gateway/logout", cookie, method="POST", headers={"Origin": gateway.url}
    )
    assert code == 503  # not signed out yet, and the cookie is not cleared
    assert COOKIE not in headers.get("Set-Cookie", "")

    own_redis.start()
    deadline = time.monotonic() + 5
    while (code := await status(gateway.url + ECHO, cookie)) == 503:
        assert time.monotonic() < deadline, "the gateway did not recover after Redis returned"
        await asyncio.sleep(0.1)
    assert code == 200


async def test_readyz_reports_the_store_down_and_up_again(
    launch: Launch, own_redis: RedisServer
) -> None:
    """readyz is 503 with the store marked unreachable while Redis is down; healthz stays 200."""
    gateway = await launch(store_factory=redis_stores(own_redis.url))
    ready = f"{gateway.url}/_gateway/readyz"
    code, body, _ = await fetch(ready, None)
    assert (code, body["checks"]) == (200, {"store": "ok", "provider": "ok"})
    own_redis.stop()
    code, body, _ = await fetch(ready, None)
    assert code == 503
    assert body["status"] == "not ready"
    assert body["checks"] == {"store": "unreachable", "provider": "ok"}
    assert await status(f"{gateway.url}/_gateway/healthz", None) == 200
    own_redis.start()
    deadline = time.monotonic() + 5
    while await status(ready, None) != 200:
        assert time.monotonic() < deadline, "readyz did not recover after Redis returned"
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- idle timeout


async def test_an_idle_session_is_signed_out_while_an_active_one_stays(launch: Launch) -> None:
    """Requests keep the session alive past idle_timeout; idle_timeout without any ends it."""
    gateway = await launch({"session": {"idle_timeout": 2}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    for _ in range(3):  # 2.4 s of activity in all, more than the idle timeout
        await asyncio.sleep(0.8)
        assert await status(gateway.url + ECHO, cookie) == 200
    await asyncio.sleep(2.1)
    assert await status(gateway.url + ECHO, cookie) == 401
    code, _, headers = await fetch(gateway.url + "/dash", cookie, headers=BROWSER)
    assert code == 302 and "/_gateway/sign_in" in headers["Location"]


# --------------------------------------------------------------------------- revalidation


def acme_routes(upstream: str) -> dict[str, Any]:
    """The harness routes plus /acme, open to any member of acme (whatever the role)."""
    routes = base_raw_config(0, "", upstream)["routes"]
    acme = {"name": "acme", "path": "/acme", "upstream": upstream, "policy": "acme-members"}
    return {
        "policies": {"acme-members": {"allow": [{"org": "acme"}]}},
        "routes": [*routes, acme],
        "session": {"revalidate_after": REVALIDATE},
    }


async def test_a_role_granted_on_hugging_face_takes_effect_after_revalidation(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """bob (read in acme) is refused the writers route until HF makes him a writer and the
    gateway has re-read his userinfo, which happens within revalidate_after."""
    gateway = await launch({"session": {"revalidate_after": REVALIDATE}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        cookie = gateway.session_cookie(http)
    assert await status(f"{gateway.url}/writers{ECHO}", cookie) == 403
    calls = fake_hf.userinfo_calls
    fake_hf.set_role("bob", "acme", "write")
    await asyncio.sleep(PAST_REVALIDATION)
    assert await status(f"{gateway.url}/writers{ECHO}", cookie) == 200
    assert fake_hf.userinfo_calls == calls + 1


async def test_a_member_removed_from_the_org_loses_access_after_revalidation(
    launch: Launch, fake_hf: FakeHF, upstream: str
) -> None:
    """Stale claims (SECURITY §7): once alice leaves acme, the acme-only route refuses her
    within revalidate_after, while she stays signed in for everything else."""
    gateway = await launch(acme_routes(upstream))
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    assert await status(f"{gateway.url}/acme{ECHO}", cookie) == 200
    fake_hf.set_role("alice", "acme", None)
    await asyncio.sleep(PAST_REVALIDATION)
    code, body, _ = await fetch(f"{gateway.url}/acme{ECHO}", cookie)
    assert (code, body["error"]) == (403, "forbidden")
    assert await status(gateway.url + ECHO, cookie) == 200
    code, info, _ = await fetch(f"{gateway.url}/_gateway/userinfo", cookie)
    assert code == 200
    assert [o["slug"] for o in info["orgs"]] == ["hf-tools"]


async def test_revoked_tokens_end_the_session_at_the_next_revalidation(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """When alice revokes the app on HF her session ends at revalidation; bob's does not."""
    gateway = await launch({"session": {"revalidate_after": REVALIDATE}})
    cookies = {}
    for user in ("alice", "bob"):
        async with gateway.browser() as http:
            await gateway.sign_in(http, user)
            cookies[user] = gateway.session_cookie(http)
    assert await status(gateway.url + ECHO, cookies["alice"]) == 200
    fake_hf.revoke_user_tokens("alice")
    await asyncio.sleep(PAST_REVALIDATION)
    assert await status(gateway.url + ECHO, cookies["alice"]) == 401
    assert await status(gateway.url + ECHO, cookies["bob"]) == 200
    assert await status(gateway.url + ECHO, cookies["alice"]) == 401  # ended, not just refused


# --------------------------------------------------------------------------- refresh


async def alice_with_short_tokens(
    launch: Launch, fake_hf: FakeHF
) -> tuple[GatewayHarness, str, int]:
    """alice signed in with 2-second access tokens (and refresh tokens) on a gateway that
    revalidates every REVALIDATE: the gateway, her cookie, and the count of token requests
    so far (where refreshes_since starts)."""
    fake_hf.settings.expires_in = 2
    gateway = await launch({"session": {"revalidate_after": REVALIDATE}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    return gateway, cookie, len(fake_hf.token_requests)


async def access_token_upstream(gateway: GatewayHarness, cookie: str) -> str:
    """The access token the upstream received (routes pass it in these tests)."""
    code, body, _ = await fetch(gateway.url + ECHO, cookie)
    assert code == 200
    headers = {k.lower(): v for k, v in body["headers"]}
    token: str = headers["x-forwarded-access-token"]
    return token


async def test_an_expiring_access_token_is_refreshed_and_the_user_stays_signed_in(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """With 2-second access tokens and refresh tokens, each revalidation refreshes (Basic
    auth, a new refresh token every time) and the upstream sees the new access token."""
    fake_hf.settings.expires_in = 2
    gateway = await launch(
        {"session": {"revalidate_after": REVALIDATE}, "identity": {"pass_access_token": True}}
    )
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    tokens = [await access_token_upstream(gateway, cookie)]
    start = len(fake_hf.token_requests)
    for _ in range(2):  # 2.4 s: past the first access token's life
        await asyncio.sleep(PAST_REVALIDATION)
        tokens.append(await access_token_upstream(gateway, cookie))
    assert len(set(tokens)) == 3
    assert all(t.startswith("hf_oauth_") for t in tokens)
    refreshes = refreshes_since(fake_hf, start)
    assert len(refreshes) == 2
    assert {r["auth"] for r in refreshes} == {"basic"}
    sent = [r["form"]["refresh_token"] for r in refreshes]
    assert len(set(sent)) == 2


async def test_concurrent_requests_during_a_refresh_use_the_refresh_token_once(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """Ten requests arriving when a refresh is due share one refresh; all succeed, and the
    rotated refresh token that was stored works for the next refresh."""
    gateway, cookie, start = await alice_with_short_tokens(launch, fake_hf)
    await asyncio.sleep(PAST_REVALIDATION)
    results = await asyncio.gather(*(status(gateway.url + ECHO, cookie) for _ in range(10)))
    assert results == [200] * 10
    assert len(refreshes_since(fake_hf, start)) == 1
    await asyncio.sleep(PAST_REVALIDATION)
    assert await status(gateway.url + ECHO, cookie) == 200
    sent = [r["form"]["refresh_token"] for r in refreshes_since(fake_hf, start)]
    assert len(sent) == 2 and len(set(sent)) == 2


async def test_two_replicas_refreshing_one_session_never_reuse_a_refresh_token(
    launch: Launch, fake_hf: FakeHF, redis_server: RedisServer
) -> None:
    """Two gateways on one Redis get the same session's requests at once: the store lock
    keeps every refresh token single use, so no request fails and the session lives on."""
    fake_hf.settings.expires_in = 2
    overrides = {"session": {"revalidate_after": REVALIDATE}}
    prefix = f"it-{secrets.token_hex(4)}:"
    first = await launch(overrides, store_factory=redis_stores(redis_server.url, prefix))
    second = await launch(overrides, store_factory=redis_stores(redis_server.url, prefix))
    async with first.browser() as http:
        await first.sign_in(http, "alice")
        cookie = first.session_cookie(http)
    assert await status(second.url + ECHO, cookie) == 200  # one session, seen by both
    start = len(fake_hf.token_requests)
    for _ in range(2):
        await asyncio.sleep(PAST_REVALIDATION)
        urls = [g.url + ECHO for g in (first, second) for _ in range(6)]
        results = await asyncio.gather(*(status(url, cookie) for url in urls))
        assert results == [200] * len(urls)
    sent = [r["form"]["refresh_token"] for r in refreshes_since(fake_hf, start)]
    assert len(sent) >= 2
    assert len(set(sent)) == len(sent)  # a refresh token sent twice would be invalid_grant
    assert await status(first.url + ECHO, cookie) == 200


async def test_a_rotated_refresh_token_is_kept_even_when_userinfo_then_fails(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """If HF's userinfo fails right after a refresh, the request gets 503, but the new
    refresh token is already stored: the next request refreshes with it and succeeds."""
    gateway, cookie, start = await alice_with_short_tokens(launch, fake_hf)
    await asyncio.sleep(PAST_REVALIDATION)
    fake_hf.settings.userinfo_status = 503
    code, body, headers = await fetch(gateway.url + ECHO, cookie)
    assert (code, body["error"], headers["Retry-After"]) == (503, "unavailable", "5")
    fake_hf.settings.userinfo_status = None
    assert await status(gateway.url + ECHO, cookie) == 200
    sent = [r["form"]["refresh_token"] for r in refreshes_since(fake_hf, start)]
    assert len(sent) == 2 and len(set(sent)) == 2


async def test_a_rate_limited_refresh_keeps_the_session(launch: Launch, fake_hf: FakeHF) -> None:
    """A 429 from the token endpoint is for now, not for good: the request gets 503 with
    HF's wait as Retry-After, the session lives on, and the next refresh (with the same,
    unspent refresh token) signs nobody out. The twin of the rejected refresh below."""
    gateway, cookie, start = await alice_with_short_tokens(launch, fake_hf)
    await asyncio.sleep(PAST_REVALIDATION)
    fake_hf.settings.token_status = 429
    code, body, headers = await fetch(gateway.url + ECHO, cookie)
    assert (code, body["error"], headers["Retry-After"]) == (503, "unavailable", "60")
    fake_hf.settings.token_status = None
    assert await status(gateway.url + ECHO, cookie) == 200
    sent = [r["form"]["refresh_token"] for r in refreshes_since(fake_hf, start)]
    assert len(sent) == 2 and sent[0] == sent[1]  # the throttled one was not spent


async def test_a_rejected_refresh_token_ends_the_session(launch: Launch, fake_hf: FakeHF) -> None:
    """When HF answers invalid_grant to a refresh, the user is signed out (not let through)."""
    gateway, cookie, start = await alice_with_short_tokens(launch, fake_hf)
    fake_hf.revoke_user_tokens("alice")
    await asyncio.sleep(PAST_REVALIDATION)
    assert await status(gateway.url + ECHO, cookie) == 401
    assert len(refreshes_since(fake_hf, start)) == 1
    assert await status(gateway.url + ECHO, cookie) == 401


async def test_without_refresh_tokens_the_session_ends_when_the_access_token_expires(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """With 3-second access tokens and no refresh token, revalidation keeps the session
    while the token is valid, and the session ends when the token expires."""
    fake_hf.settings.expires_in = 3
    fake_hf.settings.issue_refresh_tokens = False
    gateway = await launch({"session": {"revalidate_after": REVALIDATE}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    code, info, _ = await fetch(f"{gateway.url}/_gateway/userinfo", cookie)
    assert code == 200
    assert info["session"]["expires_at"] - info["session"]["created_at"] <= 3
    calls = fake_hf.userinfo_calls
    start = len(fake_hf.token_requests)
    await asyncio.sleep(PAST_REVALIDATION)
    assert await status(gateway.url + ECHO, cookie) == 200
    assert fake_hf.userinfo_calls > calls  # revalidated with the still-valid token
    await asyncio.sleep(max(0.0, info["session"]["expires_at"] + 1.05 - time.time()))
    assert await status(gateway.url + ECHO, cookie) == 401
    assert refreshes_since(fake_hf, start) == []
