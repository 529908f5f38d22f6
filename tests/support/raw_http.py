"""Exact bytes over HTTP/1.1, and an upstream that records what reached it.

aiohttp and yarl normalise request paths before sending them, so path attacks would be
"fixed" by the test client. ``raw_request`` writes the request line and headers exactly
as given to a socket and reads the whole answer (the connection is closed after one
request). ``RecordingUpstream`` runs the echo upstream with a middleware that logs every
request it receives, so a test can say that nothing was proxied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.devtools.echo_upstream import create_echo_app
from tests.support.redis_server import free_port

Pair = tuple[str, str]
RAW_TIMEOUT = 5.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: tuple[Pair, ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (names compared case-insensitively)."""
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


async def raw_request(
    port: int,
    target: str | bytes,
    headers: Sequence[Pair] = (),
    *,
    method: str = "GET",
    host: str | None = None,
    body: bytes = b"",
) -> RawResponse:
    """Send one request with ``target`` copied byte for byte onto the request line."""
    line = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode() + b" " + line + b" HTTP/1.1"]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        lines.append(f"Host: {host or f'127.0.0.1:{port}'}".encode("latin-1"))
    lines.extend(f"{k}: {v}".encode("latin-1") for k, v in headers)
    if "connection" not in names:
        lines.append(b"Connection: close")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(RAW_TIMEOUT):
            return await _read_response(reader, head_only=method == "HEAD")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader, *, head_only: bool) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = tuple(
        (name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in header_lines)
    )
    response = RawResponse(status, headers, b"")
    if head_only or status in (204, 304):
        return response
    if (response.header("Transfer-Encoding") or "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif (length := response.header("Content-Length")) is not None:
        body = await reader.readexactly(int(length))
    else:
        body = await reader.read()
    return RawResponse(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it."""

    method: str
    raw_path: str
    headers: tuple[Pair, ...]

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


@dataclass
class RecordingUpstream:
    """The echo upstream, plus the list of every request that reached it."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def requests(self) -> list[str]:
        """Each request as ``METHOD raw-target``."""
        return [f"{s.method} {s.raw_path}" for s in self.seen]


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[RecordingUpstream]:
    recorder = RecordingUpstream()

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        recorder.seen.append(Seen(request.method, request.raw_path, tuple(request.headers.items())))
        return await handler(request)

    app = create_echo_app()
    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recorder.url = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()
