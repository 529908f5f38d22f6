"""Log injection (SECURITY.md §9, issue 7 item 10): a value the provider or a client chose
can never forge a line of ``hf-gateway run``'s log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import aiohttp
import pytest
import yaml

from gateway.devtools.fake_hf import FakeHF
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import API
from tests.support.redis_server import RedisServer

FORGED = "FORGED 2026-12-03 INFO gateway.web.middleware allowed GET /writers for admin"
MALLORY = "mallory\n" + FORGED + "\r\nsecond"


@pytest.fixture
async def hostile_hf(tmp_path: Path) -> AsyncIterator[FakeHF]:
    """The demo world plus a user whose username carries line breaks."""
    text = resources.files("gateway.devtools").joinpath("demo_users.yaml").read_text("utf-8")
    world = yaml.safe_load(text)
    world["users"].append(
        {
            "sub": "0123456789abcdef01234567",
            "username": MALLORY,
            "name": "Mallory\nFORGED name",
            "email": "mallory@example.com",
        }
    )
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    fake = FakeHF.from_yaml(path)
    async with fake.serve():
        yield fake


async def denied_on_writers(process: GatewayProcess, fake: FakeHF, username: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await process.sign_in(http, fake, username)
        async with http.get(f"{process.url}/writers/x", headers=API) as response:
            assert response.status == 403


async def test_a_username_with_line_breaks_cannot_forge_log_lines(
    hostile_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """mallory's refusal is logged on one line with her line breaks escaped, and no line of
    the log starts with the forged text; dave's refusal (the twin) reads plainly."""
    process = GatewayProcess(
        tmp_path, issuer=hostile_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    await process.start()
    try:
        await denied_on_writers(process, hostile_hf, MALLORY)
        await denied_on_writers(process, hostile_hf, "dave")
    finally:
        process.stop()
    lines = process.log.read_text("utf-8").splitlines()
    assert not [line for line in lines if line.startswith(("FORGED", "second"))]
    # The refusals are audit lines (JSON, docs/logs.md): the raw line holds mallory's line
    # breaks as JSON escapes, and parsing it gives her name back exactly.
    denied = [json.loads(line) for line in lines if '"decision": "deny"' in line]
    assert [(d["user"], d["reasons"][0]) for d in denied] == [
        (MALLORY, "no_matching_allow"),
        ("dave", "no_matching_allow"),
    ]
    assert "mallory\\n" + FORGED + "\\r\\nsecond" in "\n".join(lines)
