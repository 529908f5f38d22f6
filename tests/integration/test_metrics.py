"""Scraping a real ``hf-gateway run`` after real traffic: real Redis, the fake Hugging Face,
an echo upstream. (Adding up two real worker processes: test_metrics_listener.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
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

    async def start(**server: Any) -> GatewayProcess:
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
        await gateway.start()
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
