"""Spaces mode end to end in a real Chromium: ``hf-gateway run`` configured by the Spaces
variables (no provider section), framed by a page on another site as huggingface.co frames
a Space, in front of a tiny app standing in for Streamlit, guarded by an org role.

Why plain http works here: the Space is served on http://127.0.0.1 and the framing page on
http://localhost, two different sites that Chromium both treats as secure contexts, so it
keeps the gateway's ``Secure`` cookies (``__Host-`` prefix included) and applies
``SameSite=None`` as on https (checked: Chromium refuses a SameSite=None cookie without
Secure, and keeps this one). The fake HF's authorize page sends X-Frame-Options: SAMEORIGIN
as HF's does, so a sign-in that stayed in the frame would end in an error frame.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Frame, Page, async_playwright

from gateway.devtools.fake_hf import FakeHF
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support import log_scan
from tests.support.harness import CLIENT_ID, CLIENT_SECRET
from tests.support.redis_server import free_port

SIGN_IN = "Sign in with Hugging Face"
HF_SANDBOX = (
    "allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox allow-same-origin "
    "allow-scripts allow-downloads"
)
"""The sandbox of huggingface.co's Space iframe (as hub-docs embeds Spaces): no
allow-top-navigation, so a target=_top link could not leave it; a popup escapes it."""


async def _app(request: web.Request) -> web.Response:
    """The guarded app (a Streamlit stand-in): greets whoever the gateway says it is."""
    user = request.headers.get("X-Forwarded-User", "nobody")
    return web.Response(text=f"<h1>Hello {user}</h1>", content_type="text/html")


@asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def framing_app(space_url: str) -> web.Application:
    """The Space page's stand-in: another site showing the Space in a sandboxed iframe."""

    async def page(request: web.Request) -> web.Response:
        body = (
            f'<h1>A Space page</h1><iframe id="space" src="{space_url}/" '
            f'sandbox="{HF_SANDBOX}"></iframe>'
        )
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return app


@dataclass
class Space:
    url: str
    framer: str
    """The framing page's origin, the one frame_ancestors allows (huggingface.co's stand-in)."""
    other: str
    """A framing page on an origin that is not allowed."""
    log: Path


@pytest.fixture
async def space(tmp_path: Path) -> AsyncIterator[Space]:
    fake = FakeHF.demo()
    port, framer_port, other_port = free_port(), free_port(), free_port()
    space_url = f"http://127.0.0.1:{port}"
    upstream = web.Application()
    upstream.router.add_get("/", _app)
    async with (
        fake.serve() as issuer,
        serve(upstream, "127.0.0.1", free_port()) as upstream_url,
        serve(framing_app(space_url), "localhost", framer_port) as framer,
        serve(framing_app(space_url), "localhost", other_port) as other,
    ):
        # What a Space's config holds, plus the three keys a test on loopback must set
        # (a Space gets them from SPACE_HOST and huggingface.co): no provider section.
        config = {
            "server": {
                "listen": f"127.0.0.1:{port}",
                "public_url": space_url,
                "frame_ancestors": [framer],
                "metrics_listen": None,
                "drain_delay": 0,
            },
            "policies": {"acme-admins": {"allow": [{"org": "acme", "min_role": "admin"}]}},
            "routes": [{"name": "app", "upstream": upstream_url, "policy": "acme-admins"}],
        }
        (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))
        environ = {
            **os.environ,
            "SPACE_ID": "acme/streamlit",
            "SPACE_HOST": "acme-streamlit.hf.space",
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "OAUTH_SCOPES": "openid profile email read-memberships",
            "OPENID_PROVIDER_URL": issuer,
        }
        log = tmp_path / "gateway.log"
        log_scan.watch(log)
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(tmp_path / "gateway.yaml")],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
            )
        try:
            await _ready(space_url, process, log)
            yield Space(space_url, framer, other, log)
        finally:
            process.terminate()
            process.wait(timeout=15)


async def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if process.poll() is not None:
                break
            try:
                async with http.get(f"{url}/_gateway/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"hf-gateway run did not become ready:\n{log.read_text()}")


async def space_frame(page: Page, framer: str) -> Frame:
    await page.goto(framer)
    handle = await page.wait_for_selector("#space")
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_load_state()
    return frame


async def sign_in_from_the_frame(page: Page, space: Space) -> Page:
    """Click the sign-in button inside the frame: HF's page opens in a new tab (a top-level
    page, out of the sandbox), and signing in there returns that tab into the Space, where
    the app shows alice. Returns the new tab."""
    frame = await space_frame(page, space.framer)
    assert frame.url.startswith(f"{space.url}/_gateway/sign_in")
    async with page.context.expect_page() as opened:
        await frame.get_by_role("link", name=SIGN_IN).click()
    tab = await opened.value
    await tab.get_by_role("button", name="Sign in as alice").click()
    await tab.wait_for_url(f"{space.url}/")
    assert await tab.locator("h1").inner_text() == "Hello alice"
    return tab


async def test_the_space_signs_in_at_the_top_level_from_inside_the_frame(
    browser: Browser, space: Space
) -> None:
    """In a default Playwright context (like incognito, it blocks third-party cookies) the
    whole sign-in works, because it runs in a top-level tab: the login binding cookie and
    the session cookie are first-party there."""
    log = space.log.read_text()
    assert "spaces mode: provider http://127.0.0.1:" in log
    assert f"pages framed by {space.framer}; cookies SameSite=None" in log
    context = await browser.new_context()
    page = await context.new_page()
    frame = await space_frame(page, space.framer)
    # The sign-in page renders inside the frame (no error frame); HF's page would not.
    button = frame.get_by_role("link", name=SIGN_IN)
    assert await button.is_visible()
    async with context.expect_page() as opened:
        await button.click()
    tab = await opened.value
    await tab.wait_for_load_state()
    # The fake HF's sign-in page, top level in the new tab (it would refuse a frame).
    assert not tab.url.startswith(space.url) and not tab.url.startswith(space.framer)
    assert len(tab.frames) == 1
    await tab.get_by_role("button", name="Sign in as alice").click()
    await tab.wait_for_url(f"{space.url}/")
    assert await tab.locator("h1").inner_text() == "Hello alice"
    names = {c["name"]: c for c in await context.cookies(space.url)}
    session = names["__Host-hf_gateway"]
    assert (session["sameSite"], session["secure"], session["httpOnly"]) == ("None", True, True)
    assert "__Host-hf_gateway_login" not in names  # the binding was used up at the callback
    # Back on the Space page: this context sends no third-party cookie into the frame, so
    # the frame asks to sign in again (the new tab holds the signed-in Space).
    frame = await space_frame(page, space.framer)
    assert await frame.get_by_role("link", name=SIGN_IN).is_visible()
    await context.close()


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[Path]:
    """A browser profile with third-party cookies allowed (Chrome's setting "Allow
    third-party cookies", the default of many browsers), as a Space visitor may have."""
    folder = tmp_path / "profile"
    (folder / "Default").mkdir(parents=True)
    preferences = {"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}
    (folder / "Default" / "Preferences").write_text(json.dumps(preferences))
    yield folder


async def test_once_signed_in_the_framed_space_shows_the_app_with_samesite_none_cookies(
    space: Space, profile: Path
) -> None:
    """With third-party cookies allowed, the SameSite=None; Secure session reaches the
    gateway inside the cross-site frame: the framed Space shows the guarded app as alice."""
    async with async_playwright() as playwright:
        context: BrowserContext = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        page = await context.new_page()
        tab = await sign_in_from_the_frame(page, space)
        await tab.close()
        frame = await space_frame(page, space.framer)
        assert frame.url == f"{space.url}/"
        assert await frame.locator("h1").inner_text() == "Hello alice"
        await context.close()


async def test_a_page_on_an_origin_not_allowed_cannot_frame_the_space(
    browser: Browser, space: Space
) -> None:
    """Chromium refuses to render the gateway's page in a frame on another origin (CSP
    frame-ancestors): no sign-in button there to clickjack; the allowed framer's twin shows it."""
    context = await browser.new_context()
    page = await context.new_page()
    frame = await space_frame(page, space.other)
    assert await frame.get_by_role("link", name=SIGN_IN).count() == 0
    assert not frame.url.startswith(space.url)
    allowed = await space_frame(page, space.framer)
    assert await allowed.get_by_role("link", name=SIGN_IN).count() == 1
    await context.close()
