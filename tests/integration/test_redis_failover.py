"""Sentinel failover without losing what was acknowledged: a real master, a real replica
and three real Sentinels (tests/support/redis_topology.py), SENTINEL FAILOVER during
traffic, then every acknowledged sign-in must load and every acknowledged sign-out must
stay signed out. Writes during the switch may fail (StoreError, a 503 for the user); none
may be acknowledged and then lost.

The topology's blocking helpers run in a thread (asyncio.to_thread) so the store's traffic,
its Sentinel watcher and the invalidation listener keep running while the test waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import SessionConfig
from gateway.devtools.fake_hf import FakeHF
from gateway.errors import StoreError
from gateway.identity import Identity
from gateway.metrics import REGISTRY
from gateway.providers.base import TokenSet
from gateway.session.manager import SessionManager
from gateway.session.model import SessionKeys, SessionTimes, new_nonce
from gateway.session.redis import RedisStore
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import API
from tests.support.redis_topology import MASTER_NAME, SentinelTopology, wait_for

SECRET = "failover-test-session-secret-0123456789abcdef"
KEYS = SessionKeys.derive([SECRET])
TIMES = SessionTimes(idle_timeout=3600, max_lifetime=7200, revalidate_after=600)
COOKIE = "hf_gateway"


@pytest.fixture(scope="module")
def topology() -> Iterator[SentinelTopology]:
    started = SentinelTopology().start()
    yield started
    started.cleanup()


@pytest.fixture(scope="module")
def two_replicas() -> Iterator[SentinelTopology]:
    started = SentinelTopology(replicas=2).start()
    yield started
    started.cleanup()


def sentinel_store(topology: SentinelTopology, prefix: str) -> RedisStore:
    """A store as ``hf-gateway run`` builds it from ``session.redis_sentinel``."""
    config = SessionConfig.model_validate(
        {
            "store": "redis",
            "redis_sentinel": {"master": MASTER_NAME, "nodes": topology.nodes},
            "redis_prefix": prefix,
            "secret": SECRET,
        }
    )
    return RedisStore.from_config(config)


def identity(name: str) -> Identity:
    return Identity(sub=f"sub-{name}", username=name, name=name, email=None)


def tokens() -> TokenSet:
    return TokenSet(
        access_token="hf_oauth_" + new_nonce(),
        refresh_token=None,
        expires_at=None,
        scopes=frozenset({"openid"}),
    )


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


class Traffic:
    """Sign-ins and sign-outs through a SessionManager, recording what was acknowledged."""

    def __init__(self, manager: SessionManager, signed_in: list[str]) -> None:
        self.manager = manager
        self.to_sign_out = signed_in
        self.created: list[str] = []
        self.signed_out: list[str] = []
        self.refused: list[str] = []
        self.stop = asyncio.Event()

    async def run(self, worker: int) -> None:
        turn = 0
        while not self.stop.is_set():
            turn += 1
            try:
                self.created.append(await self.manager.create(identity(f"w{worker}"), tokens()))
            except StoreError:
                self.refused.append("sign-in")
            if turn % 3 == 0 and self.to_sign_out:
                cookie = self.to_sign_out.pop()
                try:
                    await self.manager.destroy(cookie)
                    self.signed_out.append(cookie)
                except StoreError:
                    self.refused.append("sign-out")
            await asyncio.sleep(0.01)


async def traffic_through_failover(
    topology: SentinelTopology, manager: SessionManager, *, settled: Callable[[Any], None]
) -> Traffic:
    """Four workers sign in and out while SENTINEL FAILOVER runs, until 1.5 s after the
    Sentinels named the new master; then ``settled(old_master)`` (blocking, in a thread)."""
    standing = [await manager.create(identity(f"u{n}"), tokens()) for n in range(150)]
    traffic = Traffic(manager, standing)
    workers = [asyncio.create_task(traffic.run(n)) for n in range(4)]
    old = await asyncio.to_thread(topology.failover)
    await asyncio.to_thread(wait_for, lambda: topology.master() is not old, "the switch")
    await asyncio.sleep(1.5)  # traffic keeps going to the new master for a while
    traffic.stop.set()
    await asyncio.gather(*workers)
    await asyncio.to_thread(settled, old)
    return traffic


async def acknowledged_but_undone(
    topology: SentinelTopology, prefix: str, traffic: Traffic
) -> tuple[list[str], list[str]]:
    """Seen by a fresh store (another process): acknowledged sign-ins that do not load,
    acknowledged sign-outs that load again."""
    checker = sentinel_store(topology, prefix)
    try:
        fresh = SessionManager(checker, KEYS, TIMES)
        lost = [c for c in traffic.created if await fresh.load(c) is None]
        back = [c for c in traffic.signed_out if await fresh.load(c) is not None]
        return lost, back
    finally:
        await checker.close()


async def test_a_failover_during_traffic_loses_no_acknowledged_write(
    topology: SentinelTopology, caplog: pytest.LogCaptureFixture
) -> None:
    """Sign-ins and sign-outs run while SENTINEL FAILOVER runs. Once the old master has
    been demoted and resynced (what it accepted unreplicated is gone then), a fresh store
    finds every acknowledged sign-in and none of the acknowledged sign-outs. Writes the
    switch refused were refused loudly (log line, counter); writes work again afterwards.
    The invalidation listener of another process follows the new master and hears what is
    published there."""
    caplog.set_level(logging.WARNING, "gateway.session")
    prefix = f"failover-{secrets.token_hex(4)}:"
    store = sentinel_store(topology, prefix)
    listener_store = sentinel_store(topology, prefix)
    manager = SessionManager(store, KEYS, TIMES)
    heard: list[str] = []
    states: list[bool] = []
    listening = asyncio.create_task(
        listener_store.listen_invalidations(heard.append, states.append)
    )
    refused_before = sample("hf_gateway_store_unreplicated_writes_total", {"operation": "set"})
    try:
        await until(lambda: states == [True])
        traffic = await traffic_through_failover(topology, manager, settled=topology.wait_switched)
        assert await acknowledged_but_undone(topology, prefix, traffic) == ([], [])
        assert await manager.load(await manager.create(identity("after"), tokens()))
        await store.publish_invalidation("s:after-the-failover")
        await until(lambda: "s:after-the-failover" in heard)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await store.close()
        await listener_store.close()
    assert traffic.created and traffic.signed_out, "the traffic acknowledged nothing"
    assert "sign-in" in traffic.refused, "no write fell into the switch: it tested nothing"
    assert sample("hf_gateway_store_unreplicated_writes_total", {"operation": "set"}) > (
        refused_before
    )
    assert any("replicas acknowledged" in r.getMessage() for r in caplog.records)
    assert any("moved from" in r.getMessage() for r in caplog.records)
    assert states[:2] == [True, False] and states[-2] is True  # lost, then back, then closed


async def test_with_two_replicas_a_write_waits_for_both_so_the_promoted_one_has_it(
    two_replicas: SentinelTopology,
) -> None:
    """While Sentinel promotes one replica, the old master goes on accepting writes that
    the other replica acknowledges, and that replica then resyncs from the new master,
    which never had them: a write acknowledged by one replica of two could be lost (it
    was: 210 of 2,670 sign-ins, 72 of 100 sign-outs). Waiting for every replica Sentinel
    could promote loses none, and writes resume within seconds on the new master."""
    prefix = f"failover2-{secrets.token_hex(4)}:"
    store = sentinel_store(two_replicas, prefix)
    manager = SessionManager(store, KEYS, TIMES)
    try:
        traffic = await traffic_through_failover(
            two_replicas, manager, settled=two_replicas.wait_promoted
        )
        assert await acknowledged_but_undone(two_replicas, prefix, traffic) == ([], [])
        assert await manager.load(await manager.create(identity("after"), tokens()))
    finally:
        await store.close()
    assert traffic.created and traffic.signed_out, "the traffic acknowledged nothing"
    assert traffic.refused, "no write fell into the switch: it tested nothing"


async def test_with_no_replica_writes_fail_within_the_wait_timeout_and_say_so(
    topology: SentinelTopology, caplog: pytest.LogCaptureFixture
) -> None:
    """The replica stops: a sign-in's write fails with StoreError after the 500 ms WAIT
    (not acknowledged, so nothing can be lost), with a log line and the counter; reads go
    on. The replica comes back: writes succeed again."""
    caplog.set_level(logging.WARNING, "gateway.session")
    store = sentinel_store(topology, f"noreplica-{secrets.token_hex(4)}:")
    try:
        await store.set("s:before", b"signed in", 60)
        counted = sample("hf_gateway_store_unreplicated_writes_total", {"operation": "set"})
        replica = await asyncio.to_thread(topology.stop_replica)
        try:
            started = time.monotonic()
            with pytest.raises(StoreError, match="not replicated"):
                await store.set("s:during", b"signed in", 60)
            assert time.monotonic() - started < 2.5
            assert await store.get("s:before") == b"signed in"
            assert await store.get("s:during") is not None  # on the master, but unacknowledged
        finally:
            await asyncio.to_thread(topology.start_replica, replica)
        await store.set("s:after", b"signed in", 60)
        assert await store.get("s:after") == b"signed in"
    finally:
        await store.close()
    assert sample("hf_gateway_store_unreplicated_writes_total", {"operation": "set"}) == (
        counted + 1
    )
    assert sample("hf_gateway_store_replicas_acknowledging", {}) == 1
    warnings = [r.getMessage() for r in caplog.records if "replicas acknowledged" in r.getMessage()]
    assert warnings == [
        "redis set: 0 of 1 replicas acknowledged within 500 ms; refused (503) so that "
        "a failover cannot lose it. Check the replicas."
    ]


async def test_a_gateway_on_sentinel_keeps_sign_ins_and_sign_outs_across_a_failover(
    topology: SentinelTopology, fake_hf: FakeHF, upstream: str, tmp_path: Path
) -> None:
    """``hf-gateway run`` with ``session.redis_sentinel``: alice and bob sign in over HTTP,
    bob signs out, the master fails over; afterwards alice's cookie still works and bob's
    copied cookie is still refused, and a new sign-in works on the new master."""
    process = GatewayProcess(
        tmp_path,
        issuer=fake_hf.issuer,
        upstream=upstream,
        session={
            "redis_url": None,
            "redis_sentinel": {"master": MASTER_NAME, "nodes": topology.nodes},
        },
    )
    await process.start()
    try:
        await signs_in_and_out_across_a_failover(topology, process, fake_hf)
    except AssertionError as failed:
        raise AssertionError(
            f"{failed}\ngateway log:\n{process.log.read_text()[-6000:]}"
        ) from failed
    finally:
        process.stop()


async def signs_in_and_out_across_a_failover(
    topology: SentinelTopology, process: GatewayProcess, fake_hf: FakeHF
) -> None:
    alice = await signed_in(process, fake_hf, "alice")
    bob = await signed_in(process, fake_hf, "bob")
    assert await status(process, alice) == 200
    assert await status(process, bob) == 200
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{process.url}/_gateway/logout",
            headers={**API, "Origin": process.url, "Cookie": f"{COOKIE}={bob}"},
        ) as answer:
            assert answer.status == 200
    old = await asyncio.to_thread(topology.failover)
    await asyncio.to_thread(topology.wait_switched, old)
    assert await status(process, alice) == 200
    assert await status(process, bob) == 401
    carol = await signed_in(process, fake_hf, "carol")
    assert await status(process, carol) == 200


async def signed_in(process: GatewayProcess, fake: FakeHF, username: str) -> str:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        await process.sign_in(http, fake, username)
    cookies = {cookie.key: cookie.value for cookie in jar}
    return cookies[COOKIE]


async def status(process: GatewayProcess, cookie: str, **extra: Any) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{process.url}/", headers={**API, "Cookie": f"{COOKIE}={cookie}"}, **extra
        ) as answer:
            return answer.status
