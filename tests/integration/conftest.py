"""Fixtures for tests over real HTTP: fake HF, echo upstream, a running gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.devtools.fake_hf import FakeHF
from gateway.session.store import SessionStore
from tests.support.harness import GatewayHarness, running_upstream


@pytest.fixture
async def fake_hf() -> AsyncIterator[FakeHF]:
    fake = FakeHF.demo()
    async with fake.serve():
        yield fake


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async with running_upstream() as url:
        yield url


StartGateway = Callable[..., Awaitable[GatewayHarness]]


@pytest.fixture
async def start_gateway(fake_hf: FakeHF, upstream: str) -> AsyncIterator[StartGateway]:
    """Start gateways with config overrides (and optionally their own store, a store factory
    for restarts, or another upstream); all are stopped after the test."""
    started: list[GatewayHarness] = []

    async def start(
        overrides: dict[str, Any] | None = None,
        store: SessionStore | None = None,
        *,
        store_factory: Callable[[], SessionStore] | None = None,
        upstream_url: str | None = None,
    ) -> GatewayHarness:
        harness = GatewayHarness(
            fake_hf,
            upstream_url or upstream,
            overrides=overrides or {},
            store=store,
            store_factory=store_factory,
        )
        started.append(harness)
        return await harness.start()

    yield start
    for harness in started:
        await harness.stop()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> GatewayHarness:
    return await start_gateway()
