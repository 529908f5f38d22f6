"""redis.asyncio SessionStore: standalone, Sentinel or Cluster.

Only moves bytes. Every Redis failure becomes StoreError (cause kept) so the web layer
answers 503 and lets nothing through.

Acknowledged means replicated: with ``wait_replicas`` (1 by default with Sentinel, and
then at least every replica Sentinel could promote) the writes a failover must not lose
(session records, the user index, deletions, locks and login markers) go out in one
pipeline with ``WAIT`` on the same connection, and a write fewer replicas acknowledge in
time fails. Whatever the caller was told succeeded is on those replicas; a write that
failed may or may not have happened, and the caller was told so (503). docs/redis.md.

Every call goes through ``_call``: timed and counted by operation, refused at once while
Redis is down (reconnect backoff), repeated once when it may be (idempotent writes, reads)
after a connection failure or a master that moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from gateway.config import SessionConfig
from gateway.errors import StoreError
from gateway.logs import log_fault
from gateway.metrics import (
    STORE_ERRORS_BY_OPERATION,
    STORE_OPERATIONS,
    STORE_REPLICAS,
    STORE_SECONDS,
    UNREPLICATED_WRITES,
)
from gateway.session.backoff import Backoff, ReconnectGate
from gateway.session.redis_connect import (
    SOCKET_TIMEOUT,
    FixedLink,
    RedisLink,
    connect,
)
from gateway.session.redis_sentinel import SentinelMaster

T = TypeVar("T")
log = logging.getLogger(__name__)

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_TAKE_ALLOWANCE = """
local now = redis.call('time')
local now_ms = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
local full_at = tonumber(redis.call('get', KEYS[1])) or now_ms
if full_at < now_ms then full_at = now_ms end
local after = full_at + tonumber(ARGV[1])
local wait = (after - now_ms) - tonumber(ARGV[2])
if wait > 0.5 then return math.ceil(wait) end
redis.call('set', KEYS[1], string.format('%.3f', after), 'px', math.ceil(after - now_ms))
return 0
"""
"""A token bucket kept as the moment it is full again (GCRA), on the server's clock so
replicas with skewed clocks share one bucket. Arguments in milliseconds; answers the
milliseconds to wait, 0 when a unit was taken."""
HEARTBEAT = 0.5
"""Seconds between pings on the invalidation subscription."""
SILENCE_LIMIT = 2.0
"""A subscription that has not answered for this long counts as broken."""

_SECONDS = {op: STORE_SECONDS.labels(op) for op in STORE_OPERATIONS}
_ERRORS = STORE_ERRORS_BY_OPERATION
REPLICATED = ("set", "replace", "delete", "take", "index_add", "lock")
"""The operations that WAIT for replicas: what a failover must not undo (records, deletions,
the user index that revocation reads, locks and login markers)."""
_UNREPLICATED = {op: UNREPLICATED_WRITES.labels(op) for op in REPLICATED}
_UNREACHABLE = (RedisConnectionError, RedisTimeout, ReadOnlyError, OSError, TimeoutError)
"""Failures that say "not this server, not now": the master may have moved."""
_RETRY_PAUSE = 0.05
"""Seconds before repeating a call on the same server (a new master is tried at once)."""


class Unreplicated(Exception):
    """Fewer replicas than required acknowledged a write within the WAIT timeout."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas acknowledged")
        self.acknowledged = acknowledged
        self.wanted = wanted


class RedisStore:
    def __init__(
        self,
        client: Any = None,
        prefix: str = "hfgw:",
        *,
        link: RedisLink | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        gate: bool = True,
    ) -> None:
        if (client is None) == (link is None):
            raise ValueError("give a client or a link")
        self._link: RedisLink = link if link is not None else FixedLink(client)
        self._prefix = prefix
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._channel = prefix + "invalidate"
        self._gate = (
            ReconnectGate(Backoff(0.05, 1.0), probe_limit=SOCKET_TIMEOUT * 2) if gate else None
        )
        """Spaces out attempts at a Redis that is down. Not for a Cluster: one failed
        node must not stop the keys of the others."""
        if isinstance(self._link, SentinelMaster):
            self._link.on_move.append(self._moved)

    @classmethod
    def from_config(cls, config: SessionConfig) -> RedisStore:
        return cls(
            prefix=config.redis_prefix,
            link=connect(config),
            wait_replicas=config.wait_replicas,
            wait_timeout_ms=config.redis_wait_timeout_ms,
            gate=not config.redis_cluster,
        )

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _moved(self) -> None:
        if self._gate is not None:
            self._gate.reset()

    # ------------------------------------------------------------------ the call path

    async def _call(
        self, operation: str, command: Callable[[Any], Awaitable[T]], *, repeatable: bool = True
    ) -> T:
        """Run ``command(client)`` as ``operation``: timed, counted, StoreError on failure."""
        started = time.perf_counter()
        try:
            return await self._attempt(operation, command, repeatable)
        except StoreError:
            _ERRORS[operation].inc()
            raise
        finally:
            _SECONDS[operation].observe(time.perf_counter() - started)

    async def _attempt(
        self, operation: str, command: Callable[[Any], Awaitable[T]], repeatable: bool
    ) -> T:
        gate = self._gate
        wait = gate.refusal() if gate is not None else None
        if wait is not None:
            raise StoreError(f"redis {operation} refused: reconnecting (next try in {wait:.1f}s)")
        attempts = 2 if repeatable else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            client: Any = None
            try:
                client = await self._link.client()
                result = await command(client)
            except Unreplicated as exc:
                self._unreplicated(operation, exc)
                # Not acknowledged here; worth repeating only on a master that moved.
                if last or client is None or not await self._link.moved(client):
                    raise StoreError(f"redis {operation} not replicated: {exc}") from exc
            except _UNREACHABLE as exc:
                moved = client is not None and await self._link.moved(client)
                if last:
                    self._unreachable(operation, exc)
                    raise StoreError(f"redis {operation} failed: {type(exc).__name__}") from exc
                if not moved:
                    await asyncio.sleep(_RETRY_PAUSE)
            except ResponseError as exc:
                if "NOREPLICAS" in str(
                    exc
                ):  # the server's min-replicas-to-write (also in a pipeline)
                    self._unreplicated(operation, None)
                    raise StoreError(f"redis {operation} not replicated: NOREPLICAS") from exc
                raise StoreError(f"redis {operation} refused: {type(exc).__name__}") from exc
            except RedisError as exc:
                raise StoreError(f"redis {operation} failed: {type(exc).__name__}") from exc
            else:
                if gate is not None and gate.succeeded():
                    log.warning("redis reachable again")
                return result
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _unreplicated(self, operation: str, exc: Unreplicated | None) -> None:
        counter = _UNREPLICATED.get(operation)
        if counter is not None:  # NOREPLICAS can refuse any write, waited for or not
            counter.inc()
        if exc is None:  # once, then counted while it repeats (a write per request)
            log_fault(
                log,
                logging.WARNING,
                "redis %s: the master refused it for want of replicas (NOREPLICAS, its "
                "min-replicas-to-write); refused (503). Check the replicas.",
                operation,
            )
            return
        log_fault(
            log,
            logging.WARNING,
            "redis %s: %d of %d replicas acknowledged within %d ms; refused (503) so that "
            "a failover cannot lose it. Check the replicas.",
            operation,
            exc.acknowledged,
            exc.wanted,
            self._wait_timeout_ms,
        )

    def _unreachable(self, operation: str, exc: BaseException) -> None:
        if self._gate is not None and self._gate.failed():
            log.error(
                "redis unreachable (%s during %s); session requests answer 503, "
                "reconnecting with backoff",
                type(exc).__name__,
                operation,
            )

    async def _replicated(self, client: Any, queue: Callable[[Any], None]) -> list[Any]:
        """Run the commands ``queue`` adds to a pipeline, then WAIT on the same connection.

        WAIT counts the replicas that have every write *this connection* made, so the write
        and the WAIT must share one: a pipeline holds one connection for its commands.
        """
        # With Sentinel: every replica it could promote, however few were asked for.
        wanted = max(self._wait_replicas, self._link.replicas()) if self._wait_replicas else 0
        async with client.pipeline(transaction=False) as pipe:
            queue(pipe)
            if wanted:
                pipe.wait(wanted, self._wait_timeout_ms)
            results: list[Any] = await pipe.execute()
        if wanted:
            acknowledged = int(results.pop())
            STORE_REPLICAS.set(acknowledged)
            if acknowledged < wanted:
                raise Unreplicated(acknowledged, wanted)
        return results

    # ------------------------------------------------------------------ operations

    async def get(self, key: str) -> bytes | None:
        name = self._key(key)
        value: bytes | None = await self._call("get", lambda c: c.get(name))
        return value

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """One MGET (standalone, Sentinel); on a Cluster one MGET per hash slot, sent to
        the slots' nodes in one go (``mget_nonatomic``). One operation for the metrics."""
        if not keys:
            return []
        names = [self._key(key) for key in keys]

        async def read(client: Any) -> list[bytes | None]:
            if isinstance(client, RedisCluster):
                return list(await client.mget_nonatomic(names))
            return list(await client.mget(names))

        return await self._call("get_many", read)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        name, px = self._key(key), _ms(ttl)
        await self._call("set", lambda c: self._replicated(c, lambda p: p.set(name, value, px=px)))

    async def replace(self, key: str, value: bytes, ttl: float) -> bool:
        name, px = self._key(key), _ms(ttl)

        async def write(client: Any) -> bool:
            # SET ... XX writes only over an existing key, atomically.
            (done,) = await self._replicated(client, lambda p: p.set(name, value, px=px, xx=True))
            return bool(done)

        return await self._call("replace", write)

    async def delete(self, key: str) -> bool:
        name = self._key(key)
        existed = False

        async def remove(client: Any) -> bool:
            # A repeat after a failure finds the key gone: it existed if any attempt saw it.
            nonlocal existed
            (count,) = await self._replicated(client, lambda p: p.delete(name))
            existed = existed or bool(count)
            return existed

        return await self._call("delete", remove)

    async def take(self, key: str) -> bytes | None:
        name = self._key(key)

        async def getdel(client: Any) -> bytes | None:
            (value,) = await self._replicated(client, lambda p: p.getdel(name))
            return value  # type: ignore[no-any-return]

        # Not repeated: a GETDEL that ran but whose answer was lost must not run again.
        return await self._call("take", getdel, repeatable=False)

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        name, seconds = self._key(index), max(1, int(ttl))

        def queue(pipe: Any) -> None:
            pipe.sadd(name, member)
            pipe.expire(name, seconds)

        await self._call("index_add", lambda c: self._replicated(c, queue))

    async def index_remove(self, index: str, member: str) -> None:
        # Not waited for: an index that still lists a deleted session costs a no-op delete.
        name = self._key(index)
        await self._call("index_remove", lambda c: c.srem(name, member))

    async def index_members(self, index: str) -> list[str]:
        name = self._key(index)
        members = await self._call("index_members", lambda c: c.smembers(name))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def lock(self, key: str, ttl: float) -> str | None:
        name, px, token = self._key(key), _ms(ttl), secrets.token_hex(16)

        def queue(pipe: Any) -> None:
            pipe.set(name, token, nx=True, px=px)
            pipe.get(name)

        async def acquire(client: Any) -> bool:
            # Reading the holder back makes a repeat safe: the lock is ours if it holds
            # our token, whichever attempt set it.
            _, holder = await self._replicated(client, queue)
            return bool(holder == token.encode())

        return token if await self._call("lock", acquire) else None

    async def unlock(self, key: str, token: str) -> None:
        # Not waited for: a lost release only keeps the lock until its short ttl.
        name = self._key(key)
        await self._call("unlock", lambda c: c.eval(_UNLOCK, 1, name, token))

    async def take_allowance(self, key: str, rate: float, burst: float) -> float:
        name, interval = self._key(key), 1000.0 / rate
        wait_ms = await self._call(
            "take_allowance",
            lambda c: c.eval(_TAKE_ALLOWANCE, 1, name, repr(interval), repr(burst * interval)),
            repeatable=False,  # a repeat could take two units
        )
        return int(wait_ms) / 1000.0

    async def publish_invalidation(self, key: str) -> None:
        await self._call("publish", lambda c: c.publish(self._channel, key))

    async def scan(self, prefix: str) -> list[str]:
        pattern = self._key(prefix) + "*"

        async def collect(client: Any) -> list[str]:
            found = []
            async for raw in client.scan_iter(match=pattern, count=500):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                found.append(name[len(self._prefix) :])
            return sorted(set(found))

        return await self._call("scan", collect)

    async def ping(self) -> None:
        await self._call("ping", lambda c: c.ping())

    async def close(self) -> None:
        await self._link.close()

    # ------------------------------------------------------------------ invalidations

    async def listen_invalidations(
        self, on_key: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """Follow the invalidation channel until cancelled, reconnecting with backoff after
        failures (and at once to a master that moved)."""
        backoff = Backoff(0.1, 5.0)
        while True:
            pubsub: Any = None
            try:
                client = await self._link.client()
                pubsub = client.pubsub()
                await pubsub.subscribe(self._channel)
                await self._follow(client, pubsub, on_key, on_state, backoff)
            except (RedisError, OSError, TimeoutError) as exc:
                log_fault(
                    log,
                    logging.WARNING,
                    "session invalidation channel lost (%s); warm cache off",
                    exc,
                )
            except Exception:  # the listener must outlive any surprise from the client
                log.exception("session invalidation channel failed; warm cache off")
            finally:
                on_state(False)
                if pubsub is not None:
                    with contextlib.suppress(RedisError, OSError, TimeoutError):
                        await pubsub.aclose()
            await asyncio.sleep(backoff.delay())

    async def _follow(
        self,
        client: Any,
        pubsub: Any,
        on_key: Callable[[str], None],
        on_state: Callable[[bool], None],
        backoff: Backoff,
    ) -> None:
        """Deliver messages; ping every HEARTBEAT and give up after SILENCE_LIMIT of silence
        or as soon as the master moved (invalidations are published there now)."""
        loop = asyncio.get_running_loop()
        last_heard = last_ping = loop.time()
        listening = False
        task = asyncio.current_task()
        while True:
            message = await pubsub.get_message(timeout=HEARTBEAT)
            if task is not None and task.cancelling():
                # A cancel the client swallowed (its read timeout and our cancel can meet
                # in one loop turn): stop now, not when a second cancel comes.
                raise asyncio.CancelledError
            now = loop.time()
            if message is not None:
                last_heard = now
                if message["type"] == "subscribe" and not listening:
                    listening = True
                    backoff.reset()
                    on_state(True)
                elif message["type"] == "message":
                    data = message["data"]
                    on_key(data.decode() if isinstance(data, bytes) else str(data))
            if not self._link.is_current(client):
                backoff.reset()
                raise ConnectionError("the Redis master moved")
            if now - last_ping >= HEARTBEAT:
                await pubsub.ping()
                last_ping = now
            if now - last_heard > SILENCE_LIMIT:
                raise TimeoutError("the invalidation channel stopped answering")


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))
