"""A strip_prefix route asked for without its slash (``/writers``) is redirected to
``/writers/``, as nginx does, so tools with relative links (Gradio, Streamlit, TensorBoard)
do not load a blank page; the query comes along untouched (issue 7 item 12)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import raw_request

JSON = list(API.items())


@pytest.mark.parametrize(
    ("method", "target", "status", "location"),
    [
        pytest.param("GET", "/writers", 301, "/writers/", id="get"),
        pytest.param("HEAD", "/writers", 301, "/writers/", id="head"),
        pytest.param(
            "GET", "/writers?a=%20b&c=%0d%0a&d", 301, "/writers/?a=%20b&c=%0d%0a&d", id="raw query"
        ),
        pytest.param("POST", "/writers", 308, "/writers/", id="post keeps its method"),
        pytest.param("GET", "/writers;v=1", 301, "/writers;v=1/", id="path parameter"),
    ],
)
async def test_a_strip_prefix_route_without_its_slash_is_redirected(
    gateway: GatewayHarness, method: str, target: str, status: int, location: str
) -> None:
    response = await raw_request(gateway.port, target, JSON, method=method)
    assert response.status == status
    assert response.header("Location") == location


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/writers/", 401, id="the slashed path itself"),
        pytest.param("/writers/x", 401, id="below the prefix"),
        pytest.param("/writersx", 401, id="not the route (falls to the site route)"),
        pytest.param("/admin", 401, id="a route without strip_prefix"),
    ],
)
async def test_other_paths_are_not_redirected(
    gateway: GatewayHarness, target: str, status: int
) -> None:
    """The twins: only the bare prefix of a strip_prefix route moves."""
    response = await raw_request(gateway.port, target, JSON)
    assert response.status == status
    assert response.header("Location") is None


async def test_sign_in_returns_to_the_slashed_url(start_gateway: StartGateway) -> None:
    """A browser at /writers?tab=2 is sent to /writers/?tab=2 first, and its sign-in comes
    back there."""
    gateway = await start_gateway()
    async with gateway.browser() as http:
        async with http.get(
            f"{gateway.url}/writers?tab=2", headers=BROWSER, allow_redirects=False
        ) as first:
            assert first.status == 301
            assert first.headers["Location"] == "/writers/?tab=2"
        async with http.get(
            f"{gateway.url}/writers/?tab=2", headers=BROWSER, allow_redirects=False
        ) as second:
            assert second.status == 302
            rd = parse_qs(urlsplit(second.headers["Location"]).query)["rd"][0]
            assert rd == "/writers/?tab=2"
        await gateway.sign_in(http, "alice", rd=rd)
        async with http.get(f"{gateway.url}/writers?tab=2", headers=API) as final:
            assert final.status == 200
            assert str(final.url) == f"{gateway.url}/writers/?tab=2"
