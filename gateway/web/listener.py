"""The client-facing listener: aiohttp's request handler behind a request-head deadline.

aiohttp closes connections that stay idle, but a connection that has sent half a
request head and then trickles (slowloris) stays open for as long as it likes. Every
connection's protocol is therefore wrapped: bytes of a new request that do not complete
its head arm a deadline, and if no complete head has been parsed by then the connection
is closed.
A request in progress (a long upload, a slow upstream, a websocket) is never cut by it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

# The two handler fields read here; checked once so an aiohttp that renamed them fails
# at start-up instead of silently disabling the deadline.
for _field in ("_request_in_progress", "_request_count"):
    if not hasattr(RequestHandler, _field):
        raise ImportError(f"aiohttp's RequestHandler has no {_field}: update gateway/web/listener")


class HeadDeadline(asyncio.Protocol):
    """Delegates everything to the wrapped handler; closes heads that never complete."""

    __slots__ = ("_armed_count", "_inner", "_loop", "_timeout", "_timer", "_transport")

    def __init__(
        self, inner: RequestHandler, loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self._inner = inner
        self._loop = loop
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._armed_count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        count = inner._request_count
        idle = not inner._request_in_progress
        inner.data_received(data)
        if inner._request_count != count:
            if self._timer is not None:
                self._timer.cancel()  # the head is complete: the handler owns the request
                self._timer = None
        elif idle and self._timer is None and not inner._request_in_progress:
            # Part of a head and no request yet: only now is a deadline needed (a head
            # that arrives whole, the usual case, never costs a timer).
            self._armed_count = count
            self._timer = self._loop.call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        inner = self._inner
        if inner._request_count == self._armed_count and not inner._request_in_progress:
            if self._transport is not None:
                self._transport.close()

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def with_head_deadline(
    make_handler: Callable[[], RequestHandler], timeout: float
) -> Callable[[], asyncio.Protocol]:
    """A protocol factory for ``loop.create_server``; ``timeout`` 0 leaves heads unbounded."""
    if timeout <= 0:
        return make_handler

    def factory() -> asyncio.Protocol:
        return HeadDeadline(make_handler(), asyncio.get_running_loop(), timeout)

    return factory


CATCH_ALL = "/{tail}"
"""The canonical form of the one route the gateway registers, ``/{tail:.*}``."""


def direct_handler(
    app: web.Application,
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] | None:
    """The app's one handler, called without aiohttp's router in between.

    The gateway registers a single catch-all route and routes by itself; aiohttp's
    dispatcher would match a regular expression and build match info for every request
    only to arrive at the same handler (about 5 % of a proxied request's CPU). One frozen
    match info, shared, keeps ``request.app`` working. None when the app has middlewares
    or other routes (then aiohttp's own dispatch is kept).
    """
    routes = list(app.router.routes())
    if app.middlewares or len(routes) != 1:
        return None
    route = routes[0]
    if route.method != "*" or route.resource is None or route.resource.canonical != CATCH_ALL:
        return None  # only the gateway's catch-all route may skip the router
    handler = route.handler
    match_info = UrlMappingMatchInfo({}, route)
    match_info.add_app(app)
    match_info.freeze()
    full_dispatch = app._handle

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if hdrs.EXPECT in request.headers:  # 100-continue: aiohttp's expect handler
            return await full_dispatch(request)  # type: ignore[arg-type]
        request._match_info = match_info  # type: ignore[attr-defined]
        return await handler(request)  # type: ignore[arg-type]

    return handle


async def listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    head_timeout: float,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Serve a set-up AppRunner on host:port with the request-head deadline."""
    handler_factory = runner.server
    if handler_factory is None:
        raise RuntimeError("the runner is not set up")
    direct = direct_handler(runner.app)
    if direct is not None:
        handler_factory.request_handler = direct
    return await asyncio.get_running_loop().create_server(
        with_head_deadline(handler_factory, head_timeout),
        host,
        port,
        reuse_port=reuse_port or None,
        backlog=1024,
    )
