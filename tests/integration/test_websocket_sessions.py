"""Websockets end with the access that let them in: logout, revocation on another replica,
revalidation that removes an org, idle_timeout and max_lifetime close an open tunnel with
1008 and a reason; a gateway that stops closes them with 1001. Each has its positive twin:
the same tunnel stays open while the session does."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from gateway.devtools.fake_hf import FakeHF
from gateway.session.manager import SessionManager
from gateway.session.model import SessionKeys, SessionTimes
from gateway.session.redis import RedisStore
from tests.integration.conftest import StartGateway
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import SECRET, GatewayHarness, base_raw_config
from tests.support.redis_server import RedisServer

WS = "/api/ws"
CLOSE_WITHIN = 1.0


async def open_tunnel(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, protocols=("echo",))
    assert (await ws.receive_str(timeout=5)).startswith("hello ")
    return ws


async def closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> tuple[int, str]:
    """Wait for the gateway's close frame; its code and reason."""
    async with asyncio.timeout(seconds):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.CLOSE:
                return int(message.data), str(message.extra or "")
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the tunnel broke without a close frame: {message}")


async def still_open(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str("still there?")
    assert await ws.receive_str(timeout=5) == "still there?"


async def test_signing_out_in_another_tab_closes_the_open_websocket(
    start_gateway: StartGateway,
) -> None:
    """The tunnel works while alice is signed in; a logout in the same browser closes it
    within a second with 1008 and says why."""
    gateway = await start_gateway()
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        ws = await open_tunnel(http, gateway.url + WS)
        await still_open(ws)
        logout = f"{gateway.url}/_gateway/logout"
        async with http.post(logout, headers={"Origin": gateway.url}) as response:
            assert response.status == 200
        signed_out = time.monotonic()
        code, reason = await closed_within(ws, CLOSE_WITHIN + 0.5)
        assert time.monotonic() - signed_out < CLOSE_WITHIN
        assert code == 1008
        assert "session" in reason


async def redis_replicas(
    start_gateway: StartGateway, redis_url: str, overrides: dict[str, Any] | None = None
) -> tuple[list[GatewayHarness], str]:
    prefix = f"tunnel-{secrets.token_hex(4)}:"
    raw = {"session": {"store": "redis", "redis_url": redis_url}, **(overrides or {})}
    gateways = [
        await start_gateway(raw, RedisStore(aioredis.Redis.from_url(redis_url), prefix=prefix))
        for _ in range(2)
    ]
    return gateways, prefix


async def test_sessions_revoke_closes_the_websocket_on_another_replica(
    start_gateway: StartGateway, redis_server: RedisServer
) -> None:
    """alice's tunnel runs through replica B; revoking her sessions from the store (what
    ``hf-gateway sessions revoke alice`` does) closes it within a second, while bob's
    tunnel on the same replica stays open."""
    (first, second), prefix = await redis_replicas(start_gateway, redis_server.url)
    async with first.browser() as alice, first.browser() as bob:
        await first.sign_in(alice, "alice")
        await first.sign_in(bob, "bob")
        alice_ws = await open_tunnel(alice, second.url + WS)
        bob_ws = await open_tunnel(bob, second.url + WS)
        sub = (await (await alice.get(f"{second.url}/_gateway/userinfo")).json())["sub"]
        store = RedisStore(aioredis.Redis.from_url(redis_server.url), prefix=prefix)
        manager = SessionManager(
            store, SessionKeys.derive([SECRET]), SessionTimes(8 * 3600, 7 * 86400, 300)
        )
        try:
            assert await manager.revoke_user(sub) == 1
        finally:
            await store.close()
        revoked = time.monotonic()
        code, reason = await closed_within(alice_ws, CLOSE_WITHIN + 0.5)
        assert time.monotonic() - revoked < CLOSE_WITHIN
        assert (code, reason) == (1008, "the session has ended")
        await still_open(bob_ws)


async def test_an_org_removal_at_revalidation_closes_the_org_only_websocket(
    start_gateway: StartGateway, fake_hf: FakeHF, upstream: str
) -> None:
    """The acme-only tunnel stays open across a revalidation that keeps alice in acme, and
    closes with 1008 at the first revalidation after she left acme, without any request."""
    routes = base_raw_config(0, "", upstream)["routes"]
    acme = {
        "name": "acme",
        "path": "/acme",
        "upstream": upstream,
        "policy": "acme-members",
        "strip_prefix": True,
    }
    gateway = await start_gateway(
        {
            "policies": {"acme-members": {"allow": [{"org": "acme"}]}},
            "routes": [acme, *routes],
            "session": {"revalidate_after": 1},
        }
    )
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        ws = await open_tunnel(http, f"{gateway.url}/acme{WS}")
        calls = fake_hf.userinfo_calls
        await asyncio.sleep(2.5)  # at least one revalidation with alice still in acme
        assert fake_hf.userinfo_calls > calls
        await still_open(ws)
        fake_hf.set_role("alice", "acme", None)
        code, reason = await closed_within(ws, 3.5)
        assert code == 1008
        assert "access was withdrawn" in reason


async def test_idle_timeout_closes_an_unused_websocket_but_not_one_in_use(
    start_gateway: StartGateway,
) -> None:
    """With idle_timeout 2 s, a tunnel alice keeps using stays open past it (its frames
    count as activity), and one left silent is closed at the idle timeout."""
    gateway = await start_gateway({"session": {"idle_timeout": 2}})
    async with gateway.browser() as busy, gateway.browser() as idle:
        await gateway.sign_in(busy, "alice")
        await gateway.sign_in(idle, "bob")
        busy_ws = await open_tunnel(busy, gateway.url + WS)
        idle_ws = await open_tunnel(idle, gateway.url + WS)
        opened = time.monotonic()
        idle_closed = asyncio.ensure_future(closed_within(idle_ws, 4.5))
        while time.monotonic() - opened < 3.5:  # 3.5 s of use, past the idle timeout
            await still_open(busy_ws)
            await asyncio.sleep(0.3)
        code, reason = await idle_closed
        assert (code, reason) == (1008, "the session has ended")
        await still_open(busy_ws)


async def test_max_lifetime_closes_the_websocket(start_gateway: StartGateway) -> None:
    """A tunnel in use still ends when its session reaches max_lifetime."""
    gateway = await start_gateway({"session": {"max_lifetime": 3, "idle_timeout": 3}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        ws = await open_tunnel(http, gateway.url + WS)
        await still_open(ws)
        code, reason = await closed_within(ws, 4.5)
        assert (code, reason) == (1008, "the session has ended")


async def test_stopping_the_gateway_closes_websockets_with_going_away(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """SIGTERM to ``hf-gateway run`` sends 1001 to open tunnels instead of dropping them."""
    process = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    await process.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await process.sign_in(http, fake_hf, "alice")
            ws = await open_tunnel(http, process.url + WS)
            await still_open(ws)
            assert process.process is not None
            process.process.send_signal(signal.SIGTERM)
            code, reason = await closed_within(ws, 5)
            assert code == 1001
            assert "shutting down" in reason
    finally:
        process.stop()
