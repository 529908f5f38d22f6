"""From ``Authorization: Bearer <token>`` (or gradio_client's ``X-HF-Authorization``) to an
Identity, for scripts and API clients.

Hugging Face's whoami-v2 is heavily rate-limited, so answers are cached per token hash
(never the token itself): a good token for a minute, a refused one for ten seconds, and
concurrent requests with one token share a single lookup. Only tokens shaped like the
provider's are looked up at all; any other bearer (an upstream's own API key) is left for
the upstream.

Made-up tokens must not lock real ones out, so a token nobody has seen passes these gates
before Hugging Face is asked:

1. the client's allowance in this process (CLIENT_BURST, then CLIENT_RATE per second, per
   client address: the peer, or what a trusted proxy says). Past it: 429 with Retry-After
   for that client alone; its flood reaches neither the store nor the provider.
2. a refusal another replica already heard: refused token hashes are kept in the store for
   REFUSED_TTL, so N replicas ask Hugging Face once about a made-up token, not N times.
3. the client's allowance in the store (the same numbers, for every replica together), so
   spreading a flood over replicas buys nothing. Past it: 429 as well.
4. one allowance of provider lookups for every process sharing the store (LOOKUP_BURST,
   then LOOKUP_RATE per second). Its last LOOKUP_RESERVE units are kept for quiet clients
   (whose own allowance is full: no new token for a second or more), so flooding clients
   together still leave room for everyone else. Past it: 503 with Retry-After.

Accepted and refused answers live in separate bounded caches, so a flood of distinct
made-up tokens evicts only other refusals, never a good token's entry. Accepted answers are
not shared through the store: an identity read back from the store would let anyone who
can write to it sign in as anybody, and a good token costs each replica one lookup a minute
at most (on the token owner's own rate limit). A refusal read from the store can only deny.
If the store fails, new tokens are not looked up (StoreError: 503); answers this process
already holds keep working until they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import (
    GatewayError,
    ProviderRateLimited,
    ProviderUnavailable,
    StoreError,
    TokenRejected,
)
from gateway.identity import Identity
from gateway.metrics import BEARER_THROTTLED_BY_ALLOWANCE as THROTTLED
from gateway.metrics import TOKEN_CACHE_BY_RESULT as CACHE
from gateway.metrics import WHOAMI_BY_RESULT as WHOAMI
from gateway.providers.base import Provider
from gateway.session.store import SessionStore
from gateway.singleflight import SingleFlight

log = logging.getLogger(__name__)
V = TypeVar("V")

ACCEPTED_TTL = 60.0
REFUSED_TTL = 10.0
MAX_ACCEPTED = 10_000
MAX_REFUSED = 10_000
CLIENT_BURST = 10
CLIENT_RATE = 1.0
"""New tokens a client may have checked: 10 at once, then one a second. A script uses one
token; an office behind one address rarely sees a new token every second."""
MAX_CLIENTS = 10_000
LOOKUP_BURST = 20
LOOKUP_RATE = 5.0
"""Provider lookups for the whole fleet (every process on the store): a burst of 20, then 5
a second, so made-up tokens cannot spend Hugging Face's rate-limit bucket for everyone."""
LOOKUP_RESERVE = 5
"""The part of LOOKUP_BURST only quiet clients may spend."""
LOOKUP_BUDGET_KEY = "q:bearer-lookups"
CLIENT_KEY_PREFIX = "q:bearer-client:"
REFUSED = b"refused"
HF_TOKEN_PREFIX = "hf_"  # noqa: S105 - a token prefix, not a secret
REFUSAL_LOG_INTERVAL = 10.0


class TooManyNewTokens(GatewayError):
    """This client asked for more new tokens than its allowance (429 for it alone)."""

    def __init__(self, client: str, retry_after: int) -> None:
        self.client = client
        self.retry_after = retry_after
        super().__init__(f"too many new tokens from {client}; retry in {retry_after}s")


class LookupBudgetExhausted(ProviderRateLimited):
    """The fleet's allowance of provider lookups is spent for now (503 with Retry-After)."""


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


HF_AUTHORIZATION = "X-HF-Authorization"
"""Where gradio_client sends ``token=`` (``Bearer hf_...``), leaving Authorization to the app."""


class AmbiguousToken(GatewayError):
    """Two different Hugging Face tokens in one request: which user is meant is unknowable."""


@dataclass(frozen=True, slots=True)
class Presented:
    """The Hugging Face token a request carries, and where."""

    token: str | None
    in_authorization: bool
    """True when Authorization carried it: then Authorization is consumed (not forwarded);
    otherwise an Authorization header (Basic, an upstream's own bearer) is the upstream's."""


def presented_token(authorization: Sequence[str], hf_authorization: Sequence[str]) -> Presented:
    """The one HF token of every Authorization and X-HF-Authorization line.

    The same token in both (or on repeated lines) is one credential; two different ones
    raise AmbiguousToken (RFC 6750 §3.1 invalid_request), as two session cookies do.
    """
    from_authorization = {t for v in authorization if (t := bearer_token(v)) is not None}
    from_hf = {t for v in hf_authorization if (t := bearer_token(v)) is not None}
    tokens = from_authorization | from_hf
    if len(tokens) > 1:
        raise AmbiguousToken("different Hugging Face tokens in one request")
    if not tokens:
        return Presented(None, False)
    return Presented(tokens.pop(), bool(from_authorization))


def token_key(token: str) -> str:
    """How a token is known in caches, the store and logs: a hash, never the token."""
    return "b:" + hashlib.sha256(token.encode()).hexdigest()


def client_key(address: str) -> str:
    """Whose allowance a request spends: the IPv4 address, or the /64 of an IPv6 one
    (anyone holds a whole /64, so single IPv6 addresses would be free allowances)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


class ClientAllowances:
    """Per-client token buckets in this process (GCRA: a bucket is the moment it is full
    again). At most MAX_CLIENTS are kept, least recently used first out; a bucket that has
    refilled holds nothing worth keeping and is not kept."""

    def __init__(self, burst: float = CLIENT_BURST, rate: float = CLIENT_RATE) -> None:
        self._burst = burst
        self._rate = rate
        self._full_at: OrderedDict[str, float] = OrderedDict()

    def take(self, client: str, now: float) -> float:
        """0.0 when a unit was taken, else the seconds until one is there."""
        full_at = max(self._full_at.pop(client, now), now)
        after = full_at + 1.0 / self._rate
        wait = (after - now) - self._burst / self._rate
        if wait > 1e-9:
            self._keep(client, full_at, now)
            return wait
        self._keep(client, after, now)
        return 0.0

    def _keep(self, client: str, full_at: float, now: float) -> None:
        if full_at <= now:
            return
        self._full_at[client] = full_at
        while len(self._full_at) > MAX_CLIENTS:
            self._full_at.popitem(last=False)


class _Answers(Generic[V]):
    """A bounded cache with a deadline per entry; the oldest entry leaves first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[0]:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: str, value: V, until: float) -> None:
        self._entries[key] = (until, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenResolver:
    def __init__(
        self,
        provider: Provider,
        store: SessionStore,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_accepted: int = MAX_ACCEPTED,
        max_refused: int = MAX_REFUSED,
    ) -> None:
        self._provider = provider
        self._store = store
        self._clock = clock
        self._accepted: _Answers[Identity] = _Answers(max_accepted)
        self._refused: _Answers[bool] = _Answers(max_refused)
        self._lookups: SingleFlight[str, Identity | None] = SingleFlight()
        self._clients = ClientAllowances()
        self.lookups = 0
        """Provider lookups made by this process (for tests and metrics)."""
        self._refusals: dict[str, int] = {}
        self._refusals_logged_at = -math.inf

    async def resolve(self, token: str, client: str | None = None) -> Identity | None:
        """The token's user, or None when the provider refused the token.

        ``client`` is the caller's address; None for the gateway's own re-checks (a
        websocket's), which spend no client's allowance. TooManyNewTokens (429),
        LookupBudgetExhausted and ProviderUnavailable (503) and StoreError propagate.
        """
        key = token_key(token)
        now = self._clock()
        known = self._accepted.get(key, now)
        if known is not None:
            CACHE["hit"].inc()
            return known
        if self._refused.get(key, now):
            CACHE["refused_hit"].inc()
            return None
        pending = self._lookups.running(key)
        if pending is not None:  # joining a lookup in flight spends no allowance
            CACHE["joined"].inc()
            return await asyncio.shield(pending)
        who = client_key(client) if client is not None else None
        if who is not None:
            wait = self._clients.take(who, now)
            if wait:
                raise self._too_many(who, wait)
        return await self._lookups.run(key, lambda: self._lookup_and_remember(token, key, who))

    async def _lookup_and_remember(self, token: str, key: str, who: str | None) -> Identity | None:
        identity = await self._lookup(token, key, who)
        self._remember(key, identity)
        return identity

    async def _lookup(self, token: str, key: str, client: str | None) -> Identity | None:
        if await self._store.get(key) == REFUSED:
            CACHE["shared_refusal"].inc()
            return None  # another replica heard the refusal already
        CACHE["miss"].inc()
        quiet = await self._spend_shared_allowance(client)
        burst = LOOKUP_BURST if quiet else LOOKUP_BURST - LOOKUP_RESERVE
        wait = await self._store.take_allowance(LOOKUP_BUDGET_KEY, LOOKUP_RATE, burst)
        if wait:
            THROTTLED["fleet"].inc()
            self._note_refused("the gateway's", client)
            raise LookupBudgetExhausted(
                "too many unknown tokens to check at once", retry_after=_seconds(wait)
            )
        self.lookups += 1
        return await self._ask_provider(token, key)

    async def _ask_provider(self, token: str, key: str) -> Identity | None:
        try:
            identity = await self._provider.identity_for_token(token)
        except TokenRejected:
            WHOAMI["rejected"].inc()
            await self._share_refusal(key)
            return None
        except ProviderRateLimited:
            WHOAMI["rate_limited"].inc()
            raise
        except ProviderUnavailable:
            WHOAMI["unavailable"].inc()
            raise
        WHOAMI["ok"].inc()
        return identity

    async def _spend_shared_allowance(self, client: str | None) -> bool:
        """Spend the client's fleet-wide allowance; whether the client is quiet (the unit
        came from a full allowance). The gateway's own re-checks count as quiet."""
        if client is None:
            return True
        key = CLIENT_KEY_PREFIX + client
        # A burst of 1 succeeds only on a full bucket: that is what quiet means.
        if not await self._store.take_allowance(key, CLIENT_RATE, 1):
            return True
        wait = await self._store.take_allowance(key, CLIENT_RATE, CLIENT_BURST)
        if wait:
            raise self._too_many(client, wait)
        return False

    def _too_many(self, client: str, wait: float) -> TooManyNewTokens:
        THROTTLED["client"].inc()
        self._note_refused("their client's", client)
        return TooManyNewTokens(client, _seconds(wait))

    async def _share_refusal(self, key: str) -> None:
        try:
            await self._store.set(key, REFUSED, REFUSED_TTL)
        except StoreError as exc:  # only a cache: the answer itself stands
            log.warning("could not share a token refusal through the store: %s", exc)

    def _remember(self, key: str, identity: Identity | None) -> None:
        now = self._clock()
        if identity is not None:
            self._accepted.put(key, identity, now + ACCEPTED_TTL)
        else:
            self._refused.put(key, True, now + REFUSED_TTL)

    def _note_refused(self, allowance: str, client: str | None) -> None:
        """Log refusals as a summary now and then, not once per request of a flood."""
        self._refusals[allowance] = self._refusals.get(allowance, 0) + 1
        now = self._clock()
        if now - self._refusals_logged_at < REFUSAL_LOG_INTERVAL:
            return
        counts = ", ".join(f"{n} over {kind} allowance" for kind, n in self._refusals.items())
        log.warning("new bearer tokens not checked: %s (latest from %s)", counts, client)
        self._refusals.clear()
        self._refusals_logged_at = now
