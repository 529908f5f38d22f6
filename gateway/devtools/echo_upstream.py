"""A small upstream for the demo and the tests: it shows what the gateway sent it.

- ``/``                       an HTML page listing the identity headers and assertion claims
- ``/api/echo`` (any method)  JSON: method, path, query, headers, body size
- ``/api/sse``                server-sent events, one every ``interval`` seconds
- ``/api/ws``                 a websocket echo
- ``/api/slow``               answers after ``delay`` seconds (timeouts)
- ``/api/stream``             a streamed body of ``size`` bytes
- ``/api/target``             JSON: the request target exactly as received (raw path + query)
- ``/api/status/{code}``      an empty answer with that status (304s carry an ETag)
- ``/api/set-cookie``         one Set-Cookie line per repeated ``cookie`` query value
- ``/api/hop-headers``        an answer carrying hop-by-hop headers a proxy must drop
- ``/api/gzip``               a gzip-encoded body of ``size`` bytes (Content-Encoding: gzip)
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import html
import json
from typing import Any

from aiohttp import WSMsgType, web

IDENTITY_PREFIXES = ("x-forwarded-", "x-gateway-")


def _claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified: this page only displays it."""
    try:
        payload = token.split(".")[1]
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    except (IndexError, ValueError):
        return None
    return decoded


async def index(request: web.Request) -> web.Response:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v[:120])}</code></td></tr>"
        for k, v in request.headers.items()
        if k.lower().startswith(IDENTITY_PREFIXES)
    )
    claims = _claims(request.headers.get("X-Gateway-Assertion", ""))
    user = request.headers.get("X-Forwarded-User") or "anonymous"
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sample tool</title></head><body>
<h1>Hello, {html.escape(user)}!</h1>
<p>This sample upstream has no login of its own. hf-gateway signed you in with Hugging Face
and sent these headers:</p>
<table>{rows}</table>
<h2>Assertion claims</h2><pre>{html.escape(json.dumps(claims, indent=2))}</pre>
<p><a href="/admin/">Admin page (acme admins)</a> · <a href="/writers/">Writers page
(write role in acme)</a> · <a href="/public/">Public page</a> ·
<a href="/_gateway/userinfo">/_gateway/userinfo</a></p>
<form method="post" action="/_gateway/logout"><button>Sign out</button></form>
</body></html>"""
    return web.Response(text=body, content_type="text/html")


async def echo(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path.partition("?")[0],
            "query": request.query_string,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_size": size,
            "peer": request.remote,
        }
    )


async def sse(request: web.Request) -> web.StreamResponse:
    count = int(request.query.get("count", "3"))
    interval = float(request.query.get("interval", "0.5"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index in range(count):
        await response.write(f"id: {index}\ndata: event {index}\n\n".encode())
        await asyncio.sleep(interval)
    await response.write_eof()
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("echo",))
    await ws.prepare(request)
    await ws.send_str("hello " + request.headers.get("X-Forwarded-User", "anonymous"))
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "2")))
    return web.Response(text="finally")


async def stream(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("size", "1048576"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    chunk = b"x" * 65536
    sent = 0
    while sent < size:
        part = chunk[: size - sent]
        await response.write(part)
        sent += len(part)
    await response.write_eof()
    return response


async def target(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "target": request.raw_path})


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        raise web.HTTPBadRequest(text="status must be 200-599")
    headers = {"ETag": '"v1"', "X-Echo-Status": str(code)}
    if code in (204, 304):
        return web.Response(status=code, headers=headers)
    return web.Response(status=code, headers=headers, text=f"status {code}")


async def set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookies set")
    for value in request.query.getall("cookie", []):
        response.headers.add("Set-Cookie", value)
    return response


HOP_BY_HOP_RESPONSE = (
    ("Connection", "X-Hop-Listed"),
    ("X-Hop-Listed", "listed in Connection"),
    ("Keep-Alive", "timeout=5, max=100"),
    ("Proxy-Authenticate", 'Basic realm="upstream"'),
    ("Proxy-Connection", "keep-alive"),
    ("Trailer", "X-Checksum"),
    ("Upgrade", "h2c"),
    ("X-End-To-End", "kept"),
)
"""What ``/api/hop-headers`` sends; only X-End-To-End may reach a client through a proxy."""


async def hop_headers(request: web.Request) -> web.Response:
    response = web.Response(text="hop")
    for name, value in HOP_BY_HOP_RESPONSE:
        response.headers.add(name, value)
    return response


def gzip_body(size: int) -> bytes:
    """The deterministic gzip bytes ``/api/gzip`` answers with (no timestamp inside)."""
    return gzip.compress(bytes(i % 251 for i in range(size)), mtime=0)


async def gzipped(request: web.Request) -> web.Response:
    body = gzip_body(int(request.query.get("size", "65536")))
    return web.Response(
        body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    )


def create_echo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/api/echo", echo)
    app.router.add_route("*", "/api/echo/{tail:.*}", echo)
    app.router.add_get("/api/sse", sse)
    app.router.add_get("/api/ws", websocket)
    app.router.add_get("/api/slow", slow)
    app.router.add_get("/api/stream", stream)
    app.router.add_route("*", "/api/target", target)
    app.router.add_route("*", "/api/status/{code:[0-9]{3}}", status)
    app.router.add_get("/api/set-cookie", set_cookie)
    app.router.add_get("/api/hop-headers", hop_headers)
    app.router.add_get("/api/gzip", gzipped)
    app.router.add_get("/{tail:.*}", index)
    return app
