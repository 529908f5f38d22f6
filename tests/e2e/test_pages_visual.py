"""The gateway's pages in a real Chromium, light and dark: every text passes WCAG AA
contrast, the "Sign in with Hugging Face" button is drawn to HF's badge (yellow with black
text in light, near-black with white text in dark, the logo at its left), and the
screenshots have the size of the viewport and are not blank."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from gateway.devtools.fake_hf import FakeHF
from tests.support.harness import GatewayHarness, running_upstream

SCHEMES = ["light", "dark"]
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}

# Walks every element with its own visible text; composites the backgrounds behind it
# (alpha included) up to the page and returns what a reader sees.
CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [255, 255, 255, 1];
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    const a = top[3] + under[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    return [0, 1, 2].map(i => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a)
      .concat([a]);
  };
  const background = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const bg = parse(getComputedStyle(n).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let colour = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (colour[3] < 1) colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none' || !box.width) continue;
    if (el.closest('details:not([open])') && !el.closest('summary')) continue;
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    found.push({
      text: el.textContent.trim().slice(0, 40),
      ratio: (hi + 0.05) / (lo + 0.05),
      needed: large ? 3 : 4.5,
    });
  }
  return found;
}
"""


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayHarness]:
    fake = FakeHF.demo()
    async with fake.serve(), running_upstream() as upstream:
        overrides = {"branding": {"support_contact": "it-help@acme.test"}}
        harness = GatewayHarness(fake, upstream, overrides=overrides)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def open_page(
    browser: Browser, gateway: GatewayHarness, scheme: str, viewport: str, user: str | None
) -> Page:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": width, "height": height},
    )
    page = await context.new_page()
    if user is not None:
        gateway.fake.settings.auto_login = user
        await page.goto(f"{gateway.url}/_gateway/login?rd=%2F_gateway%2Fwhoami")
        await page.wait_for_url(f"{gateway.url}/_gateway/whoami")
    return page


async def check_page(page: Page, shot: Path, viewport: str) -> bytes:
    failures = [
        f"{t['text']!r}: {t['ratio']:.2f} < {t['needed']}"
        for t in await page.evaluate(CONTRAST_JS)
        if t["ratio"] < t["needed"]
    ]
    assert not failures, failures
    assert len(await page.evaluate(CONTRAST_JS)) >= 3, "the page shows text"
    data = await page.screenshot(full_page=True, path=str(shot))
    width, height = png_size(data)
    assert width == VIEWPORTS[viewport][0]
    assert VIEWPORTS[viewport][1] <= height <= 4000
    assert len(data) > 8000, "a blank page compresses to almost nothing"
    # Nothing sticks out sideways (a phone would scroll horizontally).
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    return data


BADGE = {
    "light": ("rgb(255, 210, 30)", "rgb(0, 0, 0)"),
    "dark": ("rgb(11, 15, 25)", "rgb(255, 255, 255)"),
}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_the_sign_in_page_and_its_hf_button(
    browser: Browser, gateway: GatewayHarness, scheme: str, viewport: str, tmp_path: Path
) -> None:
    page = await open_page(browser, gateway, scheme, viewport, None)
    response = await page.goto(f"{gateway.url}/dash")
    assert response is not None and response.status == 200
    assert "/_gateway/sign_in" in page.url
    button = page.get_by_role("link", name="Sign in with Hugging Face")
    assert await button.is_visible()
    box = await button.bounding_box()
    assert box is not None
    assert box["height"] >= 44, "a touch target at least 44 px high"
    assert box["width"] >= 240
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORTS[viewport][0]
    background, text = BADGE[scheme]
    styles = await button.evaluate(
        "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]"
    )
    assert styles == [background, text]
    logo = button.locator("svg.hf-logo")
    assert await logo.is_visible()
    logo_box = await logo.bounding_box()
    label_box = await button.locator("span").bounding_box()
    assert logo_box is not None and label_box is not None
    assert logo_box["x"] + logo_box["width"] <= label_box["x"], "the logo sits left of the label"
    await check_page(page, tmp_path / f"sign-in-{scheme}-{viewport}.png", viewport)
    await page.context.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_the_403_page_tells_bob_what_to_do(
    browser: Browser, gateway: GatewayHarness, scheme: str, viewport: str, tmp_path: Path
) -> None:
    page = await open_page(browser, gateway, scheme, viewport, "bob")
    response = await page.goto(f"{gateway.url}/admin/")
    assert response is not None and response.status == 403
    assert await page.get_by_role("link", name="it-help@acme.test").is_visible()
    assert await page.get_by_role("button", name="Switch account").is_visible()
    assert await page.get_by_role("link", name="Back to the home page").is_visible()
    # The rule paths are there for admins, closed until asked for.
    assert not await page.get_by_text("allow[0]", exact=False).first.is_visible()
    await page.get_by_text("Details for the site's administrators").click()
    assert await page.get_by_text("allow[0]", exact=False).first.is_visible()
    await check_page(page, tmp_path / f"403-{scheme}-{viewport}.png", viewport)
    # Switch account: signed out, then on the sign-in page for /admin/.
    await page.get_by_role("button", name="Switch account").click()
    await page.wait_for_url(f"{gateway.url}/_gateway/sign_in?rd=%2Fadmin%2F")
    await page.context.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_the_whoami_page(
    browser: Browser, gateway: GatewayHarness, scheme: str, viewport: str, tmp_path: Path
) -> None:
    page = await open_page(browser, gateway, scheme, viewport, "alice")
    assert await page.get_by_role("heading", name="Who am I").is_visible()
    assert await page.get_by_role("list", name="Organizations").get_by_text("acme").is_visible()
    sign_out = page.get_by_role("button", name="Sign out")
    assert await sign_out.is_visible()
    await check_page(page, tmp_path / f"whoami-{scheme}-{viewport}.png", viewport)
    await sign_out.click()
    await page.goto(f"{gateway.url}/_gateway/whoami")
    assert "/_gateway/sign_in" in page.url, "signed out: whoami asks to sign in"
    await page.context.close()


async def test_light_and_dark_are_drawn_differently(
    browser: Browser, gateway: GatewayHarness
) -> None:
    shots = []
    for scheme in SCHEMES:
        page = await open_page(browser, gateway, scheme, "phone", None)
        await page.goto(f"{gateway.url}/_gateway/sign_in")
        shots.append(await page.screenshot())
        await page.context.close()
    assert shots[0] != shots[1]


async def test_the_contrast_check_flags_pale_text(browser: Browser) -> None:
    """The twin of every check above: pale text, and dark text on a half-black layer, fail."""
    page = await browser.new_page()
    await page.set_content(
        '<body style="background:#fff"><p style="color:#ccc">pale</p>'
        '<div style="background:rgba(0,0,0,0.5)"><span style="color:#555">grey</span></div>'
        "<p>plain</p></body>"
    )
    ratios = {t["text"]: t["ratio"] for t in await page.evaluate(CONTRAST_JS)}
    assert ratios["pale"] < 4.5
    assert ratios["grey"] < 4.5
    assert ratios["plain"] == pytest.approx(21)
    await page.close()
