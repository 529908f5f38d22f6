"""Inside the huggingface.co iframe, the links that lead to Hugging Face's authorize page
(which refuses to be framed) open at the top level; the pages stay script-free."""

from __future__ import annotations

import re

import pytest

from gateway.web import pages
from gateway.web.framing import page_headers

STATIC = "/_gateway/static"


def _targets(page: str) -> dict[str, str | None]:
    """Each link's visible label -> its target attribute (None without one)."""
    found: dict[str, str | None] = {}
    for attrs, inner in re.findall(r"<a ([^>]*)>(.*?)</a>", page, flags=re.DOTALL):
        label = re.sub(r"<[^>]+>", "", inner).strip()
        target = re.search(r'target="([^"]+)"', attrs)
        found[label] = target.group(1) if target else None
    return found


@pytest.mark.parametrize(("new_tab", "target"), [(False, "_top"), (True, "_blank")])
def test_the_sign_in_button_and_the_consent_button_leave_the_frame(
    new_tab: bool, target: str
) -> None:
    """At the top (same tab) when the page cannot be framed; in a new tab when it may be,
    since a Space's iframe sandbox forbids top navigation but lets popups escape it."""
    sign_in = pages.render_sign_in(
        login_url="/_gateway/login?rd=%2F", static_prefix=STATIC, new_tab=new_tab
    )
    assert _targets(sign_in)[pages.SIGN_IN_LABEL] == target
    error = pages.render_error(
        status=403,
        title="More access needed",
        message="m",
        static_prefix=STATIC,
        sign_in_url="/_gateway/sign_in?rd=%2F",
        consent_url="/_gateway/login?rd=%2F&scope=read-repos",
        new_tab=new_tab,
    )
    targets = _targets(error)
    assert targets["Grant access on Hugging Face"] == target
    # The sign-in page itself may be framed: that link stays in the frame.
    assert targets["Sign in again"] is None
    assert ('rel="noopener"' in sign_in + error) is new_tab
    assert "<script" not in sign_in + error


def test_framing_is_named_by_origin_and_otherwise_denied() -> None:
    denied = page_headers()
    assert denied["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none';" in denied["Content-Security-Policy"]
    framed = page_headers(("https://huggingface.co", "http://localhost:8000"))
    assert "X-Frame-Options" not in framed
    policy = framed["Content-Security-Policy"]
    assert "frame-ancestors https://huggingface.co http://localhost:8000;" in policy
    assert (
        policy.replace("https://huggingface.co http://localhost:8000", "'none'")
        == (denied["Content-Security-Policy"])
    )
    assert pages.CONTENT_SECURITY_POLICY == denied["Content-Security-Policy"]
