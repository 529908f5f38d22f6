"""Upstreams that misbehave on purpose, on raw asyncio streams.

A ``RawUpstream`` accepts connections and hands each one to a coroutine the test writes
(``serve(conn)``), which reads requests with ``conn.next_request()`` and writes whatever
bytes it likes: a 204 followed by a whole second response, a body cut short, an answer
on a connection nobody asked anything on. The upstream numbers its connections in
accept order and logs every request with the connection it arrived on, so a test can
say which connection carried what, whether a request arrived while an answer was still
being written (pipelining), and when the gateway closed a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

Pair = tuple[str, str]

POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npoisoned!"
"""A complete, valid response: whoever reads it as an answer shows "poisoned!"."""

MAX_HEAD = 64 * 1024
READ_SIZE = 65536


def answer(
    body: bytes = b"", status: int = 200, headers: tuple[Pair, ...] = (), *, length: bool = True
) -> bytes:
    """One response's bytes: status line, headers, a Content-Length (unless ``length`` is
    false or the status has no body) and the body."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Other"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    bodiless = status in (204, 304) or 100 <= status < 200
    if length and not bodiless:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if bodiless else body)


def chunked(*chunks: bytes, extension: str = "", trailers: tuple[Pair, ...] = ()) -> bytes:
    """A chunked body: each chunk, the last (empty) chunk, trailers and the final CRLF."""
    out = b"".join(f"{len(c):x}{extension}\r\n".encode() + c + b"\r\n" for c in chunks if c)
    out += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in trailers)
    return out + b"\r\n"


@dataclass(frozen=True)
class Request:
    """One request as the upstream read it off its connection."""

    connection: int
    """The connection it arrived on (1 = the first one the upstream accepted)."""
    number: int
    """Its position on that connection (1 = first)."""
    method: str
    target: str
    headers: tuple[Pair, ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    @property
    def user(self) -> str:
        return self.header("X-Forwarded-User") or "anonymous"


class Connection:
    """One accepted connection: request parsing over a buffer the test can peek into."""

    def __init__(
        self,
        upstream: RawUpstream,
        index: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.upstream = upstream
        self.index = index
        self.reader = reader
        self.writer = writer
        self.count = 0
        self.eof = False
        self._buffer = bytearray()

    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(READ_SIZE)
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            self.upstream.closed_by_peer.add(self.index)
            return False
        self._buffer += data
        return True

    async def _until(self, marker: bytes) -> bytes | None:
        while (end := self._buffer.find(marker)) < 0:
            if len(self._buffer) > MAX_HEAD or not await self._fill():
                return None
        end += len(marker)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    async def _exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def next_request(self, *, read_body: bool = True) -> Request | None:
        """The next request (logged on the upstream), or None when the connection ends."""
        head = await self._until(b"\r\n\r\n")
        if head is None:
            return None
        line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = tuple(
            (k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)
        )
        self.count += 1
        request = Request(self.index, self.count, method, target, headers, b"")
        if read_body:
            request = await self.read_body(request)
        self.upstream.requests.append(request)
        return request

    async def read_body(self, request: Request) -> Request:
        """The request with its body (Content-Length or chunked) read off the connection."""
        body = b""
        if (request.header("Transfer-Encoding") or "").lower() == "chunked":
            parts = []
            while (size_line := await self._until(b"\r\n")) is not None:
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while (line := await self._until(b"\r\n")) not in (None, b"\r\n"):
                        del line  # a trailer field: read and dropped
                    break
                part = await self._exactly(size + 2)
                if part is None:
                    break
                parts.append(part[:-2])
            body = b"".join(parts)
        elif (length := request.header("Content-Length")) is not None:
            body = await self._exactly(int(length)) or b""
        return Request(
            request.connection,
            request.number,
            request.method,
            request.target,
            request.headers,
            body,
        )

    async def bytes_arrive_within(self, seconds: float) -> bool:
        """Whether the peer sends anything (a pipelined request) in the next ``seconds``;
        what it sends stays in the buffer for ``next_request``."""
        if self._buffer:
            return True
        try:
            async with asyncio.timeout(seconds):
                return await self._fill()
        except TimeoutError:
            return False

    async def send(self, *parts: bytes) -> bool:
        """Write and drain; False when the peer is gone."""
        try:
            for part in parts:
                self.writer.write(part)
            await self.writer.drain()
        except ConnectionError:
            return False
        return True

    async def wait_closed_by_peer(self, seconds: float) -> bool:
        """Whether the peer closes the connection within ``seconds`` (data is discarded)."""
        try:
            async with asyncio.timeout(seconds):
                while await self._fill():
                    self._buffer.clear()
        except TimeoutError:
            return False
        return True


Serve = Callable[[Connection], Awaitable[None]]


@dataclass
class RawUpstream:
    """A TCP server on 127.0.0.1 running ``serve`` for each connection it accepts."""

    serve: Serve
    port: int = 0
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    closed_by_peer: set[int] = field(default_factory=set)
    """Connections on which the upstream saw the gateway close (EOF or reset)."""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, connection: int) -> list[Request]:
        """The requests that arrived on one connection, in order."""
        return [r for r in self.requests if r.connection == connection]

    def targets(self) -> list[str]:
        return [f"{r.method} {r.target}" for r in self.requests]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        connection = Connection(self, self.connections, reader, writer)
        try:
            await self.serve(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # stop() ends the connection; the task ends normally (nothing to log)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def start(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def raw_upstream(serve: Serve) -> AsyncIterator[RawUpstream]:
    upstream = await RawUpstream(serve).start()
    try:
        yield upstream
    finally:
        await upstream.stop()


# --- a client that reads answers by their framing only ---------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer as a plain HTTP/1.1 client read it."""

    status: int
    headers: tuple[Pair, ...]
    body: bytes
    complete: bool
    """False when the connection ended before the body its framing announced."""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> Answer:
    """The next final answer on ``reader`` (1xx interim answers skipped)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = tuple((k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines))
        if not 100 <= status < 200 or status == 101:
            break
    answer = Answer(status, headers, b"", True)
    if head_only or status in (204, 304):
        return answer
    if (answer.header("Transfer-Encoding") or "").lower() == "chunked":
        body, complete = await _read_chunked(reader)
    elif (length := answer.header("Content-Length")) is not None:
        try:
            body, complete = await reader.readexactly(int(length)), True
        except asyncio.IncompleteReadError as cut:
            body, complete = cut.partial, False
    else:
        body, complete = await reader.read(), True
    return Answer(status, headers, body, complete)


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    try:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts), True
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    except asyncio.IncompleteReadError as cut:
        parts.append(cut.partial)
        return b"".join(parts), False


async def naive_keep_alive(
    port: int, steps: list[tuple[str, float]], *, seconds: float = 5.0
) -> list[Answer]:
    """GET each path on ONE connection, after pausing the given seconds, reading each
    answer by its framing alone: the naive connection reuse a gateway must not do."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers: list[Answer] = []
    try:
        async with asyncio.timeout(seconds):
            for path, pause in steps:
                await asyncio.sleep(pause)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                await writer.drain()
                answers.append(await read_answer(reader))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answers
