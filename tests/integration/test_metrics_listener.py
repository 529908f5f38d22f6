"""The metrics listener over real sockets, alone and adding up real worker processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics_listener import (
    MULTIPROC_ENV,
    prepare_multiprocess,
    start_metrics_listener,
    worker_exited,
)
from tests.support.redis_server import free_port

# A stand-in worker: imports the gateway's series with the multiprocess directory set,
# records a known amount, says so, and stays alive until its stdin closes.
WORKER = """
import sys
from gateway import metrics
metrics.SIGN_INS.labels("completed", "ok").inc(int(sys.argv[1]))
metrics.OPEN_WEBSOCKETS.labels("tools").inc()
print("recorded", flush=True)
sys.stdin.read()
"""


async def scrape(url: str, accept: str = "") -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return None


@pytest.fixture
async def single() -> AsyncIterator[str]:
    port = free_port()
    stop = await start_metrics_listener(f"127.0.0.1:{port}", multiprocess_dir=None)
    yield f"http://127.0.0.1:{port}"
    await stop()


async def test_serves_the_prometheus_text_format(single: str) -> None:
    status, content_type, text = await scrape(f"{single}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert sample(text, "hf_gateway_build_info", {}) == 1.0


async def test_serves_openmetrics_when_asked(single: str) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, content_type, text = await scrape(f"{single}/metrics", accept)
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")


@pytest.mark.parametrize("path", ["/", "/metrics/", "/metricsx", "/_gateway/healthz", "/x"])
async def test_other_paths_are_not_found(single: str, path: str) -> None:
    status, _, text = await scrape(f"{single}{path}")
    assert status == 404
    assert "hf_gateway" not in text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
async def test_only_get_is_answered(single: str, method: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{single}/metrics") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET"
            assert "hf_gateway" not in await response.text()


async def test_a_taken_port_raises_and_leaves_nothing_running(single: str) -> None:
    with pytest.raises(OSError):
        await start_metrics_listener(single.removeprefix("http://"), multiprocess_dir=None)


async def test_stop_closes_the_port() -> None:
    port = free_port()
    stop = await start_metrics_listener(f"127.0.0.1:{port}", multiprocess_dir=None)
    await stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(f"http://127.0.0.1:{port}/metrics")


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Iterator[Path]:
    """prepare_multiprocess sets the variable for this process; put it back afterwards so
    no later test's subprocess inherits it."""
    before = os.environ.get(MULTIPROC_ENV)
    directory = tmp_path / "prometheus"
    yield directory
    if before is None:
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        os.environ[MULTIPROC_ENV] = before


def start_worker(count: int) -> subprocess.Popen[str]:
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", WORKER, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "recorded"
    return worker


def end_worker(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    worker.wait(timeout=60)
    if worker.stdout is not None:
        worker.stdout.close()


async def poll(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_adds_up_every_worker_and_forgets_dead_workers_gauges(multiproc_dir: Path) -> None:
    multiproc_dir.mkdir()
    (multiproc_dir / "counter_1.db").write_bytes(b"left by an earlier run")
    prepare_multiprocess(multiproc_dir)
    assert os.environ[MULTIPROC_ENV] == str(multiproc_dir)
    assert not (multiproc_dir / "counter_1.db").exists()
    workers = [start_worker(2), start_worker(3)]
    port = free_port()
    stop = await start_metrics_listener(f"127.0.0.1:{port}", multiprocess_dir=multiproc_dir)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _, _, text = await scrape(url)
        completed = {"event": "completed", "reason": "ok"}
        assert sample(text, "hf_gateway_sign_ins_total", completed) == 5.0
        assert sample(text, "hf_gateway_open_websockets", {"route": "tools"}) == 2.0
        assert sample(text, "hf_gateway_build_info", {}) == 1.0  # "max": one series, not two
        end_worker(workers[0])
        worker_exited(workers[0].pid)

        async def one_websocket_left() -> bool:
            _, _, text = await scrape(url)
            return sample(text, "hf_gateway_open_websockets", {"route": "tools"}) == 1.0

        await poll(one_websocket_left)
        _, _, text = await scrape(url)
        assert sample(text, "hf_gateway_sign_ins_total", completed) == 5.0  # counters stay
    finally:
        await stop()
        for worker in workers:
            if worker.poll() is None:
                end_worker(worker)
