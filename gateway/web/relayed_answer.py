"""An upstream answer written to the client as bytes the gateway framed itself.

aiohttp's ``web.Response`` would copy the upstream's headers into a multidict, decode
and re-encode them, fill in its defaults and serialise them again: about a tenth of a
proxied request's CPU. ``RelayedAnswer`` writes the head in one piece instead: the
status line, the upstream's header lines as llhttp checked them (filtered by
``gateway.headers.filter_response_headers``), then the framing the gateway chose and the
connection header aiohttp's keep-alive decision needs. The body goes through aiohttp's
own payload writer, so flow control, chunking and the access log's byte count stay
aiohttp's.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import HttpVersion10, HttpVersion11, StreamWriter

from gateway.headers import RawPair
from gateway.logs import current_trace

# The writer methods used here; checked once so an aiohttp that renamed them fails at
# start-up instead of on the first request.
for _method in ("_write", "_writelines", "enable_chunking"):
    if not hasattr(StreamWriter, _method):
        raise ImportError(f"aiohttp's StreamWriter has no {_method}: update relayed_answer")

_CRLF = b"\r\n"
_DRAIN_ABOVE = 0x10000
"""aiohttp's own threshold: above this many unsent bytes a write waits for the client."""
_SEPARATOR = b": "
_STATUS_LINES: dict[tuple[int, int, int, bytes], bytes] = {}


def _status_line(version: tuple[int, int], status: int, reason: bytes) -> bytes:
    key = (version[0], version[1], status, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        if not reason:
            try:
                reason = HTTPStatus(status).phrase.encode()
            except ValueError:
                reason = b""
        line = b"HTTP/%d.%d %d %s\r\n" % (version[0], version[1], status, reason)
        # Upstream reasons are free text: bound the memo by count and by length.
        if len(_STATUS_LINES) < 4096 and len(reason) <= 64:
            _STATUS_LINES[key] = line
    return line


class _DateLine:
    """``Date: ...`` for answers that came without one, formatted once a second."""

    second = -1
    line = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.line = b"Date: " + formatdate(second, usegmt=True).encode() + _CRLF
            cls.second = second
        return cls.line


class RelayedAnswer(web.StreamResponse):
    """One upstream answer for one client request.

    ``body`` is the whole body when it is already here (one write, with its length);
    None streams it: ``write()`` then ``write_eof()``, with ``content_length`` when the
    upstream gave one, else chunked (or, to an HTTP/1.0 client, until the close).
    ``has_body`` False is an answer without one (HEAD, 204, 304): its Content-Length,
    which describes the resource, is the upstream's.
    """

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[RawPair],
        *,
        has_body: bool,
        body: bytes | None = None,
        content_length: int | None = None,
        has_date: bool = False,
        has_content_type: bool = False,
    ) -> None:
        super().__init__(status=status)
        self._raw_reason = reason
        self._raw_headers = headers
        self._has_body = has_body
        self._complete_body = body
        self._declared_length = len(body) if body is not None else content_length
        self._has_date = has_date
        self._has_content_type = has_content_type

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        self._req = request
        writer = self._payload_writer = request._payload_writer
        await request._prepare_hook(self)  # on_response_prepare handlers may add headers
        version = request.version
        keep_alive = request.keep_alive and self._keep_alive is not False  # force_close()
        parts = [_status_line(version, self.status, self._raw_reason)]
        for name, value in self._raw_headers:
            parts += (name, _SEPARATOR, value, _CRLF)
        trace = current_trace()
        if trace is not None:  # the request id (generated or checked: no CR/LF possible)
            parts.append(b"X-Request-Id: " + trace.id.encode("ascii") + _CRLF)
        for added_name, added_value in self._headers.items():  # what a prepare hook added
            line = f"{added_name}: {added_value}"
            if "\r" in line or "\n" in line:
                raise ValueError("a header added before the answer held a line break")
            parts.append(line.encode("latin-1", "replace") + _CRLF)
        if not self._has_date:
            parts.append(_DateLine.now())
        if self._has_body:
            length = self._declared_length
            if length is not None:
                writer.length = length
                parts.append(b"Content-Length: %d\r\n" % length)
            elif version >= HttpVersion11:
                writer.enable_chunking()
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                keep_alive = False  # an HTTP/1.0 client reads to the close
            if length != 0 and not self._has_content_type:
                parts.append(b"Content-Type: application/octet-stream\r\n")
        else:
            writer.length = 0
        if keep_alive:
            if version == HttpVersion10:
                parts.append(b"Connection: keep-alive\r\n")
        elif version == HttpVersion11:
            parts.append(b"Connection: close\r\n")
        self._keep_alive = keep_alive
        parts.append(_CRLF)
        head = b"".join(parts)
        body = self._complete_body
        if body and self._has_body:
            writer._writelines((head, body))  # type: ignore[attr-defined]
            self._complete_body = b""
            if writer.buffer_size > _DRAIN_ABOVE:  # a slow client: wait as aiohttp would
                writer.buffer_size = 0
                await writer.drain()
        else:
            writer._write(head)  # type: ignore[attr-defined]
        return writer
