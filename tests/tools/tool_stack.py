"""A real tool started as its guide says, a real gateway in front of it on the public host,
and a Chromium that resolves that host to the gateway (so the tool sees the public ``Host``,
as in production, and its own Host checks are exercised)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, async_playwright

from gateway.devtools.fake_hf import FakeHF
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.harness import CLIENT_ID, GatewayHarness
from tests.support.redis_server import free_port
from tests.tools.guides import PUBLIC_HOST, Placement

BIN = Path(sys.executable).parent
READY_SECONDS = 120


def _with_port(text: str, old: int, new: int) -> str:
    return re.sub(rf"\b{old}\b", str(new), text)


@dataclass
class Running:
    url: str
    """The tool's own address (loopback, bypassing the gateway)."""
    log: Path


def _with_public_port(text: str, gateway_port: int) -> str:
    """The guides name the public host on 443; the test gateway listens on another port."""
    return re.sub(rf"\b{re.escape(PUBLIC_HOST)}\b(?!:)", f"{PUBLIC_HOST}:{gateway_port}", text)


@contextlib.asynccontextmanager
async def run_tool(spec: Placement, workdir: Path, gateway_port: int) -> AsyncIterator[Running]:
    """Start the guide's command in ``workdir`` on a free port (the documented port replaced,
    the public host given the test gateway's port)."""
    for name, body in spec.files.items():
        (workdir / name).write_text(body + "\n", "utf-8")
    port, documented = free_port(), spec.upstream_port
    argv = [_with_public_port(_with_port(a, documented, port), gateway_port) for a in spec.argv]
    if argv[0] == "jupyter" and os.geteuid() == 0:
        argv.append("--allow-root")  # the guide says so for root (this test runs as root)
    program = sys.executable if argv[0] == "python" else str(BIN / argv[0])
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(workdir),  # tools write their settings and caches under ~
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        **{k: _with_port(v, documented, port) for k, v in spec.env.items()},
    }
    log = workdir / "tool.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            program, *argv[1:], cwd=workdir, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    prefix = "" if spec.route.get("strip_prefix") else spec.route["path"].rstrip("/")
    try:
        await _wait_ready(f"{url}{prefix}/", process, log)
        yield Running(url, log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_SECONDS
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the tool exited: {log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status < 500:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the tool did not answer {url}: {log.read_text(errors='replace')[-3000:]}")


@contextlib.asynccontextmanager
async def gateway_in_front(spec: Placement, tool: Running, port: int) -> AsyncIterator[str]:
    """A gateway on ``port`` with the guide's route (its upstream the running tool); yields the
    public URL of the tool's placement (``http://tools.example.com:PORT/`` or ``.../sub/``)."""
    fake = FakeHF.demo()
    public = f"http://{PUBLIC_HOST}:{port}"
    fake.clients[CLIENT_ID].redirect_uris.append(f"{public}/_gateway/callback")
    route = {**spec.route, "upstream": tool.url}
    async with fake.serve():
        overrides = {"server": {"public_url": public}, "routes": [route]}
        gateway = GatewayHarness(fake, tool.url, port=port, overrides=overrides)
        await gateway.start()
        try:
            yield public + spec.route["path"].rstrip("/") + "/"
        finally:
            await gateway.stop()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, the public host mapped to loopback."""
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {PUBLIC_HOST} 127.0.0.1"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Page, url: str, username: str) -> None:
    """Open ``url``, click through the gateway's sign-in and the fake HF's account picker."""
    await page.goto(url)
    await page.get_by_role("link", name="Sign in with Hugging Face").click()
    await page.get_by_role("button", name=f"Sign in as {username}").click()
    await page.wait_for_url(f"{url}**")
