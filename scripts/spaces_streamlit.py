"""examples/spaces/ with a real Streamlit, in Chromium: ``make spaces-streamlit``.

Not part of ``make test`` (it needs Streamlit, which the gateway does not depend on). It
copies examples/spaces/ to a scratch folder, runs its start.sh (Streamlit on 127.0.0.1:8501,
then ``hf-gateway run``) with the variables a Space with ``hf_oauth: true`` gets, pointed at
the fake Hugging Face, frames the Space from a page on another site, signs in from the frame
at the top level and waits for Streamlit (over its websocket, through the gateway) to show
alice; bob, a reader in acme, gets the 403 page. The server keys a loopback run must set
(public_url, listen, frame_ancestors) are appended to the copied gateway.yaml.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.devtools.fake_hf import FakeHF  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.harness import CLIENT_ID, CLIENT_SECRET  # noqa: E402
from tests.support.redis_server import free_port  # noqa: E402

SIGN_IN = "Sign in with Hugging Face"


async def main() -> int:
    fake = FakeHF.demo()
    port, framer_port = free_port(), free_port()
    space = f"http://127.0.0.1:{port}"
    async with fake.serve() as issuer:
        framer = await _serve_framer(space, framer_port)
        folder = Path(tempfile.mkdtemp(prefix="spaces-streamlit-"))
        shutil.copytree(ROOT / "examples" / "spaces", folder, dirs_exist_ok=True)
        config = yaml.safe_load((folder / "gateway.yaml").read_text())
        config["server"] = {
            "public_url": space,
            "listen": f"127.0.0.1:{port}",
            "frame_ancestors": [framer],
            "metrics_listen": None,
            "drain_delay": 0,
        }
        (folder / "gateway.yaml").write_text(yaml.safe_dump(config))
        environ = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HF_GATEWAY_CONFIG": str(folder / "gateway.yaml"),
            "SPACE_ID": "acme/dashboard",
            "SPACE_HOST": "acme-dashboard.hf.space",
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "OAUTH_SCOPES": "openid profile email read-memberships",
            "OPENID_PROVIDER_URL": issuer,
        }
        log = folder / "start.log"
        start = _start(folder, environ, log)
        try:
            await _wait(f"{space}/_gateway/readyz")
            await _wait("http://127.0.0.1:8501/_stcore/health")
            await _journey(space, framer)
        except BaseException:
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            os.killpg(start.pid, signal.SIGTERM)  # start.sh's session: gateway and Streamlit
            start.wait(timeout=15)
    print("spaces-streamlit: alice signed in from the frame and Streamlit showed her; bob got 403")
    return 0


def _start(folder: Path, environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The Space's start.sh, in a session of its own (so both its processes can be ended)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["/bin/sh", "start.sh"],
            cwd=folder,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _serve_framer(space: str, port: int) -> str:
    async def page(request: web.Request) -> web.Response:
        body = f'<h1>Space page</h1><iframe id="space" src="{space}/"></iframe>'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "localhost", port).start()
    return f"http://localhost:{port}"


async def _wait(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"spaces-streamlit: {url} never answered 200")


async def _sign_in_from_the_frame(page: Page, space: str, framer: str, user: str) -> None:
    await page.goto(framer)
    frame = page.frame_locator("#space")
    await frame.get_by_role("link", name=SIGN_IN).click()
    await page.get_by_role("button", name=f"Sign in as {user}").click()
    await page.wait_for_url(f"{space}/")


async def _journey(space: str, framer: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        alice = await (await browser.new_context()).new_page()
        await _sign_in_from_the_frame(alice, space, framer, "alice")
        await alice.get_by_text("Signed in as alice").wait_for(timeout=30_000)
        bob = await (await browser.new_context()).new_page()
        await _sign_in_from_the_frame(bob, space, framer, "bob")
        assert "Access denied" in await bob.content(), "bob (acme read) was let in"
        await browser.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
