"""Reloading ``hf-gateway run`` without a restart: SIGHUP and watched files. A good
configuration applies to new requests while a request in flight finishes on the one it
started with; a bad one is refused with every problem and the old one keeps serving; a
field that needs a restart is refused by name; every worker reloads, once."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.devtools.fake_hf import FakeHF
from tests.integration.test_lifecycle import (
    answered,
    gateway_process,
    stopped_at_end,  # noqa: F401 - a fixture
    wait_for,
    worker_pids,
)
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer

API = {"Accept": "application/json"}


def fresh_route(upstream: str) -> dict[str, Any]:
    return {
        "name": "fresh",
        "path": "/fresh",
        "upstream": upstream,
        "policy": "public",
        "strip_prefix": True,
    }


def reload_lines(process: GatewayProcess, kind: str) -> list[str]:
    return [line for line in process.output().splitlines() if f"config reload {kind}" in line]


async def status(url: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=API) as response:
            await response.read()
            return response.status


async def started(
    folder: Path,
    fake: FakeHF,
    upstream: str,
    redis: RedisServer,
    processes: list[GatewayProcess],
    server: dict[str, Any] | None = None,
) -> GatewayProcess:
    process = gateway_process(folder, fake, upstream, redis, server)
    processes.append(process)
    await process.start(ready_within=60)
    return process


async def test_sighup_applies_a_good_config_to_new_requests_only(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped_at_end: list[GatewayProcess],  # noqa: F811 - the fixture
) -> None:
    """The slow request began while /open was public and finishes so; after the reload
    /open asks for a sign-in and the new route answers."""
    process = await started(
        tmp_path, fake_hf, upstream, redis_server, stopped_at_end, {"watch_config": False}
    )
    assert await status(process.url + "/fresh/api/target") == 401  # "/" is the tool route
    async with aiohttp.ClientSession() as http:
        slow = asyncio.ensure_future(_get(http, process.url + "/open/api/slow?delay=3"))
        await asyncio.sleep(0.3)
        config = process.read_config()
        config["routes"][0]["policy"] = "authenticated"
        config["routes"].insert(0, fresh_route(config["routes"][0]["upstream"]))
        process.write_config(config)
        process.signal(signal.SIGHUP)
        await wait_for(lambda: reload_lines(process, "applied"), 10, "the reload")
        assert await status(process.url + "/fresh/api/target") == 200
        assert await status(process.url + "/open/api/target") == 401
        assert not slow.done()
        assert await asyncio.wait_for(slow, 10) == (200, "finally")
    (line,) = reload_lines(process, "applied")
    assert "(SIGHUP): 4 routes (1 added, 0 removed, 1 changed), 1 policies (0 added" in line


async def test_a_bad_config_is_refused_with_every_problem_and_the_old_one_serves(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped_at_end: list[GatewayProcess],  # noqa: F811 - the fixture
) -> None:
    """Then a change of fields only a restart can apply is refused naming each; then the
    good file again applies (the positive twin)."""
    process = await started(
        tmp_path, fake_hf, upstream, redis_server, stopped_at_end, {"watch_config": False}
    )
    good = process.read_config()
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["routes"][0]["upstream"] = "ftp://nowhere"
    bad["session"]["idle_timeout"] = "soon"
    process.write_config(bad)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: reload_lines(process, "refused"), 10, "the refusal")
    (line,) = reload_lines(process, "refused")
    assert "(SIGHUP): 2 problems, still serving the previous configuration" in line
    assert "routes[0].upstream: upstream 'ftp://nowhere' has no http:// or https://" in line
    assert "session.idle_timeout: must be a duration" in line
    assert await status(process.url + "/open/api/target") == 200

    moved = yaml.safe_load(yaml.safe_dump(good))
    moved["server"]["listen"] = "127.0.0.1:1"
    moved["server"]["workers"] = 3
    moved["routes"].insert(0, fresh_route(good["routes"][0]["upstream"]))
    process.write_config(moved)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: len(reload_lines(process, "refused")) == 2, 10, "the 2nd refusal")
    line = reload_lines(process, "refused")[1]
    assert f"server.listen: cannot change while running (running '127.0.0.1:{process.port}'" in line
    assert "server.workers: cannot change while running (running 1, the file has 3)" in line
    assert await status(process.url + "/fresh/api/target") == 401  # not applied

    del moved["server"]["workers"]
    moved["server"]["listen"] = good["server"]["listen"]
    process.write_config(moved)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: reload_lines(process, "applied"), 10, "the reload")
    assert await status(process.url + "/fresh/api/target") == 200


async def test_a_changed_policy_file_or_config_file_reloads_by_itself_once(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped_at_end: list[GatewayProcess],  # noqa: F811 - the fixture
) -> None:
    process = await started(tmp_path, fake_hf, upstream, redis_server, stopped_at_end)
    policies = tmp_path / "policies" / "tools.yaml"
    document = yaml.safe_load(policies.read_text())
    document["policies"]["everyone"] = {"allow": [{"authenticated": True}]}
    policies.write_text(yaml.safe_dump(document))
    await wait_for(lambda: reload_lines(process, "applied"), 10, "the policy file reload")
    (line,) = reload_lines(process, "applied")
    assert "(a watched file changed): 3 routes (0 added, 0 removed, 0 changed)" in line
    assert "2 policies (1 added, 0 removed, 0 changed)" in line

    config = process.read_config()
    config["routes"].insert(0, fresh_route(config["routes"][0]["upstream"]))
    process.write_config(config)
    await wait_for(lambda: len(reload_lines(process, "applied")) == 2, 10, "the config reload")
    assert await status(process.url + "/fresh/api/target") == 200
    await asyncio.sleep(2.5)  # two more looks at the files: nothing new to reload
    assert len(reload_lines(process, "applied")) == 2
    assert not reload_lines(process, "refused")


async def test_every_worker_reloads_on_sighup_and_on_a_file_change_once(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped_at_end: list[GatewayProcess],  # noqa: F811 - the fixture
) -> None:
    """With workers: 2 the supervisor forwards SIGHUP and, watching the files itself,
    asks each worker to reload once per change."""
    process = await started(
        tmp_path,
        fake_hf,
        upstream,
        redis_server,
        stopped_at_end,
        {"workers": 2, "watch_config": False, "shutdown_timeout": 2},
    )
    await wait_for(lambda: "ready: 2 workers listening" in process.output(), 60, "workers")
    pids = set(worker_pids(process.output()).values())
    config = process.read_config()
    config["server"]["watch_config"] = True
    config["routes"].insert(0, fresh_route(config["routes"][0]["upstream"]))
    process.write_config(config)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: len(reload_lines(process, "applied")) == 2, 20, "both reload")
    assert _pids(reload_lines(process, "applied")) == pids
    assert all("(SIGHUP)" in line for line in reload_lines(process, "applied"))
    for _ in range(6):  # new connections, spread over both workers by the kernel
        assert await answered(process.url + "/fresh/api/target") == 200

    config["routes"][0]["path"] = "/fresher"
    process.write_config(config)
    await wait_for(lambda: len(reload_lines(process, "applied")) == 4, 20, "both reload again")
    changed = reload_lines(process, "applied")[2:]
    assert _pids(changed) == pids
    assert all("(a watched file changed)" in line for line in changed)
    await asyncio.sleep(2.5)
    assert len(reload_lines(process, "applied")) == 4  # once per worker, not twice
    assert await answered(process.url + "/fresher/api/target") == 200


def _pids(lines: list[str]) -> set[int]:
    """The process ids of log lines, JSON (``"pid": N``) or text (``[N]``)."""
    found = (re.findall(r'"pid": (\d+)|\[(\d+)\]', line)[:1] for line in lines)
    return {int(json_pid or text_pid) for hit in found for json_pid, text_pid in hit}


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


def access_lines(process: GatewayProcess, target: str) -> int:
    return sum(
        1
        for line in process.output().splitlines()
        if '"logger": "gateway.access"' in line and f'"target": "{target}"' in line
    )


async def test_a_reload_switches_access_lines_and_refuses_a_new_format(
    fake_hf: FakeHF,
    upstream: str,
    redis_server: RedisServer,
    tmp_path: Path,
    stopped_at_end: list[GatewayProcess],  # noqa: F811 - the fixture
) -> None:
    """logging.access off by SIGHUP: the next request writes no access line (its twin
    before the reload did); logging.format is refused by name and JSON lines go on."""
    process = await started(
        tmp_path, fake_hf, upstream, redis_server, stopped_at_end, {"watch_config": False}
    )
    target = "/open/api/target"
    assert await status(process.url + target) == 200
    await wait_for(lambda: access_lines(process, target) == 1, 5, "the access line")

    config = process.read_config()
    config["logging"] = {"access": False}
    process.write_config(config)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: reload_lines(process, "applied"), 10, "the reload")
    assert await status(process.url + target) == 200
    await asyncio.sleep(0.5)  # lines are written within 0.1 s
    assert access_lines(process, target) == 1

    config["logging"] = {"access": False, "format": "text"}
    process.write_config(config)
    process.signal(signal.SIGHUP)
    await wait_for(lambda: reload_lines(process, "refused"), 10, "the refusal")
    (line,) = reload_lines(process, "refused")
    assert (
        "logging.format: cannot change while running (running 'json', the file has 'text')" in line
    )
    assert line.startswith("{")  # still JSON
