"""The Redis durability keys of ``session`` (docs/redis.md): redis_wait_replicas and
redis_wait_timeout_ms."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.unit.conftest import minimal_raw_config

SENTINEL = {"master": "mymaster", "nodes": ["127.0.0.1:26379"]}


def session(**keys: Any) -> Any:
    return parse_config(minimal_raw_config(session={"store": "redis", **keys})).session


def problems(**keys: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        session(**keys)
    return caught.value.problems


def test_sentinel_writes_wait_for_one_replica_by_default() -> None:
    """With Sentinel nothing needs to be written for writes to wait for a replica."""
    assert session(redis_sentinel=SENTINEL).wait_replicas == 1
    assert session(redis_sentinel=SENTINEL).redis_wait_timeout_ms == 500


def test_standalone_and_cluster_writes_wait_for_none_by_default() -> None:
    """One Redis has no replica to wait for unless the operator says it has."""
    assert session(redis_url="redis://127.0.0.1:6379/0").wait_replicas == 0
    assert session(redis_url="redis://127.0.0.1:6379/0", redis_cluster=True).wait_replicas == 0


def test_the_replica_count_can_be_raised_or_turned_off() -> None:
    """Two replicas with standalone (a managed Redis with replicas); 0 with Sentinel."""
    assert session(redis_url="redis://h:6379", redis_wait_replicas=2).wait_replicas == 2
    assert session(redis_sentinel=SENTINEL, redis_wait_replicas=0).wait_replicas == 0


def test_waiting_for_replicas_is_refused_with_a_cluster() -> None:
    """WAIT would go to every shard, not the one that took the write: refused, with the
    key, the reason and the value that works."""
    found = problems(redis_url="redis://h:6379", redis_cluster=True, redis_wait_replicas=1)
    assert len(found) == 1
    assert found[0].startswith("session.redis_wait_replicas: not supported with redis_cluster")
    assert found[0].endswith("use 0")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param(
            {"redis_wait_timeout_ms": 0},
            "session.redis_wait_timeout_ms: must be greater than or equal to 1",
            id="timeout 0 (WAIT would block forever)",
        ),
        pytest.param(
            {"redis_wait_timeout_ms": 60_000},
            "session.redis_wait_timeout_ms: must be less than or equal to 10000",
            id="timeout of a minute",
        ),
        pytest.param(
            {"redis_wait_replicas": -1},
            "session.redis_wait_replicas: must be greater than or equal to 0",
            id="negative replicas",
        ),
    ],
)
def test_out_of_range_values_are_refused_with_the_nearest_valid_one(
    keys: dict[str, int], expected: str
) -> None:
    """A WAIT timeout of 0 would block a write forever: refused like any out-of-range value."""
    assert problems(redis_sentinel=SENTINEL, **keys) == (expected,)
