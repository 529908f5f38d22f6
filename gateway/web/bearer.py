"""From ``Authorization: Bearer <token>`` to an Identity, for scripts and API clients.

Hugging Face's whoami-v2 is heavily rate-limited, so answers are cached per token hash
(never the token itself): a good token for a minute, a refused one for ten seconds, and
concurrent requests with one token share a single lookup. Only tokens shaped like the
provider's are looked up at all; any other bearer (an upstream's own API key) is left for
the upstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.errors import ProviderRateLimited, TokenRejected
from gateway.identity import Identity
from gateway.providers.base import Provider

ACCEPTED_TTL = 60.0
REFUSED_TTL = 10.0
MAX_ENTRIES = 10_000
LOOKUP_BURST = 20
LOOKUP_RATE = 5.0
"""New-token lookups per second (after a burst of 20): a flood of made-up tokens must not
spend Hugging Face's rate-limit bucket, which every script of this gateway shares."""
HF_TOKEN_PREFIX = "hf_"  # noqa: S105 - a token prefix, not a secret


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer hf_...`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(HF_TOKEN_PREFIX):
        return None
    if len(token) > 4096 or not token.isascii() or any(c.isspace() for c in token):
        return None
    return token


def token_key(token: str) -> str:
    """How a token is known in caches and logs: a hash, never the token."""
    return "b:" + hashlib.sha256(token.encode()).hexdigest()


class TokenResolver:
    def __init__(self, provider: Provider, clock: Callable[[], float] = time.monotonic) -> None:
        self._provider = provider
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Identity | None]] = {}
        self.lookups = 0
        self._allowance = float(LOOKUP_BURST)
        self._allowance_at = clock()

    async def resolve(self, token: str) -> Identity | None:
        """The token's user, or None when the provider refused the token.

        ProviderUnavailable (and ProviderRateLimited) propagate: the caller answers 503.
        """
        key = token_key(token)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            identity = await self._lookup(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(identity)
            self._remember(key, identity)
            return identity
        finally:
            del self._inflight[key]

    def _spend_allowance(self) -> None:
        """A token bucket for provider lookups; ProviderRateLimited when it is empty."""
        now = self._clock()
        self._allowance = min(
            float(LOOKUP_BURST), self._allowance + (now - self._allowance_at) * LOOKUP_RATE
        )
        self._allowance_at = now
        if self._allowance < 1.0:
            raise ProviderRateLimited("too many unknown tokens to check at once", retry_after=1)
        self._allowance -= 1.0

    async def _lookup(self, token: str) -> Identity | None:
        self._spend_allowance()
        self.lookups += 1
        try:
            return await self._provider.identity_for_token(token)
        except TokenRejected:
            return None

    def _remember(self, key: str, identity: Identity | None) -> None:
        ttl = ACCEPTED_TTL if identity is not None else REFUSED_TTL
        self._cache[key] = (self._clock() + ttl, identity)
        self._cache.move_to_end(key)
        if len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
