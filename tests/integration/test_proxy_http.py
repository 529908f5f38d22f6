"""Proxying over real HTTP: streamed bodies both ways, SSE, websockets, timeouts, paths,
query strings, methods, status codes and request smuggling (SECURITY.md §10)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway.devtools.echo_upstream import gzip_body
from tests.integration.conftest import StartGateway
from tests.support.harness import API, GatewayHarness, base_raw_config
from tests.support.raw_http import RecordingUpstream, recording_upstream
from tests.support.redis_server import free_port

MB = 1024 * 1024


Recorder = RecordingUpstream


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A second echo upstream that records what reaches it, to prove what never did."""
    async with recording_upstream() as running:
        yield running


def routes_with(upstream: str, /, *extra: dict[str, Any], **tool: Any) -> dict[str, Any]:
    """Overrides putting ``extra`` routes next to the harness's own; ``tool`` changes the
    catch-all ``tool`` route (e.g. its upstream or preserve_host)."""
    routes = base_raw_config(0, "http://unused", upstream)["routes"]
    routes[0].update(tool)
    return {"routes": [*extra, *routes]}


def route(name: str, upstream: str, **options: Any) -> dict[str, Any]:
    """A route at ``/NAME`` (prefix stripped) for signed-in users."""
    return {
        "name": name,
        "path": f"/{name}",
        "upstream": upstream,
        "policy": "authenticated",
        "strip_prefix": True,
        **options,
    }


@contextlib.asynccontextmanager
async def alice(harness: GatewayHarness, **session: Any) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser session signed in as alice."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **session) as http:
        await harness.sign_in(http, "alice")
        yield http


async def echo(http: aiohttp.ClientSession, method: str, url: str | URL, **kwargs: Any) -> Any:
    """The echo upstream's JSON report of the request, asserting a 200."""
    headers = {**API, **kwargs.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kwargs) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def header(echoed: Any, name: str) -> list[str]:
    """Every value the upstream received for header ``name``."""
    return [v for k, v in echoed["headers"] if k.lower() == name.lower()]


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Write ``request`` verbatim on a new connection; read until the gateway closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# --- request and response bodies -------------------------------------------------------


async def test_chunked_upload_is_streamed_to_the_upstream(gateway: GatewayHarness) -> None:
    """A 20 MB chunked body from an async generator reaches the upstream complete."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"u" * MB

    async with alice(gateway) as http:
        echoed = await echo(http, "POST", f"{gateway.url}/api/echo", data=body())
    assert echoed["body_size"] == 20 * MB
    assert header(echoed, "Transfer-Encoding") == ["chunked"]
    assert header(echoed, "Content-Length") == []


@pytest.mark.parametrize("expect100", [False, True], ids=["plain", "expect-100-continue"])
async def test_content_length_upload_reaches_the_upstream(
    gateway: GatewayHarness, expect100: bool
) -> None:
    """A body with a Content-Length arrives with the same length, Expect: 100-continue too."""
    async with alice(gateway) as http:
        size = 3 * MB + 7
        data = io.BytesIO(b"c" * size)
        echoed = await echo(http, "PUT", f"{gateway.url}/api/echo", data=data, expect100=expect100)
    assert echoed["body_size"] == size
    assert header(echoed, "Content-Length") == [str(size)]


async def test_large_response_is_streamed_back_complete(gateway: GatewayHarness) -> None:
    """A 20 MB upstream body arrives byte-complete with its Content-Length."""
    size = 20 * MB
    async with alice(gateway) as http:
        async with http.get(f"{gateway.url}/api/stream", params={"size": str(size)}) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(size)
            received = 0
            async for chunk in r.content.iter_any():
                assert chunk.strip(b"x") == b""
                received += len(chunk)
    assert received == size


async def test_server_sent_events_arrive_in_order_and_incrementally(
    gateway: GatewayHarness,
) -> None:
    """Each SSE event is relayed when the upstream writes it, not when the stream ends."""
    loop = asyncio.get_running_loop()
    events: list[tuple[float, str]] = []
    async with alice(gateway) as http:
        url = f"{gateway.url}/api/sse?count=3&interval=0.5"
        async with http.get(url, headers={"Accept": "text/event-stream"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            buffer = b""
            async for chunk in r.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    events.append((loop.time(), event.decode()))
    assert [e for _, e in events] == [f"id: {i}\ndata: event {i}" for i in range(3)]
    # The upstream writes them 0.5 s apart; a buffering proxy would deliver them together.
    assert events[-1][0] - events[0][0] >= 0.5


@pytest.mark.parametrize("size", [pytest.param(0, id="empty"), pytest.param(300_000, id="300KB")])
async def test_gzip_bodies_pass_through_untouched(gateway: GatewayHarness, size: int) -> None:
    """A gzip-encoded upstream body keeps its Content-Encoding and its exact bytes."""
    expected = gzip_body(size)
    async with alice(gateway, auto_decompress=False) as http:
        headers = {"Accept-Encoding": "gzip"}
        async with http.get(f"{gateway.url}/api/gzip?size={size}", headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Length"] == str(len(expected))
            assert await r.read() == expected


# --- websockets ------------------------------------------------------------------------


async def test_websocket_is_relayed_with_identity_and_subprotocol(
    gateway: GatewayHarness,
) -> None:
    """The upstream greets alice by name (not the forged user), echoes text and binary,
    and the "echo" subprotocol is negotiated end to end."""
    forged = {"X-Forwarded-User": "evil", "X_Forwarded_User": "evil"}
    async with alice(gateway) as http:
        url = f"{gateway.url}/api/ws"
        async with http.ws_connect(url, protocols=("echo",), headers=forged) as ws:
            assert ws.protocol == "echo"
            assert await ws.receive_str(timeout=5) == "hello alice"
            await ws.send_str("ping é")
            assert await ws.receive_str(timeout=5) == "ping é"
            await ws.send_bytes(b"\x00\x01binary\xff")
            assert await ws.receive_bytes(timeout=5) == b"\x00\x01binary\xff"


async def test_upstream_refusing_the_websocket_is_a_502(gateway: GatewayHarness) -> None:
    """An upstream answering the upgrade without 101 gives the client a 502, not a tunnel."""
    async with alice(gateway) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{gateway.url}/api/echo"):
                pass
        assert refused.value.status == 502
        await echo(http, "GET", f"{gateway.url}/api/echo")


async def test_anonymous_websocket_is_refused_before_the_upstream(
    start_gateway: StartGateway, recorder: Recorder
) -> None:
    """An anonymous upgrade gets 401 and the upstream never hears of it; alice gets through."""
    harness = await start_gateway(routes_with(recorder.url, upstream=recorder.url))
    async with harness.browser() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{harness.url}/api/ws"):
                pass
    assert refused.value.status == 401
    assert recorder.seen == []
    async with alice(harness) as http:
        recorder.seen.clear()  # the sign-in itself ends on the upstream's front page
        async with http.ws_connect(f"{harness.url}/api/ws") as ws:
            assert await ws.receive_str(timeout=5) == "hello alice"
    assert recorder.requests() == ["GET /api/ws"]


async def test_refused_upgrade_does_not_leave_a_tunnel(
    start_gateway: StartGateway, recorder: Recorder
) -> None:
    """Bytes pipelined after a refused upgrade are never relayed upstream (oauth2-proxy #1347)."""
    harness = await start_gateway(routes_with(recorder.url, upstream=recorder.url))
    host = f"127.0.0.1:{harness.port}"
    upgrade = (
        f"GET /api/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    follow_up = f"GET /api/echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = await raw_exchange(harness.port, (upgrade + follow_up).encode())
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"HTTP/1.1 101" not in answer and b"HTTP/1.1 200" not in answer
    assert recorder.seen == []


async def test_route_without_websockets_refuses_the_upgrade(
    start_gateway: StartGateway, recorder: Recorder
) -> None:
    """On a route with websockets: false even alice's upgrade is refused; HTTP still works."""
    harness = await start_gateway(
        routes_with(recorder.url, route("nows", recorder.url, websockets=False))
    )
    async with alice(harness) as http:
        recorder.seen.clear()  # the sign-in itself ends on the upstream's front page
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{harness.url}/nows/api/ws"):
                pass
        assert refused.value.status == 403
        assert recorder.seen == []
        await echo(http, "GET", f"{harness.url}/nows/api/echo")
    assert recorder.requests() == ["GET /api/echo"]


# --- upstream failures -----------------------------------------------------------------


async def test_unreachable_upstream_is_a_502(start_gateway: StartGateway, upstream: str) -> None:
    """Nothing listening at the upstream address gives 502, not a hang or a 500."""
    harness = await start_gateway(
        routes_with(upstream, route("down", f"http://127.0.0.1:{free_port()}"))
    )
    async with alice(harness) as http:
        async with http.get(f"{harness.url}/down/api/echo", headers=API) as r:
            assert r.status == 502
            assert (await r.json())["error"] == "upstream_error"
        await echo(http, "GET", f"{harness.url}/api/echo")


async def test_upstream_slower_than_read_timeout_is_a_504(
    start_gateway: StartGateway, upstream: str
) -> None:
    """An upstream silent for longer than the route's read_timeout gives 504 in time."""
    harness = await start_gateway(routes_with(upstream, route("slow", upstream, read_timeout=1)))
    async with alice(harness) as http:
        started = time.monotonic()
        async with http.get(f"{harness.url}/slow/api/slow?delay=3", headers=API) as r:
            assert r.status == 504
            assert (await r.json())["error"] == "upstream_error"
        assert time.monotonic() - started < 2.5
        async with http.get(f"{harness.url}/slow/api/slow?delay=0.2") as r:
            assert r.status == 200
            assert await r.text() == "finally"


# --- paths, hosts and query strings ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "upstream_target"),
    [
        pytest.param("/writers/api/target", "/api/target", id="prefix-stripped"),
        pytest.param("/writers/api/target?a=1", "/api/target?a=1", id="with-query"),
        pytest.param("/writers//api/./target", "/api/target", id="normalised-first"),
        pytest.param("/api/target", "/api/target", id="not-stripped-elsewhere"),
    ],
)
async def test_strip_prefix_removes_the_route_path(
    gateway: GatewayHarness, path: str, upstream_target: str
) -> None:
    """The writers route strips /writers before forwarding; other routes forward as is."""
    async with alice(gateway) as http:
        echoed = await echo(http, "GET", URL(f"{gateway.url}{path}", encoded=True))
    assert echoed["target"] == upstream_target


@pytest.mark.parametrize("preserve_host", [True, False], ids=["preserve-host", "upstream-host"])
async def test_preserve_host_chooses_the_upstream_host_header(
    start_gateway: StartGateway, upstream: str, preserve_host: bool
) -> None:
    """preserve_host forwards the client's Host; otherwise the upstream's own is sent."""
    harness = await start_gateway(routes_with(upstream, preserve_host=preserve_host))
    async with alice(harness) as http:
        echoed = await echo(
            http, "GET", f"{harness.url}/api/echo", headers={"Host": "tools.example.test"}
        )
    expected = "tools.example.test" if preserve_host else URL(upstream).raw_authority
    assert header(echoed, "Host") == [expected]
    assert header(echoed, "X-Forwarded-Host") == ["tools.example.test"]
    assert header(echoed, "X-Forwarded-User") == ["alice"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("a=1&a=2&a=3", id="repeated-keys"),
        pytest.param("q=%2F%3F%23%26%3D%25", id="encoded-reserved"),
        pytest.param("q=caf%C3%A9&q=%e2%9c%93", id="utf8-mixed-hex-case"),
        pytest.param("x=a+b&y=a%20b&z=%2B", id="plus-and-space"),
        pytest.param("q=%7E%41%2e~", id="encoded-unreserved-kept"),
        pytest.param("flag&empty=&=novalue&&", id="odd-pairs"),
        pytest.param("rd=/public/../admin&x=%2F..%2F", id="path-like-values"),
        pytest.param("q=a;b,c:d@e!$'()*", id="sub-delims"),
    ],
)
async def test_query_strings_are_forwarded_byte_for_byte(
    gateway: GatewayHarness, query: str
) -> None:
    """The query string reaches the upstream exactly as the client sent it."""
    async with alice(gateway) as http:
        url = URL(f"{gateway.url}/api/target?{query}", encoded=True)
        echoed = await echo(http, "GET", url)
    assert echoed["target"] == f"/api/target?{query}"


# --- methods and status codes ----------------------------------------------------------


async def test_head_gets_headers_only_and_the_connection_stays_usable(
    gateway: GatewayHarness,
) -> None:
    """HEAD returns the GET's headers without a body, and the next request on the same
    client connection gets its full answer."""
    async with alice(gateway, connector=aiohttp.TCPConnector(limit=1)) as http:
        async with http.get(f"{gateway.url}/api/status/200") as r:
            assert await r.text() == "status 200"
            length = r.headers["Content-Length"]
        async with http.head(f"{gateway.url}/api/status/200") as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == length
            assert r.headers["X-Echo-Status"] == "200"
            assert await r.read() == b""
        async with http.get(f"{gateway.url}/api/status/200") as r:
            assert await r.text() == "status 200"


async def test_bytes_after_a_head_answer_never_answer_another_request(
    start_gateway: StartGateway, upstream: str
) -> None:
    """An upstream that writes a body after its HEAD answer (aiohttp's StreamResponse does)
    cannot have those bytes read as the answer to the next request on that connection."""
    poison = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npoisoned!"

    handlers: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
                if head.startswith(b"HEAD "):
                    await writer.drain()
                    await asyncio.sleep(0.3)  # the stray "body" comes a little later
                    writer.write(poison)
                else:
                    writer.write(b"real body")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        harness = await start_gateway(
            routes_with(upstream, route("raw", f"http://127.0.0.1:{port}"))
        )
        async with alice(harness) as http:
            async with http.head(f"{harness.url}/raw/file") as r:
                assert r.status == 200
                assert await r.read() == b""
            async with http.get(f"{harness.url}/raw/file") as r:
                assert await r.read() == b"real body"
    finally:
        server.close()
        await server.wait_closed()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param("PUT", b"p" * 1000, id="PUT"),
        pytest.param("PATCH", b"{}", id="PATCH"),
        pytest.param("DELETE", b"", id="DELETE"),
        pytest.param("OPTIONS", b"", id="OPTIONS"),
        pytest.param("POST", b"form=1", id="POST"),
    ],
)
async def test_methods_are_forwarded(gateway: GatewayHarness, method: str, body: bytes) -> None:
    """Each method reaches the upstream unchanged, with its body."""
    async with alice(gateway) as http:
        echoed = await echo(http, method, f"{gateway.url}/api/echo", data=body)
    assert echoed["method"] == method
    assert echoed["body_size"] == len(body)
    assert header(echoed, "X-Forwarded-User") == ["alice"]


@pytest.mark.parametrize("status", [204, 304], ids=["204", "304"])
async def test_bodiless_statuses_pass_through(gateway: GatewayHarness, status: int) -> None:
    """204 and 304 reach the client with their headers and no body, and the connection
    serves the next request correctly."""
    async with alice(gateway, connector=aiohttp.TCPConnector(limit=1)) as http:
        headers = {"If-None-Match": '"v1"'}
        async with http.get(f"{gateway.url}/api/status/{status}", headers=headers) as r:
            assert r.status == status
            assert r.headers["ETag"] == '"v1"'
            assert r.headers["X-Echo-Status"] == str(status)
            assert await r.read() == b""
        echoed = await echo(http, "GET", f"{gateway.url}/api/echo")
    assert header(echoed, "X-Forwarded-User") == ["alice"]


@pytest.mark.parametrize("status", [201, 404, 418, 500, 503])
async def test_upstream_statuses_pass_through(gateway: GatewayHarness, status: int) -> None:
    """An upstream's own status and body reach the client unchanged."""
    async with alice(gateway) as http:
        async with http.get(f"{gateway.url}/api/status/{status}") as r:
            assert r.status == status
            assert await r.text() == f"status {status}"


# --- request smuggling -----------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", id="CL-then-TE"),
        pytest.param("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", id="TE-then-CL"),
        pytest.param("Content-Length: 5\r\nContent-Length: 6\r\n", id="two-lengths"),
        pytest.param("Content-Length: 5, 6\r\n", id="length-list"),
        pytest.param("Transfer-Encoding: chunked, identity\r\n", id="TE-not-chunked-last"),
    ],
)
async def test_ambiguous_body_framing_is_rejected(
    start_gateway: StartGateway, recorder: Recorder, framing: str
) -> None:
    """Conflicting Content-Length / Transfer-Encoding gets 400 and reaches no upstream,
    while the same request with a plain Content-Length is forwarded."""
    harness = await start_gateway(routes_with(recorder.url, upstream=recorder.url))
    async with alice(harness) as http:
        cookie = harness.session_cookie(http)

    def request(framing: str, body: str) -> bytes:
        return (
            f"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
            f"Cookie: hf_gateway={cookie}\r\nAccept: application/json\r\n{framing}"
            f"Connection: close\r\n\r\n{body}"
        ).encode()

    recorder.seen.clear()  # the sign-in itself ends on the upstream's front page
    smuggled = "0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n"
    answer = await raw_exchange(harness.port, request(framing, smuggled))
    assert re.match(rb"HTTP/1\.[01] 400 ", answer)
    assert recorder.seen == []
    answer = await raw_exchange(harness.port, request("Content-Length: 5\r\n", "hello"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b'"body_size": 5' in answer
    assert recorder.requests() == ["POST /api/echo"]
