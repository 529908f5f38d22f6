"""`hf-gateway sessions list|revoke` against the Redis a running gateway uses."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
import yaml

from gateway.session.redis import RedisStore
from tests.integration.conftest import StartGateway
from tests.support.harness import API, GatewayHarness
from tests.support.redis_server import RedisServer


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def status(gateway: GatewayHarness, cookie: str) -> int:
    async with aiohttp.ClientSession(cookies={"hf_gateway": cookie}) as http:
        async with http.get(f"{gateway.url}/api/echo", headers=API) as response:
            return response.status


async def redis_gateway(
    start_gateway: StartGateway, redis_server: RedisServer, tmp_path: Path
) -> tuple[GatewayHarness, Path]:
    prefix = f"cli-{secrets.token_hex(4)}:"
    session = {"store": "redis", "redis_url": redis_server.url, "redis_prefix": prefix}
    gateway = await start_gateway(
        {"session": session},
        store=RedisStore(aioredis.Redis.from_url(redis_server.url), prefix=prefix),
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway.raw_config()))
    return gateway, config


async def sign_in(gateway: GatewayHarness, username: str) -> str:
    async with gateway.browser() as http:
        await gateway.sign_in(http, username)
        return gateway.session_cookie(http)


async def test_sessions_are_listed_and_revoked_everywhere_at_once(
    start_gateway: StartGateway, redis_server: RedisServer, tmp_path: Path
) -> None:
    """list shows who is signed in; revoke --user ends all of alice's sessions (bob's stay),
    revoke --id ends one; the running gateway refuses the cookies right away."""
    gateway, config = await redis_gateway(start_gateway, redis_server, tmp_path)
    alice_1, alice_2, bob = (
        await sign_in(gateway, "alice"),
        await sign_in(gateway, "alice"),
        await sign_in(gateway, "bob"),
    )
    assert [await status(gateway, c) for c in (alice_1, alice_2, bob)] == [200, 200, 200]

    code, out, _ = await cli("sessions", "list", "-c", str(config), "--json")
    assert code == 0
    listed = json.loads(out)
    assert sorted(s["username"] for s in listed) == ["alice", "alice", "bob"]
    assert all(len(s["id"]) == 16 and s["id"] not in alice_1 + alice_2 + bob for s in listed)

    code, out, _ = await cli("sessions", "revoke", "-c", str(config), "--user", "alice")
    assert (code, out.strip()) == (0, "revoked 2 sessions")
    assert [await status(gateway, c) for c in (alice_1, alice_2, bob)] == [401, 401, 200]

    (bob_id,) = [s["id"] for s in listed if s["username"] == "bob"]
    code, out, _ = await cli("sessions", "revoke", "-c", str(config), "--id", bob_id[:10])
    assert (code, out.strip()) == (0, "revoked 1 session")
    assert await status(gateway, bob) == 401
    code, out, _ = await cli("sessions", "list", "-c", str(config))
    assert code == 0 and out.strip().endswith("0 sessions")


async def test_revoking_needs_a_long_enough_id(
    start_gateway: StartGateway, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A short --id could hit someone else's session: it is refused with exit 2."""
    _, config = await redis_gateway(start_gateway, redis_server, tmp_path)
    code, _, err = await cli("sessions", "revoke", "-c", str(config), "--id", "abc")
    assert code == 2
    assert "at least 8" in err


async def test_the_memory_store_cannot_be_reached_from_outside(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    """With store: memory the verbs explain why they cannot work, and exit 2."""
    gateway = await start_gateway()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway.raw_config()))
    code, _, err = await cli("sessions", "list", "-c", str(config))
    assert code == 2
    assert "store: memory" in err
