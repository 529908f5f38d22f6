"""``hf-gateway run`` as an operator meets it: the startup block, a port already taken,
the graceful drain on SIGTERM (readyz 503 at once, the listener open for drain_delay,
requests in flight finishing, websockets closed with 1001, event streams ended, exit
within the sum), and the supervisor of ``workers: 2`` (a worker killed with -9 replaced
while the other answers, no worker outliving the supervisor)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import parse_config
from gateway.devtools.fake_hf import FakeHF
from gateway.serve import store_description
from tests.support.gateway_process import GatewayProcess
from tests.support.harness import CLIENT_SECRET, base_raw_config
from tests.support.redis_server import RedisServer, free_port

EVENTS = {"Accept": "text/event-stream"}


def open_route(upstream: str) -> dict[str, Any]:
    """A public route, so the tests need no sign-in to have requests in flight."""
    return {
        "name": "open",
        "path": "/open",
        "upstream": upstream,
        "policy": "public",
        "strip_prefix": True,
    }


def gateway_process(
    folder: Path,
    fake: FakeHF,
    upstream: str,
    redis: RedisServer,
    server: dict[str, Any] | None = None,
) -> GatewayProcess:
    process = GatewayProcess(
        folder, issuer=fake.issuer, upstream=upstream, redis_url=redis.url, server=server
    )
    config = process.read_config()
    config["routes"].insert(0, open_route(upstream))
    process.write_config(config)
    return process


@pytest.fixture
async def stopped_at_end(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[GatewayProcess]]:
    """Processes a test started; whatever is still running at its end is killed. They
    run with the fault handler on, so one that hangs can be asked where (SIGABRT)."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    processes: list[GatewayProcess] = []
    yield processes
    for process in processes:
        if process.process is not None and process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout=10)


async def wait_for(condition: Any, within: float, what: str) -> None:
    """Poll ``condition()`` (a plain function) until it holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.05)


async def exit_code(process: GatewayProcess, within: float) -> int:
    assert process.process is not None
    popen = process.process
    try:
        await wait_for(lambda: popen.poll() is not None, within, "the gateway exits")
    except AssertionError:
        popen.send_signal(signal.SIGABRT)  # with PYTHONFAULTHANDLER=1: where it hung
        await asyncio.sleep(1)
        raise AssertionError(f"the gateway did not exit:\n{process.output()[-8000:]}") from None
    code = popen.returncode
    assert code is not None
    return code


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def worker_pids(log: str) -> dict[int, int]:
    """slot -> pid of the latest worker the supervisor started in that slot."""
    found: dict[int, int] = {}
    for slot, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log):
        found[int(slot)] = int(pid)
    return found


# ---------------------------------------------------------------------------- start


async def test_the_startup_block_names_version_listener_urls_routes_and_store(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    process = gateway_process(tmp_path, fake_hf, upstream, redis_server)
    stopped_at_end.append(process)
    await process.start()
    log = process.output()
    from gateway import __version__

    assert f"hf-gateway {__version__} listening on 127.0.0.1:{process.port} (1 process)" in log
    assert f"public_url {process.url}, callback URL {process.url}/_gateway/callback" in log
    assert f"store: redis {redis_server.url} (prefix e2e-{process.port}:)" in log
    assert f"route open: host * path /open -> {upstream} (policy public)" in log
    assert f"route tool: host * path / -> {upstream} (policy authenticated)" in log
    assert f"route writers: host * path /writers -> {upstream} (policy writers)" in log
    assert "stop: readyz 503, then 0s (drain_delay)" in log


def test_the_store_line_never_shows_a_redis_password() -> None:
    raw = base_raw_config(8080, "http://127.0.0.1:1", "http://127.0.0.1:2")
    raw["session"] = {
        "store": "redis",
        "redis_url": "redis://gateway:hunter2-secret@redis.internal:6379/0",
        "secret": "s" * 40,
    }
    line = store_description(parse_config(raw))
    assert "hunter2" not in line
    assert line == "redis redis://gateway:***@redis.internal:6379/0 (prefix hfgw:)"


def run_blocking(process: GatewayProcess, within: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(process.config_path)],
        capture_output=True,
        text=True,
        timeout=within,
        env={**os.environ, "TEST_CLIENT_SECRET": CLIENT_SECRET},
        check=False,
    )


def taken_port(port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT, as another gateway's worker holds it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two workers"])
def test_a_busy_port_is_one_line_on_stderr_and_exit_2(
    workers: int, fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Even a port held with SO_REUSEPORT (which a second gateway could share) counts as
    taken; no worker is started and nothing is restarted."""
    process = gateway_process(tmp_path, fake_hf, upstream, redis_server, {"workers": workers})
    with taken_port(process.port):
        result = run_blocking(process)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"hf-gateway: cannot listen on 127.0.0.1:{process.port}: Address already in use"
    ]
    assert "worker" not in result.stdout + result.stderr


def test_a_busy_metrics_port_is_one_line_on_stderr_and_exit_2(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    metrics = free_port()
    process = gateway_process(
        tmp_path, fake_hf, upstream, redis_server, {"metrics_listen": f"127.0.0.1:{metrics}"}
    )
    with taken_port(metrics):
        result = run_blocking(process)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"hf-gateway: cannot listen on metrics_listen 127.0.0.1:{metrics}: Address already in use"
    ]


async def test_a_free_port_starts_its_positive_twin(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    """The same configuration on a free port serves (so exit 2 above is the port's doing)."""
    process = gateway_process(tmp_path, fake_hf, upstream, redis_server)
    stopped_at_end.append(process)
    await process.start()
    async with aiohttp.ClientSession() as http:
        async with http.get(process.url + "/open/api/target") as response:
            assert response.status == 200


# ---------------------------------------------------------------------------- drain


async def test_sigterm_drains_a_slow_request_an_event_stream_and_a_websocket(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    """readyz turns 503 at once; new connections are still served for drain_delay; then
    the listener closes, the websocket gets 1001, the event stream ends cleanly, the slow
    request finishes, and the process exits long before drain_delay + shutdown_timeout."""
    drain_delay, shutdown_timeout = 2, 6
    process = gateway_process(
        tmp_path,
        fake_hf,
        upstream,
        redis_server,
        {"drain_delay": drain_delay, "shutdown_timeout": shutdown_timeout},
    )
    stopped_at_end.append(process)
    await process.start()
    url = process.url
    async with aiohttp.ClientSession() as http:
        slow = asyncio.ensure_future(_text(http, url + "/open/api/slow?delay=3.5"))
        stream = await http.get(url + "/open/api/sse?count=1000&interval=0.1", headers=EVENTS)
        assert stream.status == 200
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"id: 0")
        ws = await http.ws_connect(url.replace("http", "ws") + "/open/api/ws", protocols=["echo"])
        assert (await ws.receive_str(timeout=5)).startswith("hello")
        await asyncio.sleep(0.3)  # the slow request is upstream now
        process.signal(signal.SIGTERM)
        stopped = time.monotonic()

        # A new connection each time: draining closes idle keep-alive connections, and a
        # client reusing one races with that close (the client's error, not a refusal).
        no_reuse = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=no_reuse) as fresh:
            await wait_for_status(fresh, url + "/_gateway/readyz", 503, within=1.0)
            async with fresh.get(url + "/_gateway/readyz") as response:
                assert (await response.json())["status"] == "draining"
            async with fresh.get(url + "/open/api/target") as response:
                assert response.status == 200  # still accepted during drain_delay
                assert response.headers.get("Connection", "").lower() == "close"
        assert time.monotonic() - stopped < drain_delay

        close = await ws.receive(timeout=drain_delay + 3)
        assert close.type is aiohttp.WSMsgType.CLOSE
        assert close.data == 1001
        assert time.monotonic() - stopped >= drain_delay - 0.2

        rest = await asyncio.wait_for(stream.content.read(), timeout=3)  # ends, no error
        assert stream.content.at_eof()
        assert rest.endswith(b"\n\n") or rest == b""
        assert await asyncio.wait_for(slow, timeout=10) == (200, "finally")

        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as late:
                async with late.get(url + "/_gateway/healthz"):
                    pass
    assert await exit_code(process, within=shutdown_timeout + drain_delay + 2) == 0
    log = process.output()
    took = time.monotonic() - stopped
    assert took < drain_delay + 3.5 + 2, (took, log)  # the slow one, not the timeout
    assert "1 event streams ended" in log
    assert "Traceback" not in log


async def test_a_request_that_outlasts_shutdown_timeout_is_cut_once_it_runs_out(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    """Exit comes within drain_delay + shutdown_timeout (and a second), not after twice
    shutdown_timeout as aiohttp's own shutdown would wait for a handler it cancelled."""
    drain_delay, shutdown_timeout = 1, 3
    process = gateway_process(
        tmp_path,
        fake_hf,
        upstream,
        redis_server,
        {"drain_delay": drain_delay, "shutdown_timeout": shutdown_timeout},
    )
    stopped_at_end.append(process)
    await process.start()
    async with aiohttp.ClientSession() as http:
        slow = asyncio.ensure_future(_text(http, process.url + "/open/api/slow?delay=7"))
        await asyncio.sleep(0.3)
        process.signal(signal.SIGTERM)
        stopped = time.monotonic()
        code = await exit_code(process, within=drain_delay + shutdown_timeout + 5)
        took = time.monotonic() - stopped
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(slow, timeout=5)
    assert code == 0
    assert drain_delay + shutdown_timeout - 0.2 <= took < drain_delay + shutdown_timeout + 1.5
    assert "1 requests still running after shutdown_timeout: cut" in process.output()


async def _text(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def wait_for_status(
    http: aiohttp.ClientSession, url: str, status: int, *, within: float
) -> None:
    deadline = time.monotonic() + within
    while True:
        async with http.get(url) as response:
            if response.status == status:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer {status} within {within}s")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- workers


async def two_workers(
    folder: Path,
    fake: FakeHF,
    upstream: str,
    redis: RedisServer,
    stopped_at_end: list[GatewayProcess],
) -> GatewayProcess:
    process = gateway_process(folder, fake, upstream, redis, {"workers": 2, "shutdown_timeout": 2})
    stopped_at_end.append(process)
    await process.start(ready_within=60)
    await wait_for(
        lambda: "ready: 2 workers listening" in process.output(), 60, "both workers ready"
    )
    return process


async def answered(url: str) -> int:
    """One request on a new connection."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            await response.read()
            return response.status


async def test_a_worker_killed_with_9_is_replaced_while_the_other_answers(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    process = await two_workers(tmp_path, fake_hf, upstream, redis_server, stopped_at_end)
    first = worker_pids(process.output())
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    await wait_for(lambda: not pid_alive(first[0]), 10, "the killed worker is gone")

    statuses = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the other worker answers every new connection
        statuses.append(await answered(process.url + "/open/api/target"))
        await asyncio.sleep(0.05)
    assert set(statuses) == {200}

    def replaced() -> bool:
        return worker_pids(process.output()).get(0) not in (None, first[0])

    await wait_for(replaced, 60, "a new worker in slot 0")
    await wait_for(
        lambda: process.output().count("ready: 2 workers listening") == 2, 60, "it is ready"
    )
    log = process.output()
    assert f"worker 0 (pid {first[0]}) exited unasked with signal SIGKILL" in log
    now = worker_pids(log)
    assert now[1] == first[1]  # the other one was left alone
    assert await answered(process.url + "/open/api/target") == 200

    process.signal(signal.SIGTERM)
    assert await exit_code(process, within=15) == 0
    assert not pid_alive(now[0]) and not pid_alive(now[1])


async def test_no_worker_outlives_a_supervisor_killed_with_9(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    """The workers see their pipe to the supervisor end, drain (drain_delay 0 here) and exit."""
    process = await two_workers(tmp_path, fake_hf, upstream, redis_server, stopped_at_end)
    pids = worker_pids(process.output())
    assert process.process is not None
    process.process.kill()
    process.process.wait(timeout=10)
    await wait_for(lambda: not any(pid_alive(pid) for pid in pids.values()), 15, "the workers exit")
    assert "the supervisor is gone: stopping" in process.output()


async def test_workers_that_keep_dying_at_start_make_the_supervisor_give_up_loudly(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path, stopped_at_end: Any
) -> None:
    """Five quick exits in a row (here: every worker killed as soon as it is seen) end the
    supervisor with exit 1 and one error line, instead of a restart loop."""
    process = await two_workers(tmp_path, fake_hf, upstream, redis_server, stopped_at_end)
    assert process.process is not None
    popen = process.process
    killed: set[int] = set()
    deadline = time.monotonic() + 60
    while popen.poll() is None and time.monotonic() < deadline:
        for pid in worker_pids(process.output()).values():
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.05)
    assert popen.poll() == 1
    log = process.output()
    assert "(5 in a row, the last with signal SIGKILL); giving up" in log
    assert len(killed) == 5
    assert not any(pid_alive(pid) for pid in killed)
