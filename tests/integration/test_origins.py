"""Cross-site requests are judged on whole origins (SECURITY.md §12): another port or scheme
on the gateway's own host is another site, and a route may name the origins that embed it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import StartGateway
from tests.support.harness import API, GatewayHarness, base_raw_config
from tests.support.raw_http import RecordingUpstream, recording_upstream

ECHO = "/api/echo"
EMBEDDER = "http://127.0.0.1:9"
"""A page on another origin that the embedded route trusts."""


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running:
        yield running


def _routes(upstream: str, *, embedded: bool = False) -> dict[str, Any]:
    routes = base_raw_config(0, "", upstream)["routes"]
    if not embedded:
        return {"routes": routes}
    embedding = {
        "name": "embedded",
        "path": "/embedded",
        "upstream": upstream,
        "policy": "authenticated",
        "strip_prefix": True,
        "allowed_origins": [EMBEDDER],
    }
    return {"routes": [embedding, *routes]}


async def post(url: str, cookie: str, **headers: str) -> int:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        sent = {**API, "Cookie": f"hf_gateway={cookie}", **headers}
        async with http.post(url, headers=sent, data=b"x") as response:
            await response.read()
            return response.status


async def alice_cookie(gateway: GatewayHarness) -> str:
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        return gateway.session_cookie(http)


def other_port(gateway: GatewayHarness) -> str:
    return f"http://127.0.0.1:{gateway.port + 1}"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(("Origin", "PORT"), id="another port on our host"),
        pytest.param(("Origin", "https://127.0.0.1:PORTNUM"), id="https on our host and port"),
        pytest.param(("Referer", "PORT/page"), id="referer from another port"),
        pytest.param(("Origin", "http://127.0.0.1.evil.test:PORTNUM"), id="our host as a prefix"),
        pytest.param(("Origin", "http://127.0.0.1:PORTNUM/path"), id="an origin with a path"),
        pytest.param(("Origin", "null"), id="opaque origin"),
    ],
)
async def test_an_unsafe_request_from_another_origin_on_our_host_is_refused(
    start_gateway: StartGateway, recorder: RecordingUpstream, header: tuple[str, str]
) -> None:
    """alice's session on a POST whose Origin (or Referer) differs from the gateway's in
    port, scheme or host gets 403, and nothing reaches the upstream."""
    gateway = await start_gateway(_routes(recorder.url))
    cookie = await alice_cookie(gateway)
    recorder.seen.clear()
    name, value = header
    value = value.replace("PORTNUM", str(gateway.port)).replace("PORT", other_port(gateway))
    assert await post(gateway.url + ECHO, cookie, **{name: value}) == 403
    assert recorder.seen == []


async def test_an_unsafe_request_from_our_own_origin_passes(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """The twin: the gateway's own origin, as Origin or as Referer, is let through."""
    gateway = await start_gateway(_routes(recorder.url))
    cookie = await alice_cookie(gateway)
    recorder.seen.clear()
    assert await post(gateway.url + ECHO, cookie, Origin=gateway.url) == 200
    assert await post(gateway.url + ECHO, cookie, Referer=gateway.url + "/page") == 200
    assert recorder.paths() == [ECHO, ECHO]


async def test_a_route_lets_the_origins_it_names_embed_it(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """allowed_origins: the embedding page's origin may POST to that route only."""
    gateway = await start_gateway(_routes(recorder.url, embedded=True))
    cookie = await alice_cookie(gateway)
    recorder.seen.clear()
    assert await post(f"{gateway.url}/embedded{ECHO}", cookie, Origin=EMBEDDER) == 200
    assert await post(gateway.url + ECHO, cookie, Origin=EMBEDDER) == 403
    assert await post(f"{gateway.url}/embedded{ECHO}", cookie, Origin=other_port(gateway)) == 403
    assert recorder.paths() == [ECHO]


async def test_a_websocket_from_another_port_on_our_host_is_refused(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """Cross-site websocket hijacking from a sibling port gets 403; our own origin gets 101."""
    gateway = await start_gateway(_routes(recorder.url))
    cookie = await alice_cookie(gateway)
    recorder.seen.clear()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        headers = {"Cookie": f"hf_gateway={cookie}", "Origin": other_port(gateway)}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{gateway.url}/api/ws", headers=headers)
        assert refused.value.status == 403
        assert recorder.seen == []
        headers["Origin"] = gateway.url
        async with http.ws_connect(f"{gateway.url}/api/ws", headers=headers) as ws:
            assert (await ws.receive_str(timeout=5)).startswith("hello ")
