"""redis.asyncio SessionStore: standalone, Sentinel or Cluster.

Only moves bytes. Every Redis failure becomes StoreError (cause kept) so the web layer
answers 503 and lets nothing through. With Sentinel, writes wait for one replica
(``WAIT 1``) so a failover loses no session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from gateway.config import SessionConfig
from gateway.errors import StoreError

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
SOCKET_TIMEOUT = 2.0
"""Seconds before a silent Redis counts as down (the request then gets a 503)."""
HEARTBEAT = 0.5
"""Seconds between pings on the invalidation subscription."""
SILENCE_LIMIT = 2.0
"""A subscription that has not answered for this long counts as broken."""


class RedisStore:
    def __init__(self, client: Any, prefix: str = "hfgw:", *, wait_replicas: int = 0) -> None:
        self._client = client
        self._prefix = prefix
        self._wait_replicas = wait_replicas
        self._channel = prefix + "invalidate"

    @classmethod
    def from_config(cls, config: SessionConfig) -> RedisStore:
        options: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "health_check_interval": 30,
        }
        url = config.redis_url.get_secret_value() if config.redis_url else None
        if config.redis_sentinel is not None:
            sentinel_cfg = config.redis_sentinel
            nodes = [(h, int(p)) for h, _, p in (n.rpartition(":") for n in sentinel_cfg.nodes)]
            password = sentinel_cfg.password.get_secret_value() if sentinel_cfg.password else None
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                nodes, sentinel_kwargs={"password": password}, **options
            )
            client = sentinel.master_for(sentinel_cfg.master, password=password, **options)
            return cls(client, config.redis_prefix, wait_replicas=1)
        assert url is not None  # guaranteed by config validation
        if config.redis_cluster:
            return cls(RedisCluster.from_url(url, **options), config.redis_prefix)
        return cls(aioredis.Redis.from_url(url, **options), config.redis_prefix)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, action: str, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreError(f"redis {action} failed: {type(exc).__name__}") from exc

    async def _replicate(self) -> None:
        if self._wait_replicas:
            await self._client.wait(self._wait_replicas, 500)

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call("get", lambda: self._client.get(self._key(key)))
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        async def write() -> None:
            await self._client.set(self._key(key), value, px=max(1, int(ttl * 1000)))
            await self._replicate()

        await self._call("set", write)

    async def replace(self, key: str, value: bytes, ttl: float) -> bool:
        async def write() -> bool:
            # SET ... XX writes only over an existing key, atomically.
            done = await self._client.set(
                self._key(key), value, px=max(1, int(ttl * 1000)), xx=True
            )
            await self._replicate()
            return bool(done)

        return await self._call("replace", write)

    async def delete(self, key: str) -> bool:
        async def remove() -> int:
            count: int = await self._client.delete(self._key(key))
            await self._replicate()
            return count

        return bool(await self._call("delete", remove))

    async def take(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(
            "getdel", lambda: self._client.getdel(self._key(key))
        )
        return value

    async def index_add(self, index: str, member: str, ttl: float) -> None:
        async def add() -> None:
            name = self._key(index)
            await self._client.sadd(name, member)
            await self._client.expire(name, max(1, int(ttl)))

        await self._call("sadd", add)

    async def index_remove(self, index: str, member: str) -> None:
        await self._call("srem", lambda: self._client.srem(self._key(index), member))

    async def index_members(self, index: str) -> list[str]:
        members = await self._call("smembers", lambda: self._client.smembers(self._key(index)))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def lock(self, key: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        acquired = await self._call(
            "lock",
            lambda: self._client.set(self._key(key), token, nx=True, px=max(1, int(ttl * 1000))),
        )
        return token if acquired else None

    async def unlock(self, key: str, token: str) -> None:
        await self._call("unlock", lambda: self._client.eval(_UNLOCK, 1, self._key(key), token))

    async def take_allowance(self, key: str, rate: float, burst: float) -> float:
        interval = 1000.0 / rate
        wait_ms = await self._call(
            "take_allowance",
            lambda: self._client.eval(
                _TAKE_ALLOWANCE, 1, self._key(key), repr(interval), repr(burst * interval)
            ),
        )
        return int(wait_ms) / 1000.0

    async def publish_invalidation(self, key: str) -> None:
        await self._call("publish", lambda: self._client.publish(self._channel, key))

    async def listen_invalidations(
        self, on_key: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """Follow the invalidation channel until cancelled, reconnecting after failures."""
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._follow(pubsub, on_key, on_state)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("session invalidation channel lost (%s); warm cache off", exc)
            finally:
                on_state(False)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def _follow(
        self, pubsub: Any, on_key: Callable[[str], None], on_state: Callable[[bool], None]
    ) -> None:
        """Deliver messages; ping every HEARTBEAT and give up after SILENCE_LIMIT of silence."""
        loop = asyncio.get_running_loop()
        last_heard = last_ping = loop.time()
        listening = False
        while True:
            message = await pubsub.get_message(timeout=HEARTBEAT)
            now = loop.time()
            if message is not None:
                last_heard = now
                if message["type"] == "subscribe" and not listening:
                    listening = True
                    on_state(True)
                elif message["type"] == "message":
                    data = message["data"]
                    on_key(data.decode() if isinstance(data, bytes) else str(data))
            if now - last_ping >= HEARTBEAT:
                await pubsub.ping()
                last_ping = now
            if now - last_heard > SILENCE_LIMIT:
                raise TimeoutError("the invalidation channel stopped answering")

    async def scan(self, prefix: str) -> list[str]:
        async def collect() -> list[str]:
            found = []
            async for raw in self._client.scan_iter(match=self._key(prefix) + "*", count=500):
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                found.append(name[len(self._prefix) :])
            return sorted(found)

        return await self._call("scan", collect)

    async def ping(self) -> None:
        await self._call("ping", lambda: self._client.ping())

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
