"""Forwarding to upstreams: HTTP with streamed bodies both ways (SSE included), and
websockets. ``UpstreamClient`` is the one seam between the pipeline and the upstream hop.

HTTP goes over the gateway's own client (upstream_pool + upstream_connection: asyncio
protocols with llhttp), which owns the attribution guarantees. The gateway writes the
framing itself: the client's Content-Length / Transfer-Encoding are never copied; a
body is sent with the length aiohttp's strict parser read, or re-chunked. An answer whose
body breaks off cuts the client's connection instead of ending a short 200.

Websockets are tunnels of their own (aiohttp's websocket client on a connector without a
pool limit), never drawn from the HTTP pools, and each is registered with the tunnel
registry so it ends with its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from gateway.config import RouteConfig
from gateway.headers import Pair, RawPair, filter_response_headers
from gateway.logs import REQUEST_ID_HEADER, current_request_id, log_fault
from gateway.metrics import observe_upstream
from gateway.web.relayed_answer import RelayedAnswer
from gateway.web.tunnels import Tunnel
from gateway.web.upstream_connection import (
    ResponseHead,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamFailure,
)
from gateway.web.upstream_pool import RoutePool, UpstreamAddress, UpstreamPools

log = logging.getLogger(__name__)

_WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
_RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Idempotent methods (RFC 9110 §9.2.2): sent again once if a reused connection was stale."""


class UpstreamError(Exception):
    """The upstream hop failed before an answer began: 502, 503 or 504 for the client."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class UpstreamClient:
    """The HTTP pools of every route, and the websocket client beside them."""

    def __init__(self, routes: Sequence[RouteConfig]) -> None:
        self.pools = UpstreamPools(list(routes))
        self._ws_sessions: dict[str | None, aiohttp.ClientSession] = {}

    def pool(self, route: RouteConfig) -> RoutePool:
        return self.pools.pool(route)

    def websocket_session(self, address: UpstreamAddress) -> aiohttp.ClientSession:
        session = self._ws_sessions.get(address.unix_path)
        if session is None:
            connector: aiohttp.BaseConnector
            if address.unix_path is not None:
                connector = aiohttp.UnixConnector(path=address.unix_path, limit=0)
            else:
                connector = aiohttp.TCPConnector(limit=0, force_close=True)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the browser
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._ws_sessions[address.unix_path] = session
        return session

    async def close(self) -> None:
        await self.pools.close()
        for session in self._ws_sessions.values():
            await session.close()


# --------------------------------------------------------------------------- HTTP


def request_head(
    method: str, target: str, host: str, headers: Sequence[Pair], framing: str
) -> bytes:
    """The upstream request head, with the gateway's own framing line.

    Every value here came through aiohttp's strict parser or the gateway's own encoders,
    none can hold CR or LF; the line count is checked anyway, so a header can never
    become two (fail closed: the request is refused rather than sent).
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if framing:
        lines.append(framing)
    lines.append("\r\n")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) or head.count("\r") != len(lines):
        raise UpstreamError(400, "a header value held a line break")
    return head.encode("utf-8", "surrogateescape")


def _framing(request: web.Request) -> tuple[str, bool]:
    """The framing line for the request body and whether it is re-chunked."""
    if request.content_length is not None:
        return f"Content-Length: {request.content_length}", False
    if request.body_exists:
        return "Transfer-Encoding: chunked", True
    return "", False


async def forward_http(
    request: web.Request,
    client: UpstreamClient,
    route: RouteConfig,
    path: str,
    query: str,
    headers: Sequence[Pair],
    drop_cookies: frozenset[str],
    host: str | None = None,
) -> web.StreamResponse:
    """Send the request upstream and relay the answer; UpstreamError if none began.

    ``host`` is the Host header to send (the client's when the route preserves it);
    None sends the upstream's own authority. ``headers`` are the client's, already
    stripped of what the gateway owns, plus the gateway's; the route's set_headers and
    remove_headers apply last, so a client's copy of a set header never survives.
    """
    pool = client.pool(route)
    address = pool.address
    target = address.base_path + path + ("?" + query if query else "")
    if route.header_edits is not None:
        headers = route.header_edits.apply(headers)
    framing, chunked = _framing(request)
    head = request_head(request.method, target, host or address.authority, headers, framing)
    has_body = request.body_exists
    retryable = not has_body and request.method in _RETRYABLE
    loop = asyncio.get_running_loop()
    while True:
        connection = await _acquire(pool)
        started = loop.time()
        try:
            answer = await _exchange(request, connection, head, has_body, chunked)
            observe_upstream(route.name, loop.time() - started)
        except UpstreamClosed as exc:
            pool.release(connection, reusable=False)
            if retryable and connection.reused and exc.nothing_received:
                retryable = False  # a stale keep-alive connection: once on a fresh one
                continue
            raise UpstreamError(exc.status, str(exc)) from exc
        except UpstreamFailure as exc:
            pool.release(connection, reusable=False)
            raise UpstreamError(exc.status, str(exc)) from exc
        except BaseException:
            pool.release(connection, reusable=False)
            raise
        break
    try:
        return await _relay(request, connection, answer, _raw_names(drop_cookies))
    finally:
        pool.release(connection, connection.reusable())


async def _acquire(pool: RoutePool) -> UpstreamConnection:
    try:
        return await pool.acquire()
    except UpstreamFailure as exc:
        retry_after = 1 if exc.status == 503 else None
        raise UpstreamError(exc.status, str(exc), retry_after) from exc


async def _exchange(
    request: web.Request,
    connection: UpstreamConnection,
    head: bytes,
    has_body: bool,
    chunked: bool,
) -> ResponseHead:
    connection.begin(head_request=request.method == "HEAD")
    connection.write(head)
    if has_body:
        try:
            await _send_body(request, connection, chunked)
        except UpstreamClosed:
            if not connection.answered:  # an early answer (413, 401) still counts
                raise
    return await connection.response_head()


async def _send_body(request: web.Request, connection: UpstreamConnection, chunked: bool) -> None:
    content = request.content
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        await connection.drain()
    if chunked:
        connection.write(b"0\r\n\r\n")


@functools.lru_cache(maxsize=8)
def _raw_names(names: frozenset[str]) -> frozenset[bytes]:
    """Cookie names as the upstream's bytes are compared with them (encoded once)."""
    return frozenset(name.encode() for name in names)


_FRAMED = frozenset({b"content-length", b"x-request-id"})
_NOT_FRAMED = frozenset({b"x-request-id"})
"""Also dropped: the upstream's X-Request-Id (an answer carries the gateway's own)."""


def _response_headers(answer: ResponseHead, drop_cookies: frozenset[bytes]) -> list[RawPair]:
    """The upstream's headers for the client, as bytes.

    With a body the gateway frames it itself; HEAD, 204 and 304 keep the upstream's
    Content-Length, which describes the resource.
    """
    framing = _FRAMED if answer.has_body else _NOT_FRAMED
    return filter_response_headers(answer.headers, drop_cookies=drop_cookies, also=framing)


def _present(headers: list[RawPair]) -> tuple[bool, bool]:
    """Whether the upstream sent Date and Content-Type (the gateway adds what is missing)."""
    date = content_type = False
    for name, _ in headers:
        size = len(name)
        if size == 4 and name.lower() == b"date":
            date = True
        elif size == 12 and name.lower() == b"content-type":
            content_type = True
    return date, content_type


async def _relay(
    request: web.Request,
    connection: UpstreamConnection,
    answer: ResponseHead,
    drop_cookies: frozenset[bytes],
) -> web.StreamResponse:
    headers = _response_headers(answer, drop_cookies)
    date, content_type = _present(headers)
    if not answer.has_body:
        return RelayedAnswer(answer.status, answer.reason, headers, has_body=False, has_date=date)
    if connection.complete:  # the whole answer is here already: one write, with its length
        body = connection.take_body()
        if answer.content_length is not None and len(body) != answer.content_length:
            connection.close()  # cannot happen with llhttp's framing; never guess
            raise UpstreamError(502, "the upstream's body did not match its length")
        return RelayedAnswer(
            answer.status,
            answer.reason,
            headers,
            has_body=True,
            body=body,
            has_date=date,
            has_content_type=content_type,
        )
    response = RelayedAnswer(
        answer.status,
        answer.reason,
        headers,
        has_body=True,
        content_length=answer.content_length,
        has_date=date,
        has_content_type=content_type,
    )
    return await _stream(request, connection, response)


async def _stream(
    request: web.Request, connection: UpstreamConnection, response: RelayedAnswer
) -> web.StreamResponse:
    await response.prepare(request)
    try:
        while chunk := await connection.read():
            await response.write(chunk)
    except UpstreamFailure as exc:
        # Headers are gone already: the only honest signal left is a cut connection.
        log_fault(log, logging.WARNING, "upstream answer broke off: %s", type(exc).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


# --------------------------------------------------------------------------- websockets


def is_websocket(request: web.Request) -> bool:
    return (
        request.method == "GET"
        and request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


async def forward_websocket(
    request: web.Request,
    client: UpstreamClient,
    route: RouteConfig,
    path: str,
    query: str,
    headers: Sequence[Pair],
    open_tunnel: Callable[[Tunnel], Callable[[], None]],
    host: str | None = None,
) -> web.StreamResponse:
    """Open the upstream websocket first, then accept the client's, then pump frames.

    ``open_tunnel`` registers the tunnel (so it can be ended with its session) and
    returns the function that unregisters it.
    """
    address = client.pool(route).address
    scheme = "https" if address.tls else "http"
    base = "http://localhost" if address.unix_path else f"{scheme}://{address.authority}"
    url = URL(base + address.base_path + path + ("?" + query if query else ""), encoded=True)
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    if route.header_edits is not None:
        headers = route.header_edits.apply(headers)
    upstream_headers = [(k, v) for k, v in headers if k.lower() not in _WS_HANDSHAKE]
    if host is not None:
        upstream_headers.append(("Host", host))
    try:
        upstream = await client.websocket_session(address).ws_connect(
            url,
            headers=upstream_headers,
            protocols=protocols,
            autoping=False,
            autoclose=False,
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise UpstreamError(502, f"the upstream refused the websocket ({exc.status})") from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamError(504, "the upstream did not answer in time") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(502, f"the upstream is unreachable ({type(exc).__name__})") from exc
    downstream = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (),
        autoping=False,
        autoclose=False,
        max_msg_size=0,
    )
    request_id = current_request_id()
    if request_id is not None:  # on the 101 too (docs/logs.md)
        downstream.headers[REQUEST_ID_HEADER] = request_id
    tunnel = Tunnel()
    unregister = open_tunnel(tunnel)
    try:
        await downstream.prepare(request)
        await _pump_both(downstream, upstream, tunnel)
    finally:
        unregister()
        code, reason = tunnel.ending or (None, "")
        await upstream.close(code=1001 if code is not None else 1000)
        if code is not None:
            await downstream.close(code=code, message=reason.encode())
        else:
            await downstream.close()
    return downstream


async def _pump_both(
    downstream: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, tunnel: Tunnel
) -> None:
    to_upstream = asyncio.ensure_future(_pump(downstream, upstream, tunnel.client_frame))
    to_downstream = asyncio.ensure_future(_pump(upstream, downstream, None))
    tunnel.attach(to_upstream, to_downstream)
    done, pending = await asyncio.wait(
        {to_upstream, to_downstream}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        if not task.cancelled():
            task.result()


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    on_data: Callable[[], None] | None,
) -> None:
    """Copy frames one way until either side closes."""
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.PING:
            await sink.ping(message.data)
            continue
        elif message.type is WSMsgType.PONG:
            await sink.pong(message.data)
            continue
        else:
            break
        if on_data is not None:
            on_data()
    code = source.close_code or 1000
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await sink.close(code=code if 1000 <= code < 5000 else 1011)
