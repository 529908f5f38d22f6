"""Forwarding to upstreams: HTTP with streamed bodies both ways (SSE included), and
websockets. The upstream client sits behind UpstreamClient, one small seam, so it can
be swapped for a faster one without touching the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from gateway.config import RouteConfig
from gateway.headers import Pair, filter_response_headers

log = logging.getLogger(__name__)

READ_BUFFER = 256 * 1024
"""Large reads relay streams several times faster than small chunks (PERFORMANCE.md)."""
_WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


class UpstreamError(Exception):
    """The upstream could not be reached (502) or did not answer in time (504)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class UpstreamClient:
    """One pooled ClientSession for TCP upstreams, one per unix socket, and unpooled
    twins of them for requests whose connection must not be reused (HEAD)."""

    def __init__(self) -> None:
        self._tcp = self._session(aiohttp.TCPConnector(limit=0, limit_per_host=256))
        self._tcp_once = self._session(aiohttp.TCPConnector(limit=0, force_close=True))
        self._unix: dict[tuple[str, bool], aiohttp.ClientSession] = {}

    @staticmethod
    def _session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the browser, not to us
            auto_decompress=False,  # bodies pass through byte for byte
            read_bufsize=READ_BUFFER,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def target(
        self, route: RouteConfig, *, pooled: bool = True
    ) -> tuple[aiohttp.ClientSession, str]:
        """The session and base URL (no trailing slash) for a route's upstream.

        ``pooled=False`` gives a session that closes each connection after one request.
        """
        if route.upstream.startswith("unix:"):
            path = route.upstream[len("unix:") :]
            session = self._unix.get((path, pooled))
            if session is None:
                connector = aiohttp.UnixConnector(path=path, force_close=not pooled)
                session = self._session(connector)
                self._unix[(path, pooled)] = session
            return session, "http://localhost"
        return (self._tcp if pooled else self._tcp_once), route.upstream

    async def close(self) -> None:
        await self._tcp.close()
        await self._tcp_once.close()
        for session in self._unix.values():
            await session.close()


def _timeout(route: RouteConfig) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None, sock_connect=route.connect_timeout, sock_read=route.read_timeout or None
    )


def _url(base: str, path: str, query: str) -> URL:
    return URL(base + path + (f"?{query}" if query else ""), encoded=True)


async def forward_http(
    request: web.Request,
    client: UpstreamClient,
    route: RouteConfig,
    path: str,
    query: str,
    headers: Sequence[Pair],
    drop_cookies: frozenset[str],
) -> web.StreamResponse:
    """Send the request upstream and stream the answer back; UpstreamError if it fails."""
    # Some upstreams write a body after their HEAD answer anyway (aiohttp's StreamResponse
    # does). aiohttp's client hands a HEAD's connection back to the pool as soon as the
    # headers are read, so bytes arriving a moment later would be read as the answer to
    # the next request on that connection, possibly another user's. HEAD is rare: it
    # never uses a pooled connection.
    session, base = client.target(route, pooled=request.method != "HEAD")
    body = request.content if request.body_exists else None
    try:
        upstream = await session.request(
            request.method,
            _url(base, path, query),
            headers=list(headers),
            data=body,
            allow_redirects=False,
            timeout=_timeout(route),
        )
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamError(504, "the upstream did not answer in time") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(502, f"the upstream is unreachable ({type(exc).__name__})") from exc
    try:
        return await _relay(request, upstream, drop_cookies)
    finally:
        upstream.release()


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, drop_cookies: frozenset[str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in filter_response_headers(
        list(upstream.headers.items()), drop_cookies=drop_cookies
    ):
        response.headers.add(name, value)
    await response.prepare(request)
    if request.method != "HEAD" and upstream.status not in (204, 304):
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError, TimeoutError) as exc:
            # Headers are gone already: the only honest signal left is a cut connection.
            log.warning("upstream stream broke: %s", type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


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
) -> web.StreamResponse:
    """Open the upstream websocket first, then accept the client's, then pump frames."""
    session, base = client.target(route)
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    upstream_headers = [(k, v) for k, v in headers if k.lower() not in _WS_HANDSHAKE]
    try:
        upstream = await session.ws_connect(
            _url(base, path, query),
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
    try:
        await downstream.prepare(request)
        await _pump_both(downstream, upstream)
    finally:
        await upstream.close()
        await downstream.close()
    return downstream


async def _pump_both(
    downstream: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    to_upstream = asyncio.ensure_future(_pump(downstream, upstream))
    to_downstream = asyncio.ensure_future(_pump(upstream, downstream))
    done, pending = await asyncio.wait(
        {to_upstream, to_downstream}, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        task.result()


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Copy frames one way until either side closes."""
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.PING:
            await sink.ping(message.data)
        elif message.type is WSMsgType.PONG:
            await sink.pong(message.data)
        else:
            break
    code = source.close_code or 1000
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await sink.close(code=code if 1000 <= code < 5000 else 1011)
