"""The client-facing listener: aiohttp's request handler behind a request-head deadline.

aiohttp closes connections that stay idle, but a connection that has sent half a
request head and then trickles (slowloris) stays open for as long as it likes. Every
connection's protocol is therefore wrapped: the first byte of a new request arms a
deadline, and if no complete head has been parsed by then the connection is closed.
A request in progress (a long upload, a slow upstream, a websocket) is never cut by it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

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
        if self._timer is None and not inner._request_in_progress:
            self._armed_count = inner._request_count
            self._timer = self._loop.call_later(self._timeout, self._expire)
        inner.data_received(data)
        if self._timer is not None and inner._request_count != self._armed_count:
            self._timer.cancel()  # the head is complete: the handler owns the request now
            self._timer = None

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
    return await asyncio.get_running_loop().create_server(
        with_head_deadline(handler_factory, head_timeout),
        host,
        port,
        reuse_port=reuse_port or None,
        backlog=1024,
    )
