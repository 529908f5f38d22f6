"""`make demo` works for a newcomer: the demo starts, prints its URL, and a real browser
signs in as the demo users and sees what each may do."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page

from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    """One demo process for the module; each test uses its own browser context."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        url = None
        for _ in range(50):
            line = process.stdout.readline()
            found = re.search(r"Open\s+(http://\S+)", line)
            if found:
                url = found.group(1).rstrip("/")
                break
        assert url is not None, "the demo never printed its URL"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        process.stdout.close()


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(url + "/")
    await page.get_by_role("link", name="Sign in with Hugging Face").click()
    await page.get_by_role("button", name=f"Sign in as {username}").click()
    await page.wait_for_url(url + "/")


async def test_the_demo_signs_in_alice_and_shows_her_identity(
    browser: Browser, demo_url: str
) -> None:
    """alice lands on the sample tool, which greets her by the identity headers it got."""
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, demo_url, "alice")
    assert await page.locator("h1").inner_text() == "Hello, alice!"
    assert "X-Forwarded-Groups" in await page.content()
    response = await page.goto(demo_url + "/admin/")
    assert response is not None and response.status == 200
    await page.goto(demo_url + "/")
    await page.get_by_role("button", name="Sign out").click()
    assert "signed out" in (await page.content()).lower()
    await context.close()


async def test_the_demo_refuses_bob_on_the_writers_page(browser: Browser, demo_url: str) -> None:
    """bob has the read role in acme: the tool opens, the writers page says why it does not."""
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, demo_url, "bob")
    response = await page.goto(demo_url + "/writers/")
    assert response is not None and response.status == 403
    assert "role below write" in (await page.content()).lower()
    await context.close()


async def test_the_demo_public_page_needs_no_sign_in(browser: Browser, demo_url: str) -> None:
    """/public/ is served to anonymous visitors without a detour to the sign-in page."""
    context = await browser.new_context()
    page = await context.new_page()
    response = await page.goto(demo_url + "/public/")
    assert response is not None and response.status == 200
    assert await page.locator("h1").inner_text() == "Hello, anonymous!"
    await context.close()
