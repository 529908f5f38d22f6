"""Scraping a real ``hf-gateway run`` after real traffic: real Redis, the fake Hugging Face,
an echo upstream; with one process and with two workers under the supervisor (one of them
killed with -9 and replaced). (The listener adding up stand-in processes:
test_metrics_listener.py.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gateway.devtools.fake_hf import FakeHF
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import API
from tests.support.redis_server import RedisServer

ALICE_READ = "hf_alice_demo_read_token"
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

Launch = Callable[..., Awaitable[GatewayProcess]]


class Scrape:
    """One scrape's samples; ``total(name, **labels)`` sums those whose labels include these."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)


async def scrape(gateway: GatewayProcess, accept: str = "") -> Scrape:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.metrics_url, headers=headers) as response:
            assert response.status == 200
            return Scrape(await response.text())


async def call(url: str, token: str | None = None) -> int:
    headers = dict(API)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        await response.read()
        return response.status


@pytest.fixture
async def launch(
    tmp_path: Path, fake_hf: FakeHF, upstream: str, redis_server: RedisServer
) -> AsyncIterator[Launch]:
    started: list[GatewayProcess] = []

    async def start(ready_within: float = 10.0, **server: Any) -> GatewayProcess:
        folder = tmp_path / f"gateway-{len(started)}"
        folder.mkdir()
        gateway = GatewayProcess(
            folder,
            issuer=fake_hf.issuer,
            upstream=upstream,
            redis_url=redis_server.url,
            metrics=True,
            server=server,
        )
        started.append(gateway)
        await gateway.start(ready_within=ready_within)
        await wait_for_metrics(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


async def wait_for_metrics(gateway: GatewayProcess) -> None:
    """The listener may come up just after readyz turns 200."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(gateway.metrics_url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"no metrics listener:\n{gateway.log.read_text()}")


async def drive_traffic(gateway: GatewayProcess, fake_hf: FakeHF) -> None:
    """Two sign-ins (alice, bob), an allowed and a denied request, an anonymous one,
    bearer tokens (looked up, cached, made up) and a websocket opened and closed."""
    for username, path, status in (("alice", "/api/echo", 200), ("bob", "/writers/x", 403)):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await gateway.sign_in(http, fake_hf, username)
            async with http.get(gateway.url + path, headers=API) as response:
                assert response.status == status
    assert await call(gateway.url + "/api/echo") == 401
    for _ in range(3):
        assert await call(gateway.url + "/api/echo", ALICE_READ) == 200
    assert await call(gateway.url + "/api/echo", "hf_made_up_token") == 401


async def test_a_scrape_after_traffic_finds_every_series(launch: Launch, fake_hf: FakeHF) -> None:
    gateway = await launch()
    await drive_traffic(gateway, fake_hf)
    found = await scrape(gateway)
    assert found.total("hf_gateway_build_info") == 1
    assert found.total("hf_gateway_sign_ins_total", event="started", reason="new") == 2
    assert found.total("hf_gateway_sign_ins_total", event="completed", reason="ok") == 2
    assert found.total("hf_gateway_sign_ins_total", event="failed") == 0
    assert found.total("hf_gateway_whoami_lookups_total", result="ok") == 1
    assert found.total("hf_gateway_whoami_lookups_total", result="rejected") == 1
    assert found.total("hf_gateway_token_cache_lookups_total", result="hit") == 2
    assert found.total("hf_gateway_token_cache_lookups_total", result="miss") == 2
    assert found.total("hf_gateway_store_duration_seconds_count") > 0
    assert found.total("hf_gateway_store_errors_total") == 0
    assert found.total("hf_gateway_store_unreplicated_writes_total") == 0
    assert found.total("hf_gateway_provider_rate_limited_total") == 0
    requests = "hf_gateway_requests_total"
    # alice's echo, three bearer calls, and the two sign-ins landing on the tool's "/"
    assert found.total(requests, route="tool", method="GET", status="2xx") == 6
    assert found.total(requests, route="tool", status="4xx") == 2  # anonymous, made-up token
    assert found.total(requests, route="writers", status="4xx") == 1
    assert found.total("hf_gateway_decisions_total", route="writers", decision="deny") == 1
    assert found.total("hf_gateway_decisions_total", route="tool", decision="allow") == 6
    assert found.total("hf_gateway_upstream_duration_seconds_count", route="tool") == 6
    # the warm cache reports in batches at each miss: the first read of each session is one
    assert found.total("hf_gateway_warm_cache_lookups_total", result="miss") >= 2
    for always in (
        "hf_gateway_token_refreshes_total",
        "hf_gateway_revalidations_total",
        "hf_gateway_bearer_throttled_total",
        "hf_gateway_warm_cache_lookups_total",
        "process_resident_memory_bytes",
    ):
        assert found.has(always), always


async def test_open_websockets_are_counted_while_open(launch: Launch, fake_hf: FakeHF) -> None:
    gateway = await launch()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await gateway.sign_in(http, fake_hf, "alice")
        ws = await http.ws_connect(f"{gateway.url}/api/ws", protocols=("echo",))
        assert (await ws.receive_str(timeout=5)).startswith("hello ")
        assert (await scrape(gateway)).total("hf_gateway_open_websockets") == 1
        await ws.close()
    for _ in range(200):
        if (await scrape(gateway)).total("hf_gateway_open_websockets") == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the websocket is still counted after it closed")


async def test_prometheus_gets_openmetrics(launch: Launch) -> None:
    gateway = await launch()
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.metrics_url, headers={"Accept": OPENMETRICS}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await response.text()
    assert text.endswith("# EOF\n")
    assert "hf_gateway_sign_ins_total" in text


async def test_the_main_listener_routes_metrics_to_the_tool(
    launch: Launch, fake_hf: FakeHF
) -> None:
    """/metrics on the gateway's own port is a path of the tool like any other: anonymous
    callers are refused, a signed-in one reaches the upstream, nobody gets the gateway's."""
    gateway = await launch()
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/metrics", headers=API) as response:
            assert response.status == 401
            assert "hf_gateway_build_info" not in await response.text()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await gateway.sign_in(http, fake_hf, "alice")
        async with http.get(gateway.url + "/metrics") as response:
            assert response.status == 200
            page = await response.text()
    assert "alice" in page  # the echo upstream's page, showing who the gateway let in
    assert "hf_gateway_build_info" not in page and "# TYPE" not in page
    assert (await scrape(gateway)).has("hf_gateway_build_info")  # its positive twin


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/metrics", 405),
        ("PUT", "/metrics", 405),
        ("HEAD", "/metrics", 405),
        ("GET", "/", 404),
        ("GET", "/metrics/", 404),
        ("GET", "/_gateway/readyz", 404),
        ("GET", "/api/echo", 404),
    ],
)
async def test_the_metrics_listener_answers_only_get_metrics(
    launch: Launch, method: str, path: str, status: int
) -> None:
    gateway = await launch()
    url = gateway.metrics_url.removesuffix("/metrics") + path
    async with aiohttp.ClientSession() as http, http.request(method, url) as response:
        assert response.status == status
        assert "hf_gateway_" not in await response.text()


# ---------------------------------------------------------------------------- two workers


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


def worker_pids(log: str) -> dict[int, int]:
    """slot -> pid of the latest worker the supervisor started in that slot."""
    return {
        int(slot): int(pid) for slot, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log)
    }


def multiprocess_dir(pid: int) -> Path:
    """Where the workers write their series: the supervisor set it in their environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        name, _, value = entry.partition(b"=")
        if name == b"PROMETHEUS_MULTIPROC_DIR":
            return Path(value.decode())
    raise AssertionError(f"worker {pid} has no PROMETHEUS_MULTIPROC_DIR")


def recorded_by(directory: Path, pid: int, name: str, **labels: str) -> float:
    """What one worker's own files hold for a series (the listener adds these up)."""
    files = [str(f) for f in directory.glob(f"*_{pid}.db")]
    return sum(
        s.value
        for family in MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def anonymous_on_new_connections(gateway: GatewayProcess, count: int) -> None:
    """``count`` requests, each on a connection of its own (the kernel spreads connections
    over the workers' SO_REUSEPORT sockets, not requests)."""
    for _ in range(count):
        assert await call(gateway.url + "/api/echo") == 401


async def test_two_workers_add_up_to_one_gateway_and_a_killed_one_is_counted_and_forgotten(
    launch: Launch, fake_hf: FakeHF
) -> None:
    gateway = await launch(ready_within=60, workers=2, shutdown_timeout=2)
    await until(lambda: "ready: 2 workers listening" in gateway.output(), 60, "both ready")
    first = worker_pids(gateway.output())
    assert len(first) == 2
    directory = multiprocess_dir(first[0])
    found = await scrape(gateway)
    assert found.total("hf_gateway_workers") == 2
    assert found.total("hf_gateway_worker_restarts_total") == 0
    assert {
        s.labels["reason"] for s in found.samples if s.name.startswith("hf_gateway_worker_r")
    } == {
        "signal",
        "error",
        "exited",
    }
    assert found.text.count("# TYPE hf_gateway_workers ") == 1  # once, not once per worker too

    await drive_traffic(gateway, fake_hf)
    await anonymous_on_new_connections(gateway, 40)
    found = await scrape(gateway)
    requests = "hf_gateway_requests_total"
    # each answer counted once in the sum, whichever worker gave it
    assert found.total(requests, route="tool", method="GET", status="2xx") == 6
    assert found.total(requests, route="tool", status="4xx") == 42
    assert found.total(requests, route="writers", status="4xx") == 1
    assert found.total("hf_gateway_sign_ins_total", event="completed", reason="ok") == 2
    assert found.total("hf_gateway_build_info") == 1
    by_worker = [recorded_by(directory, pid, requests) for pid in first.values()]
    assert all(n > 0 for n in by_worker), by_worker  # both workers served some
    assert sum(by_worker) == found.total(requests)  # the gateway's own pages included

    # alice's websocket on one worker; that worker is then killed with -9
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await gateway.sign_in(http, fake_hf, "alice")
        ws = await http.ws_connect(f"{gateway.url}/api/ws", protocols=("echo",))
        assert (await ws.receive_str(timeout=5)).startswith("hello ")
        assert (await scrape(gateway)).total("hf_gateway_open_websockets") == 1
        holder = next(
            pid
            for pid in first.values()
            if recorded_by(directory, pid, "hf_gateway_open_websockets") == 1
        )
        counted = (await scrape(gateway)).total(requests)
        os.kill(holder, signal.SIGKILL)
        await ws.receive(timeout=10)  # the tunnel died with its worker
        await ws.close()
    slot = next(s for s, pid in first.items() if pid == holder)
    await until(
        lambda: worker_pids(gateway.output()).get(slot) not in (None, holder), 60, "replaced"
    )
    await until(
        lambda: gateway.output().count("ready: 2 workers listening") == 2, 60, "ready again"
    )
    found = await scrape(gateway)
    assert found.total("hf_gateway_worker_restarts_total", reason="signal") == 1
    assert found.total("hf_gateway_worker_restarts_total") == 1
    assert found.total("hf_gateway_workers") == 2
    assert found.total("hf_gateway_open_websockets") == 0  # the dead worker's gauge is gone
    assert not list(directory.glob(f"gauge_live*_{holder}.db"))
    assert found.total(requests) >= counted  # its counters still count: no reset
    assert found.total("hf_gateway_sign_ins_total", event="completed", reason="ok") == 3
