"""A script writing to a real Jupyter Server behind the gateway (docs/clients.md §7).

The gateway consumes the HF token, so Jupyter sees a request that no Jupyter token
authenticates and applies its XSRF check: 403. Each of the three ways through it the guide
gives is run here against jupyter_server itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from gateway.devtools.fake_hf import FakeHF
from tests.support.harness import GatewayHarness
from tests.support.redis_server import free_port

ALICE = "hf_alice_demo_read_token"
JUPYTER_TOKEN = "jupyter-test-token-0123456789"
NEW_NOTEBOOK = {"type": "notebook"}

Start = Callable[..., Awaitable[GatewayHarness]]


@contextlib.asynccontextmanager
async def jupyter(tmp: Path, *options: str) -> AsyncIterator[str]:
    """jupyter_server on a free loopback port, its files and runtime under ``tmp``."""
    port = free_port()
    (tmp / "root").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyter_server",
        "--allow-root",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={tmp / 'root'}",
        *options,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/api/status") as response:
                        if response.status in (200, 403):
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("jupyter_server did not start")
        yield url
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """A gateway in front of a Jupyter started with ``options`` (route / signed in)."""
    fake = FakeHF.demo()
    stack = contextlib.AsyncExitStack()
    harnesses: list[GatewayHarness] = []

    async def begin(tmp: Path, *options: str) -> GatewayHarness:
        url = await stack.enter_async_context(jupyter(tmp, *options))
        routes = [{"name": "jupyter", "path": "/", "upstream": url, "policy": "authenticated"}]
        harness = GatewayHarness(fake, url, overrides={"routes": routes})
        harnesses.append(harness)
        return await harness.start()

    async with fake.serve():
        try:
            yield begin
        finally:
            for harness in harnesses:
                await harness.stop()
            await stack.aclose()


def session(**headers: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers=headers, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_a_script_post_meets_jupyters_xsrf_check(start: Start, tmp_path: Path) -> None:
    """Jupyter without a token of its own, the HF token in Authorization: the gateway lets
    alice through (GET works) and Jupyter refuses the POST: '_xsrf' argument missing."""
    gateway = await start(tmp_path, "--IdentityProvider.token=")
    async with session(Authorization=f"Bearer {ALICE}") as http:
        async with http.get(f"{gateway.url}/api/contents") as response:
            assert response.status == 200
        async with http.post(f"{gateway.url}/api/contents", json=NEW_NOTEBOOK) as response:
            assert response.status == 403
            assert "_xsrf" in (await response.json())["message"]


async def test_jupyters_own_token_beside_x_hf_authorization(start: Start, tmp_path: Path) -> None:
    """Way 1: the HF token in X-HF-Authorization, Jupyter's in Authorization (forwarded
    untouched): token-authenticated, no XSRF check, 201. Twin: Jupyter's token missing,
    Jupyter refuses."""
    gateway = await start(tmp_path, f"--IdentityProvider.token={JUPYTER_TOKEN}")
    both = {"X-HF-Authorization": f"Bearer {ALICE}", "Authorization": f"token {JUPYTER_TOKEN}"}
    async with session(**both) as http:
        async with http.post(f"{gateway.url}/api/contents", json=NEW_NOTEBOOK) as response:
            assert response.status == 201, await response.text()
    async with session(**{"X-HF-Authorization": f"Bearer {ALICE}"}) as http:
        async with http.post(f"{gateway.url}/api/contents", json=NEW_NOTEBOOK) as response:
            assert response.status == 403


async def test_echoing_the_xsrf_cookie_passes(start: Start, tmp_path: Path) -> None:
    """Way 2: an HTML page sets the _xsrf cookie (an /api answer does not), which the gateway
    forwards; echoed in X-XSRFToken, the POST is 201."""
    gateway = await start(tmp_path, "--IdentityProvider.token=")
    async with session(Authorization=f"Bearer {ALICE}") as http:
        async with http.get(f"{gateway.url}/api/status") as response:
            assert "_xsrf" not in response.cookies
        async with http.get(f"{gateway.url}/") as response:
            assert response.status == 200
        xsrf = {c.key: c.value for c in http.cookie_jar}["_xsrf"]
        async with http.post(
            f"{gateway.url}/api/contents", json=NEW_NOTEBOOK, headers={"X-XSRFToken": xsrf}
        ) as response:
            assert response.status == 201, await response.text()


async def test_disable_check_xsrf_behind_the_gateway(start: Start, tmp_path: Path) -> None:
    """Way 3: ServerApp.disable_check_xsrf: the bearer-token POST is 201, and an anonymous one
    still never reaches Jupyter (the gateway's 401)."""
    gateway = await start(
        tmp_path, "--IdentityProvider.token=", "--ServerApp.disable_check_xsrf=True"
    )
    async with session(Authorization=f"Bearer {ALICE}") as http:
        async with http.post(f"{gateway.url}/api/contents", json=NEW_NOTEBOOK) as response:
            assert response.status == 201, await response.text()
    async with session(Accept="application/json") as http:
        async with http.post(f"{gateway.url}/api/contents", json=NEW_NOTEBOOK) as response:
            assert response.status == 401
