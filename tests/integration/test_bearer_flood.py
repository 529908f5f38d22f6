"""A flood of made-up bearer tokens from one client must not lock real tokens out.

Clients are told apart by their address: each test client binds its own loopback address
(127.0.0.2, 127.0.0.3, ...), or comes through a trusted proxy that names it in
X-Forwarded-For. The fake HF counts whoami-v2 calls, so the tests see what reached it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from gateway.devtools.fake_hf import FakeHF
from gateway.session.redis import RedisStore
from gateway.session.store import SessionStore
from gateway.web.bearer import CLIENT_BURST, LOOKUP_BURST, LOOKUP_RATE, LOOKUP_RESERVE
from tests.integration.conftest import StartGateway
from tests.support.harness import GatewayHarness
from tests.support.redis_server import RedisServer

ALICE_READ = "hf_alice_demo_read_token"
BOB_WRITE = "hf_bob_demo_write_token"
FLOODER = "127.0.0.2"
BOB = "127.0.0.3"
ECHO = "/api/echo"
Answer = tuple[int, dict[str, str]]


def made_up_token() -> str:
    return "hf_" + secrets.token_hex(17)


def client(address: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=64, force_close=True)
    )


async def ask(
    http: aiohttp.ClientSession, url: str, token: str, headers: dict[str, str] | None = None
) -> Answer:
    sent = {"Accept": "application/json", "Authorization": f"Bearer {token}", **(headers or {})}
    async with http.get(url, headers=sent) as response:
        await response.read()
        return response.status, dict(response.headers)


async def timed(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, float]:
    started = time.monotonic()
    status, _ = await ask(http, url, token)
    return status, time.monotonic() - started


async def flood(
    address: str,
    url: str,
    count: int,
    headers: Callable[[], dict[str, str]] | None = None,
    under_way: asyncio.Event | None = None,
) -> list[Answer]:
    """``count`` distinct made-up tokens from ``address``, all at once; ``under_way`` is
    set once a quarter of them have been answered."""
    answered = 0

    async def one(http: aiohttp.ClientSession) -> Answer:
        nonlocal answered
        answer = await ask(http, url, made_up_token(), headers() if headers else None)
        answered += 1
        if under_way is not None and answered >= count // 4:
            under_way.set()
        return answer

    async with client(address) as http:
        return await asyncio.gather(*(one(http) for _ in range(count)))


def statuses(answers: list[Answer]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for status, _ in answers:
        counted[status] = counted.get(status, 0) + 1
    return counted


def assert_throttled_with_retry_after(answers: list[Answer]) -> None:
    for status, headers in answers:
        if status == 429:
            assert int(headers["Retry-After"]) >= 1


async def test_a_flood_of_made_up_tokens_leaves_other_clients_untouched(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """One client sends 200 random hf_ tokens at once: it gets its own few lookups (401),
    then 429 with Retry-After; bob's uncached token from another address is answered 200
    at once while the flood runs, and alice's right after it."""
    url = gateway.url + ECHO
    before = fake_hf.whoami_calls
    under_way = asyncio.Event()
    flooding = asyncio.create_task(flood(FLOODER, url, 200, under_way=under_way))
    await under_way.wait()
    async with client(BOB) as http:
        during = await timed(http, url, BOB_WRITE)
        still_flooding = not flooding.done()
        answers = await flooding
        after = await timed(http, url, ALICE_READ)
    counted = statuses(answers)
    assert counted == {401: CLIENT_BURST, 429: 200 - CLIENT_BURST}, counted
    assert_throttled_with_retry_after(answers)
    assert during[0] == 200 and during[1] < 1.0, during
    assert still_flooding  # bob was answered while the flood was still running
    assert after[0] == 200 and after[1] < 1.0, after
    # The flood cost Hugging Face its own allowance only (plus bob's and alice's lookups).
    assert fake_hf.whoami_calls - before == CLIENT_BURST + 2


async def test_the_flooding_client_recovers_when_it_slows_down(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """429 is a pause, not a ban: after its Retry-After the same client's real token works."""
    url = gateway.url + ECHO
    answers = await flood(FLOODER, url, CLIENT_BURST + 5)
    throttled = [h for s, h in answers if s == 429]
    assert throttled
    await asyncio.sleep(int(throttled[-1]["Retry-After"]))
    async with client(FLOODER) as http:
        assert (await ask(http, url, ALICE_READ))[0] == 200


async def test_many_flooding_clients_leave_room_for_a_quiet_one(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """Four addresses flooding together exhaust the shared lookup allowance (503), but its
    reserve still serves a client that has not flooded: bob's token gets 200."""
    url = gateway.url + ECHO
    before = fake_hf.whoami_calls
    floods = [flood(f"127.0.0.{n}", url, 40) for n in (4, 5, 6, 7)]
    answers = [a for batch in await asyncio.gather(*floods) for a in batch]
    counted = statuses(answers)
    assert counted.get(503, 0) > 0 and counted.get(429, 0) > 0, counted
    assert counted.get(401, 0) <= LOOKUP_BURST - LOOKUP_RESERVE + LOOKUP_RATE, counted
    async with client(BOB) as http:
        assert (await ask(http, url, BOB_WRITE))[0] == 200
    assert fake_hf.whoami_calls - before <= LOOKUP_BURST + LOOKUP_RATE + 1


async def test_forged_forwarded_for_does_not_buy_a_fresh_allowance(
    gateway: GatewayHarness,
) -> None:
    """From an untrusted peer, a new X-Forwarded-For on every request changes nothing:
    the peer address is the client, and its flood is throttled all the same."""
    url = gateway.url + ECHO
    answers = await flood(
        FLOODER, url, 60, lambda: {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250)}"}
    )
    assert statuses(answers) == {401: CLIENT_BURST, 429: 60 - CLIENT_BURST}


async def test_behind_a_trusted_proxy_clients_are_told_apart_by_forwarded_for(
    start_gateway: StartGateway,
) -> None:
    """Through a trusted proxy on 127.0.0.1, X-Forwarded-For names the client: the
    flooder behind it is throttled, bob behind the same proxy is not."""
    gateway = await start_gateway({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
    url = gateway.url + ECHO
    answers = await flood("127.0.0.1", url, 60, lambda: {"X-Forwarded-For": "198.51.100.9"})
    assert statuses(answers) == {401: CLIENT_BURST, 429: 60 - CLIENT_BURST}
    async with client("127.0.0.1") as http:
        answer = await ask(http, url, BOB_WRITE, {"X-Forwarded-For": "203.0.113.7"})
        assert answer[0] == 200


def shared_redis(redis_server: RedisServer) -> Callable[[], SessionStore]:
    prefix = f"it-{secrets.token_hex(4)}:"
    return lambda: RedisStore(aioredis.Redis.from_url(redis_server.url), prefix=prefix)


async def test_replicas_sharing_redis_ask_hf_once_about_a_refused_token(
    start_gateway: StartGateway, fake_hf: FakeHF, redis_server: RedisServer
) -> None:
    """A token HF refused through one replica is refused by the other without a second
    whoami call; a good token still works on both."""
    factory = shared_redis(redis_server)
    first = await start_gateway(store_factory=factory)
    second = await start_gateway(store_factory=factory)
    token = made_up_token()
    async with client(BOB) as http:
        before = fake_hf.whoami_calls
        assert (await ask(http, first.url + ECHO, token))[0] == 401
        assert fake_hf.whoami_calls == before + 1
        assert (await ask(http, second.url + ECHO, token))[0] == 401
        assert (await ask(http, first.url + ECHO, token))[0] == 401
        assert fake_hf.whoami_calls == before + 1
        assert (await ask(http, first.url + ECHO, BOB_WRITE))[0] == 200
        assert (await ask(http, second.url + ECHO, BOB_WRITE))[0] == 200


async def test_replicas_with_stores_of_their_own_each_ask_hf(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """The twin of the test above: without a shared store each replica asks HF itself,
    so the single whoami call there is the shared store's doing."""
    first = await start_gateway()
    second = await start_gateway()
    token = made_up_token()
    async with client(BOB) as http:
        before = fake_hf.whoami_calls
        assert (await ask(http, first.url + ECHO, token))[0] == 401
        assert (await ask(http, second.url + ECHO, token))[0] == 401
        assert fake_hf.whoami_calls == before + 2


async def test_replicas_sharing_redis_share_one_lookup_allowance(
    start_gateway: StartGateway, fake_hf: FakeHF, redis_server: RedisServer
) -> None:
    """Flooders spread over two replicas get one fleet-wide allowance of HF lookups, not
    one per replica; a quiet client is still served from its reserve."""
    factory = shared_redis(redis_server)
    replicas = [await start_gateway(store_factory=factory) for _ in range(2)]
    before = fake_hf.whoami_calls
    started = time.monotonic()
    floods: list[Any] = [
        flood(f"127.0.0.{n}", gateway.url + ECHO, 20) for n in (4, 5) for gateway in replicas
    ]
    answers = [a for batch in await asyncio.gather(*floods) for a in batch]
    elapsed = time.monotonic() - started
    counted = statuses(answers)
    assert counted.get(503, 0) > 0, counted
    # Per replica, each flooder may have CLIENT_BURST tokens checked (40 in all); the
    # fleet lets LOOKUP_BURST through, plus what refilled meanwhile.
    assert fake_hf.whoami_calls - before <= LOOKUP_BURST + LOOKUP_RATE * elapsed
    async with client(BOB) as http:
        assert (await ask(http, replicas[1].url + ECHO, BOB_WRITE))[0] == 200


async def test_with_redis_down_new_tokens_get_503_and_checked_ones_keep_working(
    start_gateway: StartGateway,
) -> None:
    """Fail closed: without the shared store a new token is not looked up (503); a token
    this replica checked a moment ago is still served from its cache."""
    own = RedisServer().start()
    try:
        store = RedisStore(aioredis.Redis.from_url(own.url), prefix="down:")
        gateway = await start_gateway(store=store)
        async with client(BOB) as http:
            assert (await ask(http, gateway.url + ECHO, ALICE_READ))[0] == 200
            own.stop()
            status, headers = await ask(http, gateway.url + ECHO, BOB_WRITE)
            assert status == 503 and int(headers["Retry-After"]) >= 1
            assert (await ask(http, gateway.url + ECHO, ALICE_READ))[0] == 200
    finally:
        own.cleanup()
