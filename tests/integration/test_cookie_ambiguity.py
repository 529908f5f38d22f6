"""Two different session cookies on one request are ambiguous (a cookie tossed in by a
sibling site, or a stale one on another path): the gateway uses neither and treats the
request as signed out; the same value twice is no ambiguity (issue 7 item 6)."""

from __future__ import annotations

import pytest

from tests.support.harness import API, GatewayHarness
from tests.support.raw_http import raw_request

JSON = list(API.items())


async def cookie_of(gateway: GatewayHarness, user: str) -> str:
    async with gateway.browser() as http:
        await gateway.sign_in(http, user)
        return gateway.session_cookie(http)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param("one header, planted first", id="one-header-planted-first"),
        pytest.param("one header, planted last", id="one-header-planted-last"),
        pytest.param("two headers", id="two-header-lines"),
    ],
)
async def test_two_different_session_cookies_are_never_used(
    gateway: GatewayHarness, shape: str
) -> None:
    """alice's cookie next to bob's (a tossed session) gets 401 in any order or layout."""
    alice, bob = await cookie_of(gateway, "alice"), await cookie_of(gateway, "bob")
    if shape == "one header, planted first":
        headers = [("Cookie", f"hf_gateway={bob}; hf_gateway={alice}")]
    elif shape == "one header, planted last":
        headers = [("Cookie", f"hf_gateway={alice}; other=1; hf_gateway={bob}")]
    else:
        headers = [("Cookie", f"hf_gateway={alice}"), ("Cookie", f"hf_gateway={bob}")]
    response = await raw_request(gateway.port, "/api/echo", [*JSON, *headers])
    assert response.status == 401
    assert response.json()["error"] == "unauthenticated"


async def test_one_session_cookie_or_the_same_one_twice_is_used(gateway: GatewayHarness) -> None:
    """The twins: alice's cookie alone, or repeated, or beside other cookies, is alice."""
    alice = await cookie_of(gateway, "alice")
    for cookie in (
        f"hf_gateway={alice}",
        f"hf_gateway={alice}; hf_gateway={alice}",
        f"theme=dark; hf_gateway={alice}; xhf_gateway=other",
    ):
        response = await raw_request(gateway.port, "/api/echo", [*JSON, ("Cookie", cookie)])
        assert response.status == 200, cookie
        user = [v for k, v in response.json()["headers"] if k == "X-Forwarded-User"]
        assert user == ["alice"]
