"""One HTTP/1.1 connection to an upstream, read with llhttp (httptools) in strict mode.

The connection carries one exchange at a time and never pipelines. Its one promise:
an answer is only ever handed to the request written on it after it left the pool.
So every byte that cannot belong to the current exchange retires the connection:

- bytes on an idle connection (nobody asked for them);
- anything after the final answer: a second response, a body after a HEAD, 204 or 304
  answer (llhttp knows 204/304 have none; for HEAD the gateway tells it here);
- a framing llhttp refuses (conflicting lengths, CL with TE, bad chunks), or a
  protocol switch nobody asked for.

A fresh parser starts every exchange, so no state or buffered byte survives from the
previous one. HEAD, 204 and 304 answers never give the connection back at all: an
upstream that writes a stray body after them (aiohttp's ``StreamResponse(status=204)``
plus ``write()``, Tornado's ``flush()`` then ``write()``) may do it a moment later, and
a connection that is closed cannot deliver those bytes to anyone.

Reads are flow-controlled (reading pauses above HIGH_WATER buffered bytes) and counted
(``activity``) so the pool's sweeper can enforce idle timeouts without a timer per read.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

RawPair = tuple[bytes, bytes]

HIGH_WATER = 1024 * 1024
"""Buffered body bytes above which the upstream socket stops being read."""
_NO_BODY_STATUS = frozenset({204, 304})


class UpstreamFailure(Exception):
    """The exchange failed; ``status`` is what the client gets if no answer began yet."""

    status = 502


class UpstreamClosed(UpstreamFailure):
    """The connection closed before the answer was complete."""

    def __init__(self, message: str, *, nothing_received: bool) -> None:
        self.nothing_received = nothing_received
        super().__init__(message)


class UpstreamProtocolError(UpstreamFailure):
    """The upstream sent something that is not one well-framed HTTP/1.1 answer."""


class UpstreamTimeout(UpstreamFailure):
    """Nothing moved on the connection for longer than the route's read_timeout."""

    status = 504


class _StrayBytes(Exception):
    """Raised inside a parser callback: bytes after the final answer."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: bytes
    headers: list[RawPair]
    """As the upstream sent them: llhttp (strict) has checked names and values."""
    content_length: int | None
    has_body: bool
    """False for answers to HEAD and for 204/304: whatever follows is not theirs."""


class UpstreamConnection(asyncio.Protocol):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[UpstreamConnection], None]
    ) -> None:
        self._loop = loop
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchanges = 0
        """Exchanges begun on this connection: more than one means it was reused."""
        self.idle_since = 0.0
        self.activity = 0
        """Counts reads and writes, so a sweeper can tell a stalled exchange."""
        self._poll: select.poll | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._seen_activity = -1
        self._quiet_since = 0.0
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._parser: httptools.HttpResponseParser | None = None
        self._head_request = False
        self._head: asyncio.Future[ResponseHead] | None = None
        self._status_reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._final: ResponseHead | None = None
        self._close_delimited = False
        self._complete = False
        self._keep_alive = False
        self._received = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamFailure | None = None

    # ------------------------------------------------------------------ exchange API

    def begin(self, *, head_request: bool) -> None:
        """Start an exchange with a fresh parser (nothing carries over from the last one)."""
        self._reset_exchange()
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = head_request
        self._head = self._loop.create_future()
        self.exchanges += 1

    @property
    def reused(self) -> bool:
        return self.exchanges > 1

    @property
    def answered(self) -> bool:
        """The final answer's head has arrived."""
        return self._final is not None

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def stalled_wait(self) -> bool:
        """Waiting on the upstream (not paused by the gateway's own back-pressure)."""
        return self._parser is not None and not self._complete and not self._reading_paused

    def reusable(self) -> bool:
        """Whether the finished exchange leaves the connection fit for another one."""
        return (
            not self.closed
            and self._complete
            and self._keep_alive
            and self._error is None
            and self._final is not None
            and self._final.has_body
            and not self._chunks
        )

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamClosed("the upstream connection is closed", nothing_received=True)
        self.activity += 1
        self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = self._loop.create_future()
            await self._drain

    async def response_head(self) -> ResponseHead:
        assert self._head is not None
        return await self._head

    def take_body(self) -> bytes:
        """Everything buffered (the whole body once ``complete``)."""
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read(self) -> bytes:
        """The next body bytes; b"" at the end; UpstreamFailure if the body broke off."""
        while True:
            if self._chunks:
                return self.take_body()
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = self._loop.create_future()
            await self._waiter

    def fail(self, error: UpstreamFailure) -> None:
        """End the exchange with ``error`` and close the connection."""
        if self._error is None and not self._complete:
            self._error = error
            if self._head is not None and not self._head.done():
                self._head.set_exception(error)
                self._head.exception()  # retrieved by whoever awaits it, if anyone
            self._wake()
        self.close()

    def close(self) -> None:
        """Retire the connection: it carries nothing more, and it never goes back to a pool."""
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def check_stall(self, now: float, timeout: float) -> None:
        """Called by the pool's sweeper: fail an exchange silent for ``timeout`` seconds.

        Silence is measured in sweeps that saw no read or write, so the hot path pays a
        counter increment instead of a timer per read.
        """
        if self.activity != self._seen_activity or not self.stalled_wait:
            self._seen_activity = self.activity
            self._quiet_since = now
        elif now - self._quiet_since >= timeout:
            self.fail(UpstreamTimeout("the upstream did not answer in time"))

    def has_pending_bytes(self) -> bool:
        """Bytes (or EOF) already waiting in the kernel: the connection is not clean."""
        if self._poll is None:
            return False
        return bool(self._poll.poll(0))

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = self.transport.get_extra_info("socket")
        if sock is not None and self.transport.get_extra_info("sslcontext") is None:
            # TLS records (session tickets) may arrive unasked; only plain sockets are polled.
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        parser = self._parser
        if parser is None or self._complete or self._error is not None:
            self.close()  # nobody asked for these bytes: they answer no request
            return
        self._received = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(UpstreamProtocolError("the upstream switched protocols unasked"))
        except httptools.HttpParserError as exc:
            if self.complete:  # the answer was whole; what followed was not its own
                self.close()
            else:
                self.fail(UpstreamProtocolError(f"the upstream broke HTTP framing ({exc})"))
        if self._buffered > HIGH_WATER and not self._reading_paused and not self.closed:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._on_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _ended(self) -> None:
        """The upstream closed: a close-delimited body ends here, anything else broke."""
        if self._parser is None or self._complete or self._error is not None:
            return
        if self._final is not None and self._close_delimited:
            self._complete = True
            self._keep_alive = False
            self._wake()
            return
        self.fail(
            UpstreamClosed(
                "the upstream closed the connection before its answer was complete",
                nothing_received=not self._received,
            )
        )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        if self._final is not None:
            raise _StrayBytes  # a second answer after the final one
        self._headers = []
        self._status_reason = b""

    def on_status(self, reason: bytes) -> None:
        self._status_reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self._head is not None
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                raise _StrayBytes  # a protocol switch on a plain request
            return  # interim answers (100, 103) are dropped; the final one follows
        headers = self._headers
        length: int | None = None
        chunked = False
        for name, value in headers:
            size = len(name)  # only two names matter here; skip the rest without lowering
            if size == 14 and name.lower() == b"content-length":
                length = int(value)  # llhttp has checked it is one valid number
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = value.lower().rstrip().endswith(b"chunked")
        has_body = not self._head_request and status not in _NO_BODY_STATUS
        self._close_delimited = has_body and length is None and not chunked
        self._final = ResponseHead(status, self._status_reason, headers, length, has_body)
        if not has_body:
            self._complete = True  # any byte after this is stray (see module docstring)
        self._head.set_result(self._final)

    def on_body(self, body: bytes) -> None:
        if self._complete:
            raise _StrayBytes  # a body after a HEAD answer
        self._chunks.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._final is None:
            return  # the end of an interim answer
        assert self._parser is not None
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._wake()
