"""``check-config --connect`` (gateway/connect_check.py) against a real redis-server and
the fake Hugging Face provider, each beside the twin that must fail: a closed port fails
fast, a provider that names another issuer fails, and no detail ever shows a password."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio

from gateway.config import GatewayConfig, parse_config
from gateway.connect_check import (
    ConnectResult,
    check_connections,
    format_results,
    redact_url,
)
from gateway.devtools.fake_hf import FakeHF
from tests.support.redis_server import RedisServer, free_port
from tests.support.redis_topology import MASTER_NAME, SentinelTopology
from tests.unit.conftest import minimal_raw_config

PASSWORD = "s3cret-redis-pass"  # noqa: S105 - a test value that must never be printed


def _config(issuer: str, **session: Any) -> GatewayConfig:
    return parse_config(
        minimal_raw_config(provider={"issuer": issuer, "api_url": issuer}, session=session)
    )


def _by_name(results: list[ConnectResult]) -> dict[str, ConnectResult]:
    return {r.name: r for r in results}


async def test_a_reachable_redis_and_provider_are_ok(
    redis_server: RedisServer, fake_hf: FakeHF
) -> None:
    assert fake_hf.issuer is not None
    config = _config(fake_hf.issuer, store="redis", redis_url=redis_server.url)
    results = await check_connections(config)
    assert [r.name for r in results] == ["redis", "provider discovery"]
    assert all(r.ok for r in results), results
    assert format_results(results) == [
        f"ok   redis: PING answered at {redis_server.url}",
        f"ok   provider discovery: {fake_hf.issuer}/.well-known/openid-configuration "
        f"names issuer {fake_hf.issuer}",
    ]


async def test_a_closed_redis_port_fails_quickly_without_showing_the_password(
    fake_hf: FakeHF,
) -> None:
    assert fake_hf.issuer is not None
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    config = _config(fake_hf.issuer, store="redis", redis_url=url)
    started = time.monotonic()
    results = _by_name(await check_connections(config, timeout=3.0))
    assert time.monotonic() - started < 3.0
    assert not results["redis"].ok
    assert results["redis"].detail.startswith(f"redis://:***@127.0.0.1:{port}/0: ")
    assert results["provider discovery"].ok
    lines = format_results(list(results.values()))
    assert lines[0].startswith("FAIL redis: ")
    assert all(PASSWORD not in line for line in lines)


async def test_a_wrong_password_fails_and_neither_password_is_shown(fake_hf: FakeHF) -> None:
    """A server that requires another password: AUTH fails, and the error names no secret;
    its twin with the right password passes."""
    assert fake_hf.issuer is not None
    server = RedisServer().start()  # its start-up check PINGs without a password
    try:
        admin = redis.asyncio.Redis.from_url(server.url)
        await admin.config_set("requirepass", "the-right-one")
        await admin.aclose()
        wrong = f"redis://default:{PASSWORD}@{server.address}/0"
        results = _by_name(
            await check_connections(_config(fake_hf.issuer, store="redis", redis_url=wrong))
        )
        assert not results["redis"].ok
        assert PASSWORD not in results["redis"].detail
        assert results["redis"].detail.startswith(f"redis://default:***@{server.address}/0: ")
        right = f"redis://default:the-right-one@{server.address}/0"
        results = _by_name(
            await check_connections(_config(fake_hf.issuer, store="redis", redis_url=right))
        )
        assert results["redis"].ok, results["redis"]
        assert "the-right-one" not in results["redis"].detail
    finally:
        server.cleanup()


async def test_the_memory_store_needs_no_redis_check(fake_hf: FakeHF) -> None:
    assert fake_hf.issuer is not None
    results = await check_connections(_config(fake_hf.issuer))
    assert [r.name for r in results] == ["provider discovery"]


async def test_a_provider_naming_another_issuer_fails(fake_hf: FakeHF) -> None:
    """Same server under another name: its document says 127.0.0.1, the config localhost."""
    assert fake_hf.issuer is not None
    other = fake_hf.issuer.replace("127.0.0.1", "localhost")
    (result,) = await check_connections(_config(other))
    assert not result.ok
    assert f"names issuer {fake_hf.issuer!r}, not {other!r}" in result.detail


async def test_an_unreachable_provider_fails_quickly() -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    (result,) = await check_connections(_config(issuer), timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert not result.ok
    assert result.detail.startswith(f"{issuer}/.well-known/openid-configuration: ")
    assert format_results([result])[0].startswith("FAIL provider discovery: ")


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url(f"rediss://app:{PASSWORD}@r.example:6380/2")
        == "rediss://app:***@r.example:6380/2"
    )
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_sentinel_is_asked_for_the_master_which_then_answers(fake_hf: FakeHF) -> None:
    """redis_sentinel: the check goes the store's way (Sentinel, then the master); its twin
    names a master the Sentinels do not know and fails."""
    assert fake_hf.issuer is not None
    topology = SentinelTopology().start()
    try:
        sentinel = {"master": MASTER_NAME, "nodes": topology.nodes}
        config = _config(fake_hf.issuer, store="redis", redis_sentinel=sentinel)
        results = _by_name(await check_connections(config))
        assert results["redis"].ok, results["redis"]
        assert results["redis"].detail == (
            f"PING answered at master {MASTER_NAME} via Sentinel {', '.join(topology.nodes)}"
        )
        unknown = _config(
            fake_hf.issuer, store="redis", redis_sentinel={**sentinel, "master": "nobody"}
        )
        results = _by_name(await check_connections(unknown, timeout=3.0))
        assert not results["redis"].ok
        assert results["redis"].detail.startswith("master nobody via Sentinel ")
    finally:
        topology.cleanup()
