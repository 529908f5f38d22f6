"""The upstream client's guarantees over real sockets: every answer goes to the request it
belongs to, whatever bytes an upstream writes; no pipelining and no leftover bytes; cut
bodies stay visibly broken; old framing edge cases; stale keep-alive connections; pools
that cannot be starved; and slowloris clients (request_head_timeout).

The misbehaving upstreams are raw asyncio servers (tests/support/misbehaving.py) plus real
aiohttp and Tornado applications that write a body after a 204. Every one echoes a marker
("USER TARGET") into its answers, so a follow-up request can tell its own answer from
anyone else's, and every one is first shown to really poison a naive client
(``test_the_poisoning_upstreams_really_poison_a_naively_reused_connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from aiohttp import web

from tests.integration.conftest import StartGateway
from tests.integration.test_proxy_http import alice, raw_exchange, route, routes_with
from tests.support.harness import API, GatewayHarness
from tests.support.misbehaving import (
    POISON,
    Connection,
    RawUpstream,
    Request,
    Serve,
    answer,
    chunked,
    naive_keep_alive,
    raw_upstream,
    read_answer,
)
from tests.support.raw_http import RecordingUpstream, recording_upstream

T = 5.0
"""Upper bound for any one exchange: nothing in this file may hang longer."""

INCOMPLETE = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\npoisoned!"
"""A response whose body the *next* real answer would complete: still "poisoned!"."""


# --- helpers -----------------------------------------------------------------------------


def raw_route(name: str, upstream: str, **options: Any) -> dict[str, Any]:
    """A signed-in route at /NAME to a test upstream; a 3 s read_timeout keeps a gateway
    that waits for bytes that never come from hanging the test (and its teardown)."""
    return route(name, upstream, **{"read_timeout": 3, **options})


def own_answer(request: Request) -> bytes:
    """The marker a well-behaved answer carries: who asked, and for what."""
    return f"{request.user} {request.target}".encode()


async def fetch(
    http: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    seconds: float = T,
    **kwargs: Any,
) -> tuple[int, str]:
    """Status and body text of one request, bounded in time."""
    status, _, body = await fetch_full(http, url, method=method, seconds=seconds, **kwargs)
    return status, body


async def fetch_full(
    http: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    seconds: float = T,
    **kwargs: Any,
) -> tuple[int, dict[str, str], str]:
    headers = {**API, **kwargs.pop("headers", {})}
    async with asyncio.timeout(seconds):
        async with http.request(method, url, headers=headers, **kwargs) as r:
            body = (await r.read()).decode("latin-1")
            return r.status, dict(r.headers), body


async def close_writers(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(T):
            await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def eventually(check: Callable[[], bool], message: str, seconds: float = 3.0) -> None:
    """Polls ``check`` until it holds; AssertionError(message) after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"{message} (waited {seconds} s)")
        await asyncio.sleep(0.02)


async def wait_for(event: asyncio.Event, message: str, seconds: float = 3.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        raise AssertionError(f"{message} (waited {seconds} s)") from None


@contextlib.asynccontextmanager
async def signed_in(
    harness: GatewayHarness, username: str, **session: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), **session) as http:
        await harness.sign_in(http, username)
        yield http


@contextlib.asynccontextmanager
async def alice_and_bob(harness: GatewayHarness) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """Alice on a client holding ONE connection to the gateway; bob on an unlimited one."""
    async with (
        alice(harness, connector=aiohttp.TCPConnector(limit=1)) as alice_http,
        signed_in(harness, "bob") as bob_http,
    ):
        yield {"alice": alice_http, "bob": bob_http}


async def follow_ups_get_their_own_answers(
    harness: GatewayHarness, clients: dict[str, aiohttp.ClientSession], prefix: str
) -> None:
    """Sequential requests on alice's one connection, then alice and bob concurrently:
    each gets exactly the answer to its own request, and "poisoned!" never shows."""
    for i in range(3):
        got = await fetch(clients["alice"], f"{harness.url}{prefix}/echo?m=seq{i}")
        assert got == (200, f"alice /echo?m=seq{i}")
    jobs = [(user, f"/echo?m={user}{i}") for user in clients for i in range(4)]
    results = await asyncio.gather(
        *(fetch(clients[user], f"{harness.url}{prefix}{target}") for user, target in jobs)
    )
    for (user, target), got in zip(jobs, results, strict=True):
        assert "poisoned" not in got[1]
        assert got == (200, f"{user} {target}")


def poisoning_upstream(first: bytes, delay: float, poisoned: asyncio.Event) -> Serve:
    """Answers ``/poison`` with ``first`` and then POISON (in the same write, or ``delay``
    seconds later); answers anything else with its marker."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            if not request.target.startswith("/poison"):
                await conn.send(answer(own_answer(request)))
            elif delay == 0:
                await conn.send(first + POISON)
                poisoned.set()
            else:
                await conn.send(first)
                await asyncio.sleep(delay)
                await conn.send(POISON)
                poisoned.set()

    return serve


async def assert_poisoned_connection_was_dropped(upstream: RawUpstream) -> None:
    """The connection that carried /poison carried nothing after it, and the gateway
    closed it."""
    poisoning = [r for r in upstream.requests if r.target.startswith("/poison")]
    assert len(poisoning) == 1
    bad = poisoning[0]
    reused = [r.target for r in upstream.on(bad.connection) if r.number > bad.number]
    assert reused == [], "the poisoned connection carried more requests"
    await eventually(
        lambda: bad.connection in upstream.closed_by_peer,
        "the gateway never closed the poisoned connection",
    )


FIRST = {
    204: answer(status=204),
    304: answer(status=304, headers=(("ETag", '"v1"'),)),
    200: answer(b"the real answer"),
}


# --- 0. the attacks are real --------------------------------------------------------------


@dataclass
class FrameworkUpstream:
    port: int = 0
    seen: list[tuple[str, int]] = field(default_factory=list)
    """(target, the gateway's source port) for each request: which connection it used."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def peer_port(request: web.Request) -> int:
    assert request.transport is not None
    port: int = request.transport.get_extra_info("peername")[1]
    return port


@contextlib.asynccontextmanager
async def aiohttp_writing_after_204() -> AsyncIterator[FrameworkUpstream]:
    """aiohttp.web: ``/poison`` prepares a 204 and then writes a body anyway."""
    running = FrameworkUpstream()

    async def poison(request: web.Request) -> web.StreamResponse:
        running.seen.append((request.raw_path, peer_port(request)))
        response = web.StreamResponse(status=204)
        await response.prepare(request)
        await response.write(POISON)
        return response

    async def echo(request: web.Request) -> web.Response:
        running.seen.append((request.raw_path, peer_port(request)))
        user = request.headers.get("X-Forwarded-User", "anonymous")
        return web.Response(text=f"{user} {request.raw_path}")

    app = web.Application()
    app.router.add_get("/poison", poison)
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    running.port = runner.addresses[0][1]
    try:
        yield running
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def tornado_writing_after_204() -> AsyncIterator[FrameworkUpstream]:
    """Tornado on this event loop: ``/poison`` flushes a 204, then writes and flushes a
    body anyway."""
    running = FrameworkUpstream()

    class Poison(tornado.web.RequestHandler):
        async def get(self) -> None:
            running.seen.append(
                (self.request.uri or "", self.request.connection.context.address[1])
            )
            self.set_status(204)
            await self.flush()
            self.write(POISON)
            await self.flush()

    class Echo(tornado.web.RequestHandler):
        def get(self) -> None:
            running.seen.append(
                (self.request.uri or "", self.request.connection.context.address[1])
            )
            user = self.request.headers.get("X-Forwarded-User", "anonymous")
            self.set_header("Content-Type", "text/plain")
            self.write(f"{user} {self.request.uri}")

    app = tornado.web.Application([(r"/poison", Poison), (r"/.*", Echo)])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    running.port = sockets[0].getsockname()[1]
    try:
        yield running
    finally:
        server.stop()
        await server.close_all_connections()


@contextlib.asynccontextmanager
async def raw_port(serve: Serve) -> AsyncIterator[int]:
    async with raw_upstream(serve) as running:
        yield running.port


@contextlib.asynccontextmanager
async def framework_port(
    factory: Callable[[], AbstractAsyncContextManager[FrameworkUpstream]],
) -> AsyncIterator[int]:
    async with factory() as running:
        yield running.port


def idle_poisoner(payload: bytes, poisoned: asyncio.Event) -> Serve:
    """Answers every request with its marker; the first connection to sit idle for
    0.3 s after an answer then gets ``payload``, which nobody asked for."""
    armed = [True]

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            await conn.send(answer(own_answer(request)))
            if armed[0]:
                armed[0] = False
                if not await conn.bytes_arrive_within(0.3):
                    await conn.send(payload)
                    poisoned.set()

    return serve


def _poisoner(name: str) -> tuple[AbstractAsyncContextManager[int], list[tuple[str, float]]]:
    event = asyncio.Event()
    poison_then_echo = [("/poison", 0.0), ("/echo?m=next", 0.0)]
    idle = [("/echo?m=first", 0.0), ("/echo?m=next", 0.6)]
    if name in ("204-same-packet", "304-same-packet", "200-same-packet"):
        return raw_port(poisoning_upstream(FIRST[int(name[:3])], 0, event)), poison_then_echo
    if name in ("204-then-0.2s", "304-then-0.2s"):
        return raw_port(poisoning_upstream(FIRST[int(name[:3])], 0.2, event)), poison_then_echo
    if name == "200-then-0.2s":
        return raw_port(poisoning_upstream(FIRST[200], 0.2, event)), [
            ("/poison", 0.0),
            ("/echo?m=next", 0.4),
        ]
    if name == "idle-response":
        return raw_port(idle_poisoner(POISON, event)), idle
    if name == "idle-incomplete-response":
        return raw_port(idle_poisoner(INCOMPLETE, event)), idle
    if name == "aiohttp-204-then-body":
        return framework_port(aiohttp_writing_after_204), poison_then_echo
    if name == "tornado-204-then-body":
        return framework_port(tornado_writing_after_204), poison_then_echo
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    [
        "204-same-packet",
        "204-then-0.2s",
        "304-same-packet",
        "304-then-0.2s",
        "200-same-packet",
        "200-then-0.2s",
        "idle-response",
        "idle-incomplete-response",
        "aiohttp-204-then-body",
        "tornado-204-then-body",
    ],
)
async def test_the_poisoning_upstreams_really_poison_a_naively_reused_connection(
    name: str,
) -> None:
    """Each misbehaving upstream used below really answers a second request on a reused
    connection with "poisoned!", so the gateway tests that follow can fail."""
    upstream, steps = _poisoner(name)
    async with upstream as port:
        answers = await naive_keep_alive(port, steps)
    assert answers[0].status in (200, 204, 304)
    assert answers[1].body.startswith(b"poisoned!")


# --- 1. response attribution ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "delay"),
    [
        pytest.param(204, 0.0, id="204-same-packet"),
        pytest.param(204, 0.2, id="204-then-0.2s"),
        pytest.param(304, 0.0, id="304-same-packet"),
        pytest.param(304, 0.2, id="304-then-0.2s"),
    ],
)
async def test_bytes_after_a_bodiless_answer_never_answer_another_request(
    start_gateway: StartGateway, upstream: str, status: int, delay: float
) -> None:
    """A full fake response written after a 204/304 (at once or 0.2 s later) never
    answers a later request, alice's or bob's, sequential or concurrent; the connection
    that carried it is closed, not reused."""
    poisoned = asyncio.Event()
    async with raw_upstream(poisoning_upstream(FIRST[status], delay, poisoned)) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(clients["alice"], f"{harness.url}/raw/poison")
            assert got == (status, "") or (delay == 0 and got[0] == 502)
            assert "poisoned" not in got[1]
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
        await wait_for(poisoned, "the upstream never wrote its poison")
        await assert_poisoned_connection_was_dropped(raw)


@pytest.mark.parametrize("delay", [0.0, 0.2], ids=["same-packet", "then-0.2s"])
async def test_second_response_after_a_complete_answer_never_answers_another_request(
    start_gateway: StartGateway, upstream: str, delay: float
) -> None:
    """A complete second response written after a correctly framed 200 (in the same
    packet, or 0.2 s later on the then idle connection) is never relayed to anyone."""
    poisoned = asyncio.Event()
    async with raw_upstream(poisoning_upstream(FIRST[200], delay, poisoned)) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(clients["alice"], f"{harness.url}/raw/poison")
            assert got == (200, "the real answer") or (delay == 0 and got[0] == 502)
            # A request sent on the connection before the stray bytes arrive could not
            # tell them from its answer (nor could any client): they must arrive first.
            await wait_for(poisoned, "the upstream never wrote its poison")
            await asyncio.sleep(0.1)
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
        await assert_poisoned_connection_was_dropped(raw)


@pytest.mark.parametrize(
    "payload", [POISON, INCOMPLETE], ids=["full-response", "incomplete-response"]
)
async def test_unsolicited_bytes_on_an_idle_connection_never_answer_a_request(
    start_gateway: StartGateway, upstream: str, payload: bytes
) -> None:
    """Bytes an upstream writes on an idle keep-alive connection, unasked, are never read
    as the answer to a later request; that connection is closed."""
    poisoned = asyncio.Event()
    async with raw_upstream(idle_poisoner(payload, poisoned)) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(clients["alice"], f"{harness.url}/raw/echo?m=first")
            assert got == (200, "alice /echo?m=first")
            await wait_for(poisoned, "the idle connection was never poisoned")
            await asyncio.sleep(0.1)
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
        first = raw.requests[0]
        assert [r.target for r in raw.on(first.connection)] == ["/echo?m=first"]
        await eventually(
            lambda: first.connection in raw.closed_by_peer,
            "the gateway never closed the poisoned idle connection",
        )


@pytest.mark.parametrize(
    ("status", "delay"),
    [pytest.param(204, 0.2, id="204-then-0.2s"), pytest.param(200, 0.0, id="200-same-packet")],
)
async def test_poisoning_one_route_never_changes_another_routes_answers(
    start_gateway: StartGateway, upstream: str, status: int, delay: float
) -> None:
    """Two routes on the same upstream host:port: poison sent through /a never becomes
    an answer on /b, for alice or bob."""
    poisoned = asyncio.Event()
    async with raw_upstream(poisoning_upstream(FIRST[status], delay, poisoned)) as raw:
        harness = await start_gateway(
            routes_with(upstream, raw_route("a", raw.url), raw_route("b", raw.url))
        )
        async with alice_and_bob(harness) as clients:
            async with signed_in(harness, "bob") as bob_on_a:
                got = await fetch(bob_on_a, f"{harness.url}/a/poison")
            assert got[0] in (status, 502)
            assert "poisoned" not in got[1]
            await follow_ups_get_their_own_answers(harness, clients, "/b")
        await wait_for(poisoned, "the upstream never wrote its poison")
        await assert_poisoned_connection_was_dropped(raw)


@pytest.mark.parametrize(
    "factory",
    [aiohttp_writing_after_204, tornado_writing_after_204],
    ids=["aiohttp", "tornado"],
)
async def test_framework_writing_a_body_after_204_never_poisons_another_answer(
    start_gateway: StartGateway,
    upstream: str,
    factory: Callable[[], AbstractAsyncContextManager[FrameworkUpstream]],
) -> None:
    """A real aiohttp or Tornado handler that writes a body after its 204 never gets
    that body read as another request's answer, and its connection is not reused."""
    async with factory() as framework:
        harness = await start_gateway(routes_with(upstream, raw_route("fw", framework.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(clients["alice"], f"{harness.url}/fw/poison")
            assert got[0] in (204, 502)
            assert "poisoned" not in got[1]
            await follow_ups_get_their_own_answers(harness, clients, "/fw")
        targets = [t for t, _ in framework.seen]
        at = targets.index("/poison")
        poisoned_port = framework.seen[at][1]
        assert [t for t, port in framework.seen[at + 1 :] if port == poisoned_port] == []


# --- 2. no pipelining, no leftover ------------------------------------------------------


def slow_body_upstream(pipelined: list[Request], pause: float = 0.1) -> Serve:
    """Writes each answer in two halves ``pause`` apart and notes any request bytes that
    arrive on the connection in between (pipelining)."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            body = own_answer(request)
            whole = answer(body)
            cut = len(whole) - len(body) // 2
            await conn.send(whole[:cut])
            if await conn.bytes_arrive_within(pause):
                pipelined.append(request)
            await conn.send(whole[cut:])

    return serve


async def test_the_pipelining_detector_sees_a_pipelined_request() -> None:
    """Positive twin: two requests written at once on one connection are seen as
    pipelined by the slow-body upstream (so the next test can fail)."""
    pipelined: list[Request] = []
    async with raw_upstream(slow_body_upstream(pipelined)) as raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", raw.port)
        try:
            writer.write(
                b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            async with asyncio.timeout(T):
                first, second = await read_answer(reader), await read_answer(reader)
        finally:
            await close_writers(writer)
    assert (first.body, second.body) == (b"anonymous /one", b"anonymous /two")
    assert [r.target for r in pipelined] == ["/one"]


async def test_no_request_is_sent_on_a_connection_before_its_answer_is_read(
    start_gateway: StartGateway, upstream: str
) -> None:
    """With answers arriving in two halves, the gateway never writes another request on
    a connection whose answer is still arriving, and every answer is its own."""
    pipelined: list[Request] = []
    async with raw_upstream(slow_body_upstream(pipelined)) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
    assert pipelined == []
    assert len(raw.requests) == 2 * (3 + 8)


async def test_an_abandoned_answer_leaves_nothing_for_the_next_request(
    start_gateway: StartGateway, upstream: str
) -> None:
    """When a client hangs up in the middle of a long answer, the rest of that answer
    (which is made of complete fake responses) never reaches anyone else: the upstream
    connection is closed or drained, never handed the next request mid-answer."""
    pipelined: list[Request] = []
    parts = 20

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            if request.target != "/big":
                await conn.send(answer(own_answer(request)))
                continue
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {parts * 10 * len(POISON)}\r\n\r\n"
            if not await conn.send(head.encode()):
                return
            for _ in range(parts):
                if not await conn.send(POISON * 10):
                    return
                if await conn.bytes_arrive_within(0.05):
                    pipelined.append(request)

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            async with signed_in(harness, "bob") as quitter:
                async with asyncio.timeout(T):
                    async with quitter.get(f"{harness.url}/raw/big") as r:
                        assert r.status == 200
                        assert await r.content.readexactly(len(POISON)) == POISON
            # The quitter's connection to the gateway is gone, the upstream keeps writing
            # for about 1 s: follow-ups now and once the gateway has noticed.
            for _ in range(3):
                await follow_ups_get_their_own_answers(harness, clients, "/raw")
                await asyncio.sleep(0.15)
    assert pipelined == []


async def test_an_early_answer_does_not_leave_the_request_body_on_the_connection(
    start_gateway: StartGateway, upstream: str
) -> None:
    """An upstream that answers a large POST before reading its body: the next request
    on that connection never ends up inside the unread body, and everyone gets answers."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request(read_body=False)) is not None:
            if request.target == "/early":
                await conn.send(answer(b"early"))
                await conn.read_body(request)  # then consume it, as HTTP/1.1 requires
            else:
                await conn.read_body(request)
                await conn.send(answer(own_answer(request)))

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(
                clients["alice"],
                f"{harness.url}/raw/early",
                method="POST",
                data=io.BytesIO(b"b" * (4 * 1024 * 1024)),
            )
            assert got == (200, "early")
            await follow_ups_get_their_own_answers(harness, clients, "/raw")


# --- 3. truncated upstream bodies -------------------------------------------------------

FULL = bytes(range(65, 115)) * 2
"""The 100-byte body of the complete twins."""


async def cutting_upstream(conn: Connection) -> None:
    """/cl and /chunked answer in full or, with ?cut, stop halfway and close."""
    while (request := await conn.next_request()) is not None:
        path, _, query = request.target.partition("?")
        if path == "/cl":
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
            await conn.send(head + (FULL[:50] if query == "cut" else FULL))
        elif path == "/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            if query == "cut":
                await conn.send(
                    head + b"19\r\n" + FULL[:25] + b"\r\n19\r\n" + FULL[25:50] + b"\r\n"
                )
            else:
                await conn.send(head + chunked(FULL[:50], FULL[50:]))
        else:
            await conn.send(answer(own_answer(request)))
            continue
        if query == "cut":
            return  # the connection closes mid-body


@pytest.mark.parametrize("framing", ["cl", "chunked"])
@pytest.mark.parametrize("cut", [True, False], ids=["cut", "complete"])
async def test_truncated_upstream_body_is_broken_for_an_aiohttp_client(
    start_gateway: StartGateway, upstream: str, framing: str, cut: bool
) -> None:
    """A body cut short by the upstream (Content-Length 100 with 50 sent, or chunked
    without its last chunk) raises ClientPayloadError, never reads as a complete 200;
    the complete twin reads all 100 bytes."""
    async with raw_upstream(cutting_upstream) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness) as http:
            url = f"{harness.url}/raw/{framing}" + ("?cut" if cut else "")
            async with asyncio.timeout(T):
                async with http.get(url) as r:
                    if not cut:
                        assert r.status == 200
                        assert await r.read() == FULL
                    elif r.status == 200:
                        with pytest.raises(aiohttp.ClientPayloadError):
                            await r.read()
                    else:
                        assert r.status == 502  # cut before anything was relayed
            assert await fetch(http, f"{harness.url}/raw/echo?m=after") == (
                200,
                "alice /echo?m=after",
            )


@pytest.mark.parametrize("framing", ["cl", "chunked"])
@pytest.mark.parametrize("cut", [True, False], ids=["cut", "complete"])
async def test_truncated_upstream_body_is_broken_for_a_raw_client(
    start_gateway: StartGateway, upstream: str, framing: str, cut: bool
) -> None:
    """On a keep-alive connection a raw client sees fewer bytes than announced and then
    the connection closed; the complete twin gets every byte by its framing."""
    async with raw_upstream(cutting_upstream) as raw:
        harness = await start_gateway(
            routes_with(upstream, raw_route("raw", raw.url, policy="public"))
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
        try:
            target = f"/raw/{framing}" + ("?cut" if cut else "")
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n\r\n".encode()
            )
            async with asyncio.timeout(T):
                got = await read_answer(reader)
                if not cut:
                    assert (got.status, got.body, got.complete) == (200, FULL, True)
                elif got.status == 200:
                    assert not got.complete
                    assert len(got.body) < 100
                    assert await reader.read() == b""  # and the connection is closed
                else:
                    assert got.status == 502
        finally:
            await close_writers(writer)


# --- 4. edge cases that must keep working -----------------------------------------------


@pytest.mark.parametrize("style", ["plain", "extension-and-trailer", "one-byte-chunks"])
async def test_chunked_upstream_answer_arrives_complete(
    start_gateway: StartGateway, upstream: str, style: str
) -> None:
    """A chunked answer (streamed chunk by chunk, with chunk extensions and a trailer, or
    one byte per chunk) arrives complete, and the next request gets its own answer."""
    body = b"alpha-beta-gamma"

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            if request.target != "/chunked":
                await conn.send(answer(own_answer(request)))
                continue
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            if style == "one-byte-chunks":
                await conn.send(chunked(*(bytes([b]) for b in body)))
                continue
            extension = ";name=value" if style != "plain" else ""
            trailers = (("X-Checksum", "abc"),) if style != "plain" else ()
            for part in (b"alpha-", b"beta-"):
                await conn.send(f"{len(part):x}{extension}\r\n".encode() + part + b"\r\n")
                await asyncio.sleep(0.02)
            await conn.send(chunked(b"gamma", extension=extension, trailers=trailers))

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness, connector=aiohttp.TCPConnector(limit=1)) as http:
            for i in range(2):
                assert await fetch(http, f"{harness.url}/raw/chunked") == (200, body.decode())
                assert await fetch(http, f"{harness.url}/raw/echo?m={i}") == (
                    200,
                    f"alice /echo?m={i}",
                )


@pytest.mark.parametrize(
    "interim",
    [
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", id="100-continue"),
        pytest.param(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            id="103-early-hints",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n",
            id="100-then-103",
        ),
    ],
)
async def test_interim_answers_before_the_final_one(
    start_gateway: StartGateway, upstream: str, interim: bytes
) -> None:
    """1xx interim answers before the final 200 are not the answer: the client gets the
    200 with its body, and the next request its own answer."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            await conn.send(interim)
            await asyncio.sleep(0.02)
            await conn.send(answer(own_answer(request)))

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness, connector=aiohttp.TCPConnector(limit=1)) as http:
            for i in range(3):
                got = await fetch(http, f"{harness.url}/raw/echo?m={i}", method="POST", data=b"x")
                assert got == (200, f"alice /echo?m={i}")


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", id="http1.1-close"),
        pytest.param(b"HTTP/1.0 200 OK\r\n\r\n", id="http1.0"),
    ],
)
async def test_close_delimited_body_arrives_complete(
    start_gateway: StartGateway, upstream: str, head: bytes
) -> None:
    """A body with neither Content-Length nor chunked, ended by the upstream closing the
    connection, arrives complete; the next request gets its own answer."""
    parts = [bytes([65 + i]) * 40_000 for i in range(3)]

    async def serve(conn: Connection) -> None:
        request = await conn.next_request()
        if request is None:
            return
        if request.target != "/close":
            await conn.send(answer(own_answer(request), headers=(("Connection", "close"),)))
            return
        await conn.send(head)
        for part in parts:
            await conn.send(part)
            await asyncio.sleep(0.02)

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness, connector=aiohttp.TCPConnector(limit=1)) as http:
            for i in range(2):
                got = await fetch(http, f"{harness.url}/raw/close")
                assert got == (200, b"".join(parts).decode())
                assert await fetch(http, f"{harness.url}/raw/echo?m={i}") == (
                    200,
                    f"alice /echo?m={i}",
                )


async def test_head_then_get_each_get_their_own_answer(
    start_gateway: StartGateway, upstream: str
) -> None:
    """HEAD gets the headers (Content-Length included) and no body, and a GET after it
    gets the full body: the HEAD's Content-Length never swallows the next answer."""
    body = b"the full body"

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            whole = answer(body if request.target == "/file" else own_answer(request))
            if request.method == "HEAD":
                await conn.send(whole[: whole.index(b"\r\n\r\n") + 4])
            else:
                await conn.send(whole)

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness, connector=aiohttp.TCPConnector(limit=1)) as http:
            for _ in range(2):
                async with asyncio.timeout(T):
                    async with http.head(f"{harness.url}/raw/file") as r:
                        assert r.status == 200
                        assert r.headers["Content-Length"] == str(len(body))
                        assert await r.read() == b""
                assert await fetch(http, f"{harness.url}/raw/file") == (200, body.decode())
            assert await fetch(http, f"{harness.url}/raw/echo?m=z") == (200, "alice /echo?m=z")
    assert raw.targets() == ["HEAD /file", "GET /file"] * 2 + ["GET /echo?m=z"]


@pytest.mark.parametrize(
    ("framing", "body", "status"),
    [
        pytest.param(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            chunked(b"hello"),
            502,
            id="CL-and-TE",
        ),
        pytest.param(
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            chunked(b"hello"),
            502,
            id="TE-and-CL",
        ),
        pytest.param(
            "Content-Length: 5\r\nContent-Length: 7\r\n", b"hello!!", 502, id="two-lengths"
        ),
        pytest.param("Content-Length: 5\r\n", b"hello", 200, id="plain-twin"),
    ],
)
async def test_upstream_answer_with_ambiguous_framing_is_a_502(
    start_gateway: StartGateway, upstream: str, framing: str, body: bytes, status: int
) -> None:
    """An upstream answer with both Content-Length and Transfer-Encoding, or two
    different lengths, is a 502 and never relayed (the single-length twin is a 200);
    that connection carries nothing more and the next requests get their own answers."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            if request.target == "/framed":
                await conn.send(f"HTTP/1.1 200 OK\r\n{framing}\r\n".encode() + body)
            else:
                await conn.send(answer(own_answer(request)))

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice_and_bob(harness) as clients:
            got = await fetch(clients["alice"], f"{harness.url}/raw/framed")
            assert got[0] == status
            if status == 200:
                assert got[1] == "hello"
            else:
                assert "hello" not in got[1]
                assert json.loads(got[1])["error"] == "upstream_error"
            await follow_ups_get_their_own_answers(harness, clients, "/raw")
    framed = next(r for r in raw.requests if r.target == "/framed")
    if status == 502:
        assert [r.target for r in raw.on(framed.connection)] == ["/framed"]


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running:
        yield running


@pytest.mark.parametrize(
    ("framing", "refused"),
    [
        pytest.param("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", True, id="CL-TE"),
        pytest.param("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", True, id="TE-CL"),
        pytest.param("Content-Length: 5\r\n", False, id="plain-twin"),
    ],
)
async def test_client_request_with_cl_and_te_is_refused_before_the_upstream(
    start_gateway: StartGateway, recorder: RecordingUpstream, framing: str, refused: bool
) -> None:
    """A client request with both Content-Length and Transfer-Encoding gets 400 and
    nothing reaches the upstream; the plain Content-Length twin is forwarded."""
    harness = await start_gateway(routes_with(recorder.url, upstream=recorder.url))
    async with alice(harness) as http:
        cookie = harness.session_cookie(http)
    recorder.seen.clear()  # the sign-in itself ends on the upstream's front page
    body = "0\r\n\r\n" if "chunked" in framing else "hello"
    request = (
        f"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
        f"Cookie: hf_gateway={cookie}\r\nAccept: application/json\r\n{framing}"
        f"Connection: close\r\n\r\n{body}GET /admin HTTP/1.1\r\n\r\n"
    )
    if not refused:
        request = request.replace("GET /admin HTTP/1.1\r\n\r\n", "")
    async with asyncio.timeout(T):
        got = await raw_exchange(harness.port, request.encode())
    if refused:
        assert got.split(b" ", 2)[1] == b"400"
        assert recorder.seen == []
    else:
        assert got.startswith(b"HTTP/1.1 200 ")
        assert recorder.requests() == ["POST /api/echo"]


# --- 5. stale keep-alive connections ----------------------------------------------------


async def answers_once_per_connection(conn: Connection) -> None:
    """Answers a connection's first request (keep-alive), then closes the connection
    without answering when a second request arrives on it."""
    request = await conn.next_request()
    if request is None:
        return
    await conn.send(answer(own_answer(request)))
    await conn.next_request()


async def test_get_on_a_stale_connection_is_retried_once_on_a_new_one(
    start_gateway: StartGateway, upstream: str
) -> None:
    """A GET that finds its reused connection closed by the upstream is retried once on a
    new connection: the client gets its answer, the upstream saw it twice."""
    async with raw_upstream(answers_once_per_connection) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness) as http:
            assert await fetch(http, f"{harness.url}/raw/echo?m=1") == (200, "alice /echo?m=1")
            assert await fetch(http, f"{harness.url}/raw/echo?m=2") == (200, "alice /echo?m=2")
    assert [(r.connection, r.number, r.target) for r in raw.requests] == [
        (1, 1, "/echo?m=1"),
        (1, 2, "/echo?m=2"),
        (2, 1, "/echo?m=2"),
    ]


async def test_post_on_a_stale_connection_is_not_retried(
    start_gateway: StartGateway, upstream: str
) -> None:
    """A POST with a body whose reused connection turns out closed is not sent again:
    the client gets a 502 and the upstream saw it at most once; the next POST, on a new
    connection, gets its answer."""
    async with raw_upstream(answers_once_per_connection) as raw:
        harness = await start_gateway(routes_with(upstream, raw_route("raw", raw.url)))
        async with alice(harness) as http:
            assert await fetch(http, f"{harness.url}/raw/echo?m=1") == (200, "alice /echo?m=1")
            status, _ = await fetch(
                http, f"{harness.url}/raw/echo?m=post", method="POST", data=b"p" * 1000
            )
            assert status == 502
            posts = [r for r in raw.requests if r.method == "POST"]
            assert len(posts) <= 1
            assert all(r.connection == 1 for r in posts)
            got = await fetch(
                http, f"{harness.url}/raw/echo?m=again", method="POST", data=b"p" * 1000
            )
            assert got == (200, "alice /echo?m=again")
    again = [r for r in raw.requests if r.target == "/echo?m=again"]
    assert [(r.number, r.body) for r in again] == [(1, b"p" * 1000)]


# --- 6. pools that cannot be starved ----------------------------------------------------


async def test_exhausted_pool_answers_503_in_time_and_spares_other_routes(
    start_gateway: StartGateway, upstream: str, recorder: RecordingUpstream
) -> None:
    """Two stalled requests hold both of a route's max_connections: a third waits
    pool_timeout (1 s) and gets 503 with Retry-After, never reaching the upstream, while
    another route to the same host:port answers at once; the pool recovers afterwards."""
    harness = await start_gateway(
        routes_with(
            upstream,
            route("tight", recorder.url, max_connections=2, pool_timeout="1s"),
            route("other", recorder.url),
        )
    )
    slow = f"{harness.url}/tight/api/slow?delay=3"
    async with alice(harness) as http:
        holders = [asyncio.create_task(fetch(http, slow)) for _ in range(2)]
        try:
            await eventually(
                lambda: recorder.paths().count("/api/slow") == 2, "the stalls never started"
            )

            async def third() -> tuple[float, int, dict[str, str]]:
                started = time.monotonic()
                status, headers, _ = await fetch_full(http, slow)
                return time.monotonic() - started, status, headers

            async def other_route() -> float:
                started = time.monotonic()
                for i in range(5):
                    echoed = await fetch(http, f"{harness.url}/other/api/echo?i={i}")
                    assert echoed[0] == 200
                return time.monotonic() - started

            (waited, status, headers), other_took = await asyncio.gather(third(), other_route())
            assert status == 503
            assert headers.get("Retry-After", "").isdigit()
            assert 0.7 <= waited < 2.0, waited
            assert other_took < 1.0, other_took
            assert recorder.paths().count("/api/slow") == 2
            assert [await h for h in holders] == [(200, "finally")] * 2
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
        status, _ = await fetch(http, f"{harness.url}/tight/api/echo")
        assert status == 200


async def test_idle_connections_are_closed_after_keepalive_timeout(
    start_gateway: StartGateway, upstream: str
) -> None:
    """An idle pooled connection is reused while fresh and closed by the gateway once it
    has been idle for keepalive_timeout (1 s); the next request opens a new one."""

    async def serve(conn: Connection) -> None:
        while (request := await conn.next_request()) is not None:
            await conn.send(answer(own_answer(request)))

    async with raw_upstream(serve) as raw:
        harness = await start_gateway(
            routes_with(upstream, raw_route("raw", raw.url, keepalive_timeout="1s"))
        )
        async with alice(harness) as http:
            for m in ("a", "b"):
                assert await fetch(http, f"{harness.url}/raw/echo?m={m}") == (
                    200,
                    f"alice /echo?m={m}",
                )
            idle_since = time.monotonic()
            assert [(r.connection, r.number) for r in raw.requests] == [(1, 1), (1, 2)]
            await eventually(
                lambda: 1 in raw.closed_by_peer, "the idle connection was never closed", 3.5
            )
            assert time.monotonic() - idle_since >= 0.8
            assert await fetch(http, f"{harness.url}/raw/echo?m=c") == (200, "alice /echo?m=c")
    assert raw.requests[-1].connection == 2


async def test_websockets_do_not_count_against_the_http_pool(
    start_gateway: StartGateway, upstream: str
) -> None:
    """300 open websockets on a route with max_connections: 8 all get their greeting,
    and plain HTTP requests on that route still answer promptly."""
    harness = await start_gateway(routes_with(upstream, route("ws", upstream, max_connections=8)))
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    limit = asyncio.Semaphore(32)
    async with alice(harness, connector=aiohttp.TCPConnector(limit=0)) as http:

        async def open_one() -> None:
            async with limit:
                ws = await http.ws_connect(f"{harness.url}/ws/api/ws")
                sockets.append(ws)
                assert await ws.receive_str(timeout=T) == "hello alice"

        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*(open_one() for _ in range(300)))
            assert len(sockets) == 300
            started = time.monotonic()
            results = await asyncio.gather(
                *(fetch(http, f"{harness.url}/ws/api/echo?i={i}", seconds=3) for i in range(16))
            )
            assert [status for status, _ in results] == [200] * 16
            assert time.monotonic() - started < 2.0
            await sockets[-1].send_str("still open")
            assert await sockets[-1].receive_str(timeout=T) == "still open"
        finally:
            async with asyncio.timeout(15):
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --- 7. slowloris -----------------------------------------------------------------------

HEAD_TIMEOUT = {"server": {"request_head_timeout": "1s"}}


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the gateway closes the connection (a reset counts as closed)."""
    try:
        return await reader.read()
    except ConnectionError:
        return b""


async def test_partial_request_heads_are_closed_after_request_head_timeout(
    start_gateway: StartGateway, upstream: str
) -> None:
    """150 connections that never finish their request head are all closed within about
    3 s (request_head_timeout: 1s), while a normal request meanwhile gets its answer."""
    harness = await start_gateway(HEAD_TIMEOUT)
    loop = asyncio.get_running_loop()
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    limit = asyncio.Semaphore(50)

    async def open_partial() -> None:
        async with limit:
            reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
            streams.append((reader, writer))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()

    async with alice(harness) as http:
        try:
            started = loop.time()
            async with asyncio.timeout(T):
                await asyncio.gather(*(open_partial() for _ in range(150)))
            asked = loop.time()
            echoed = await fetch(http, f"{harness.url}/api/echo")
            assert echoed[0] == 200
            assert loop.time() - asked < 1.0
            try:
                async with asyncio.timeout_at(started + 3.5):
                    leftovers = await asyncio.gather(*(read_to_eof(r) for r, _ in streams))
            except TimeoutError:
                raise AssertionError("partial heads were still open after 3.5 s") from None
            assert not [b for b in leftovers if b.startswith(b"HTTP/1.1 200")]
            assert len(leftovers) == 150
        finally:
            await close_writers(*(writer for _, writer in streams))


@pytest.mark.parametrize(
    ("pieces", "pause", "answered"),
    [
        pytest.param(4, 0.2, True, id="complete-within-the-limit"),
        pytest.param(6, 0.4, False, id="still-incomplete-after-it"),
    ],
)
async def test_slow_request_head_is_answered_only_if_complete_within_the_limit(
    start_gateway: StartGateway, upstream: str, pieces: int, pause: float, answered: bool
) -> None:
    """A head trickled in over 0.6 s (request_head_timeout: 1s) gets its answer; one
    trickled over 2 s is closed before it completes and never answered."""
    harness = await start_gateway(HEAD_TIMEOUT)
    head = (
        f"GET /open/slowly HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
        "Accept: text/html\r\nConnection: close\r\n\r\n"
    ).encode()
    size = -(-len(head) // pieces)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    try:
        async with asyncio.timeout(T):
            with contextlib.suppress(ConnectionError):
                for i in range(pieces):
                    if i:
                        await asyncio.sleep(pause)
                    writer.write(head[i * size : (i + 1) * size])
                    await writer.drain()
            got = await read_to_eof(reader)
    finally:
        await close_writers(writer)
    if answered:
        assert got.startswith(b"HTTP/1.1 200 ")
        assert b"Hello, anonymous!" in got
    else:
        assert not got.startswith(b"HTTP/1.1 200")


async def test_long_running_requests_are_not_cut_by_the_head_timeout(
    start_gateway: StartGateway, upstream: str
) -> None:
    """With request_head_timeout: 1s, an upstream taking 2 s to answer and a request
    body trickling in over 1.5 s both complete normally."""
    harness = await start_gateway(HEAD_TIMEOUT)

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"t" * 1000
            await asyncio.sleep(0.25)

    async with alice(harness) as http:
        slow, upload = await asyncio.gather(
            fetch(http, f"{harness.url}/api/slow?delay=2"),
            fetch(http, f"{harness.url}/api/echo", method="POST", data=trickle()),
        )
    assert slow == (200, "finally")
    assert upload[0] == 200
    assert json.loads(upload[1])["body_size"] == 6000
