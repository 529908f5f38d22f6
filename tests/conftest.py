"""Shared factories: a real redis-server for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer

pytest_plugins = ["tests.support.log_scan"]  # every log line of the run scanned for secrets


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests isolate themselves by key prefix."""
    server = RedisServer().start()
    yield server
    server.cleanup()
