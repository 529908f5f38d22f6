"""Invalidations over Redis pub/sub, run against a real standalone server, a real Cluster
and a real Sentinel-watched master: what one process publishes, every process hears."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from gateway.session.redis import RedisStore
from gateway.session.store import InvalidationSource


async def wait_until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_an_invalidation_reaches_another_process(
    shared_stores: tuple[RedisStore, RedisStore],
) -> None:
    """A key published by one store is delivered to a listener on the other, after the
    listener said it is listening."""
    publisher, listener = shared_stores
    assert isinstance(listener, InvalidationSource)
    keys: list[str] = []
    states: list[bool] = []
    task = asyncio.create_task(listener.listen_invalidations(keys.append, states.append))
    try:
        await wait_until(lambda: states == [True])
        await publisher.publish_invalidation("s:changed")
        await wait_until(lambda: keys == ["s:changed"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert states == [True, False]


async def test_a_listener_stays_listening_while_the_channel_is_quiet(
    shared_stores: tuple[RedisStore, RedisStore],
) -> None:
    """Heartbeats keep a quiet subscription alive: no drop in 2.5 seconds of silence
    (longer than the two seconds after which an unanswered channel counts as lost)."""
    _, listener = shared_stores
    states: list[bool] = []
    task = asyncio.create_task(listener.listen_invalidations(lambda key: None, states.append))
    try:
        await wait_until(lambda: states == [True])
        await asyncio.sleep(2.5)
        assert states == [True]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
