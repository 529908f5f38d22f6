"""Answers relayed as bytes (gateway/web/relayed_answer.py): what the client reads is the
upstream's head, filtered, plus only the framing and connection lines the gateway owns.

Each case writes a raw upstream answer and reads the gateway's answer off a raw client
socket, so nothing (no aiohttp client) normalises the bytes in between.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import StartGateway
from tests.integration.test_proxy_http import raw_exchange, route, routes_with
from tests.support.misbehaving import Connection, Serve, raw_upstream

Head = dict[bytes, list[bytes]]


def public_route(upstream: str) -> dict[str, object]:
    return route("raw", upstream, policy="public", read_timeout=3)


def serving(answer: bytes) -> Serve:
    """An upstream that answers every request on a connection with ``answer``."""

    async def serve(conn: Connection) -> None:
        while await conn.next_request() is not None:
            await conn.send(answer)

    return serve


def parse(raw: bytes) -> tuple[bytes, Head, bytes]:
    """Status line, headers (lower-case names, every line), body of one answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers: Head = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


async def relay(start_gateway: StartGateway, upstream: str, answer: bytes, request: bytes) -> bytes:
    async with raw_upstream(serving(answer)) as raw:
        harness = await start_gateway(routes_with(upstream, public_route(raw.url)))
        host = f"127.0.0.1:{harness.port}".encode()
        return await raw_exchange(harness.port, request.replace(b"HOST", host))


GET_CLOSE = b"GET /raw/x HTTP/1.1\r\nHost: HOST\r\nConnection: close\r\n\r\n"


async def test_header_values_pass_byte_for_byte(start_gateway: StartGateway, upstream: str) -> None:
    """A latin-1 value reaches the client as the upstream wrote it (not re-encoded as
    UTF-8), names keep their case, duplicated lines stay separate lines."""
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    )
    status, headers, body = parse(await relay(start_gateway, upstream, answer, GET_CLOSE))
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"x-latin"] == [b"caf\xe9"]
    assert headers[b"x-twice"] == [b"1", b"2"]
    assert headers[b"content-length"] == [b"2"]
    assert body == b"ok"


@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param(b"X-Folded: one\r\n two\r\n", id="obs-fold continuation"),
        pytest.param(b"X-Bare: one\rX-Injected: two\r\n", id="bare CR inside a value"),
        pytest.param(b"X-Nul: one\x00two\r\n", id="NUL inside a value"),
        pytest.param(b"X Space: one\r\n", id="space inside a name"),
    ],
)
async def test_a_head_llhttp_refuses_is_a_502_never_a_relayed_line(
    start_gateway: StartGateway, upstream: str, bad_line: bytes
) -> None:
    """Header lines that could split or smuggle a line on the client side are refused by
    the strict parser; the client gets a 502 and none of the upstream's bytes."""
    answer = b"HTTP/1.1 200 OK\r\n" + bad_line + b"Content-Length: 2\r\n\r\nok"
    status, headers, _ = parse(await relay(start_gateway, upstream, answer, GET_CLOSE))
    assert status.startswith(b"HTTP/1.1 502")
    assert b"x-injected" not in headers and b"x-folded" not in headers


async def test_the_twin_well_formed_head_is_relayed(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The positive twin of the case above: the same header, well formed, passes."""
    answer = b"HTTP/1.1 200 OK\r\nX-Folded: one two\r\nContent-Length: 2\r\n\r\nok"
    status, headers, _ = parse(await relay(start_gateway, upstream, answer, GET_CLOSE))
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"x-folded"] == [b"one two"]


async def test_date_is_added_only_when_missing_and_no_server_is_invented(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The upstream's Date and Server pass once; without them the gateway adds a Date
    (RFC 9110 §6.6.1) and no Server line naming its own software."""
    dated = (
        b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: tool/1\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    _, headers, _ = parse(await relay(start_gateway, upstream, dated, GET_CLOSE))
    assert headers[b"date"] == [b"Mon, 01 Jan 2024 00:00:00 GMT"]
    assert headers[b"server"] == [b"tool/1"]
    bare = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    _, headers, _ = parse(await relay(start_gateway, upstream, bare, GET_CLOSE))
    assert len(headers[b"date"]) == 1 and headers[b"date"][0].endswith(b" GMT")
    assert b"server" not in headers


async def test_a_missing_reason_phrase_and_content_type_are_filled_in(
    start_gateway: StartGateway, upstream: str
) -> None:
    """An empty reason gets the standard phrase; a body without a type is labelled
    application/octet-stream (never left to the browser's sniffing)."""
    answer = b"HTTP/1.1 404 \r\nContent-Length: 4\r\n\r\nnope"
    status, headers, body = parse(await relay(start_gateway, upstream, answer, GET_CLOSE))
    assert status == b"HTTP/1.1 404 Not Found"
    assert headers[b"content-type"] == [b"application/octet-stream"]
    assert body == b"nope"


async def test_a_streamed_body_to_an_http10_client_ends_with_the_connection(
    start_gateway: StartGateway, upstream: str
) -> None:
    """HTTP/1.0 has no chunked encoding: a body of unknown length is sent as is and the
    connection closes after it (the client reads to the close)."""

    async def serve(conn: Connection) -> None:
        await conn.next_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0.1)  # the rest later: the gateway must stream, not buffer
        await conn.send(b"6\r\n world\r\n0\r\n\r\n")

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, public_route(raw.url)))
        got = await raw_exchange(harness.port, b"GET /raw/x HTTP/1.0\r\nHost: h\r\n\r\n")
    status, headers, body = parse(got)
    assert status == b"HTTP/1.0 200 OK"
    assert b"transfer-encoding" not in headers and b"content-length" not in headers
    assert body == b"hello world"


async def test_a_streamed_body_to_an_http11_client_is_rechunked(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The twin: HTTP/1.1 gets the same body chunked, and the connection stays usable."""

    async def serve(conn: Connection) -> None:
        while await conn.next_request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await asyncio.sleep(0.1)
            await conn.send(b"0\r\n\r\n")

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, public_route(raw.url)))
        request = b"GET /raw/x HTTP/1.1\r\nHost: h\r\n\r\n"
        got = await raw_exchange(
            harness.port, request + request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        )
    first, _, second = got.partition(b"0\r\n\r\n")
    status, headers, body = parse(first)
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"transfer-encoding"] == [b"chunked"]
    assert body == b"5\r\nhello\r\n"
    assert second.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in second.lower()


async def test_a_head_answer_keeps_the_upstreams_length_and_sends_no_body(
    start_gateway: StartGateway, upstream: str
) -> None:
    """HEAD: Content-Length describes the resource and passes; no body bytes follow, so a
    GET on the same connection reads its own answer."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            if request.method == "HEAD":
                await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n")
            else:
                await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, public_route(raw.url)))
        got = await raw_exchange(
            harness.port,
            b"HEAD /raw/x HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET /raw/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
    head_answer, _, rest = got.partition(b"\r\n\r\n")
    assert b"Content-Length: 123" in head_answer
    status, headers, body = parse(rest)
    assert status == b"HTTP/1.1 200 OK"
    assert headers[b"content-length"] == [b"3"]
    assert body == b"get"
