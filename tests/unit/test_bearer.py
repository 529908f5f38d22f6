"""Bearer tokens: which Authorization headers are looked up, whoami's shape, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.errors import TokenRejected
from gateway.identity import Identity
from gateway.providers.base import LoginResult, TokenSet
from gateway.providers.huggingface import whoami_identity
from gateway.providers.oidc import retry_after_seconds
from gateway.session.memory import MemoryStore
from gateway.web.bearer import (
    ACCEPTED_TTL,
    CLIENT_BURST,
    CLIENT_RATE,
    LOOKUP_BURST,
    LOOKUP_RATE,
    LOOKUP_RESERVE,
    REFUSED_TTL,
    LookupBudgetExhausted,
    TokenResolver,
    TooManyNewTokens,
    bearer_token,
    client_key,
    token_key,
)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param("Bearer hf_abc", "hf_abc", id="personal token"),
        pytest.param("bearer hf_oauth_xyz", "hf_oauth_xyz", id="scheme in lower case"),
        pytest.param("Bearer  hf_abc ", "hf_abc", id="spaces around"),
        pytest.param("Bearer glsa_abc", None, id="another service's key"),
        pytest.param("Basic aGZfYWJj", None, id="basic auth"),
        pytest.param("Bearer hf_a b", None, id="a space inside"),
        pytest.param("Bearer hf_\u00e9", None, id="non-ASCII"),
        pytest.param("Bearer hf_" + "x" * 5000, None, id="absurdly long"),
        pytest.param(None, None, id="no header"),
    ],
)
def test_only_hf_shaped_bearer_tokens_are_taken(header: str | None, token: str | None) -> None:
    """Only ``Bearer hf_...`` is the gateway's to check; anything else is the upstream's."""
    assert bearer_token(header) == token


def test_a_token_is_known_by_its_hash_only() -> None:
    """Cache keys never contain the token."""
    key = token_key("hf_secret_value")
    assert "hf_secret_value" not in key and key.startswith("b:") and len(key) == 66


def test_whoami_becomes_an_identity_with_the_token_role() -> None:
    """Slug from name, display name from fullname, relative avatar resolved, role kept."""
    identity = whoami_identity(
        {
            "type": "user",
            "id": "u1",
            "name": "alice",
            "fullname": "Alice L",
            "avatarUrl": "/avatars/a.svg",
            "isPro": True,
            "orgs": [{"id": "o1", "name": "acme", "fullname": "Acme", "roleInOrg": "admin"}],
            "auth": {"type": "access_token", "accessToken": {"role": "write"}},
        },
        "https://huggingface.co",
    )
    assert (identity.sub, identity.username, identity.name) == ("u1", "alice", "Alice L")
    assert identity.picture == "https://huggingface.co/avatars/a.svg"
    assert identity.token_role == "write" and identity.is_pro
    assert [(o.slug, o.role) for o in identity.orgs] == [("acme", "admin")]
    assert identity.email is None and identity.scopes == frozenset()


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"RateLimit": '"api";r=0;t=42'}, 42, id="HF RateLimit header"),
        pytest.param({"Retry-After": "7", "RateLimit": '"api";r=0;t=42'}, 7, id="Retry-After"),
        pytest.param({}, 60, id="nothing said"),
    ],
)
def test_the_wait_after_a_429_is_read_from_the_headers(
    headers: dict[str, str], seconds: int
) -> None:
    """HF says when its bucket refills; the gateway passes it on as Retry-After."""
    assert retry_after_seconds(headers) == seconds


class CountingProvider:
    """A Provider that knows one token; counts lookups (only identity_for_token is used)."""

    ready = True

    def __init__(self, delay: float = 0.01) -> None:
        self.calls = 0
        self.delay = delay

    async def identity_for_token(self, token: str) -> Identity:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if token != "hf_good":
            raise TokenRejected("no")
        return Identity(sub="u1", username="alice", token_role="read")

    async def load_metadata(self) -> None: ...

    def authorization_url(
        self,
        *,
        state: str,
        nonce: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: Sequence[str],
        org_ids: Sequence[str] = (),
    ) -> str:
        raise NotImplementedError

    async def exchange_code(
        self,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        nonce: str,
        scopes: Sequence[str],
        now: float,
    ) -> LoginResult:
        raise NotImplementedError

    async def refresh(self, refresh_token: str, scopes: frozenset[str], now: float) -> TokenSet:
        raise NotImplementedError

    async def fetch_identity(self, tokens: TokenSet) -> Identity:
        raise NotImplementedError

    async def close(self) -> None: ...


class Clock:
    """A hand-moved clock shared by the resolver and its store."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver_on(
    provider: CountingProvider, clock: Clock, store: MemoryStore | None = None, **limits: int
) -> TokenResolver:
    return TokenResolver(provider, store or MemoryStore(clock=clock), clock=clock, **limits)


async def test_answers_are_cached_for_their_ttl_and_refusals_for_less() -> None:
    """A good token is looked up once a minute, a refused one every ten seconds."""
    clock = Clock()
    provider = CountingProvider()
    resolver = resolver_on(provider, clock)
    assert (await resolver.resolve("hf_good", "10.0.0.1")) is not None
    assert await resolver.resolve("hf_bad", "10.0.0.1") is None
    await resolver.resolve("hf_good", "10.0.0.1")
    await resolver.resolve("hf_bad", "10.0.0.1")
    assert provider.calls == 2
    clock.now += REFUSED_TTL
    await resolver.resolve("hf_bad", "10.0.0.1")
    await resolver.resolve("hf_good", "10.0.0.1")
    assert provider.calls == 3
    clock.now += ACCEPTED_TTL
    await resolver.resolve("hf_good", "10.0.0.1")
    assert provider.calls == 4


async def test_concurrent_requests_with_one_token_share_one_lookup() -> None:
    """Twenty requests arriving together make one whoami call and spend one unit."""
    clock = Clock()
    provider = CountingProvider()
    resolver = resolver_on(provider, clock)
    results = await asyncio.gather(*(resolver.resolve("hf_good", "10.0.0.1") for _ in range(20)))
    assert provider.calls == 1
    assert {r.username for r in results if r} == {"alice"}
    for index in range(CLIENT_BURST - 1):  # the client's allowance is nearly whole
        await resolver.resolve(f"hf_other_{index}", "10.0.0.1")


async def test_a_client_flooding_made_up_tokens_is_throttled_alone() -> None:
    """After its burst, one client's new tokens get TooManyNewTokens (429, Retry-After);
    another client's new token and every known token are still answered at once."""
    clock = Clock()
    provider = CountingProvider(delay=0)
    resolver = resolver_on(provider, clock)
    assert await resolver.resolve("hf_known_bad", "10.0.0.9") is None
    for index in range(CLIENT_BURST):
        assert await resolver.resolve(f"hf_made_up_{index}", "10.0.0.1") is None
    with pytest.raises(TooManyNewTokens) as refused:
        await resolver.resolve("hf_one_too_many", "10.0.0.1")
    assert refused.value.retry_after == 1
    assert provider.calls == CLIENT_BURST + 1
    assert await resolver.resolve("hf_good", "10.0.0.2") is not None  # another client
    assert await resolver.resolve("hf_made_up_0", "10.0.0.1") is None  # known: no unit
    assert await resolver.resolve("hf_known_bad", "10.0.0.1") is None
    clock.now += 1 / CLIENT_RATE
    assert await resolver.resolve("hf_one_too_many", "10.0.0.1") is None
    with pytest.raises(TooManyNewTokens):
        await resolver.resolve("hf_and_another", "10.0.0.1")


async def test_many_flooding_clients_leave_the_reserve_to_quiet_ones() -> None:
    """Clients that keep asking stop LOOKUP_RESERVE short of the fleet's burst; clients
    asking for their first token in a while take from the reserve until it is gone."""
    clock = Clock()
    provider = CountingProvider(delay=0)
    resolver = resolver_on(provider, clock)
    flooders = [f"10.0.1.{n}" for n in range(8)]
    for client in flooders:  # a first token is quiet, whoever sends it
        assert await resolver.resolve(f"hf_first_{client}", client) is None
    over_budget = 0
    for client in flooders:
        for index in range(1, CLIENT_BURST):
            try:
                await resolver.resolve(f"hf_flood_{client}_{index}", client)
            except LookupBudgetExhausted as exc:
                assert exc.retry_after >= 1
                over_budget += 1
    assert provider.calls == LOOKUP_BURST - LOOKUP_RESERVE
    assert over_budget == len(flooders) * CLIENT_BURST - provider.calls
    assert await resolver.resolve("hf_good", "10.2.0.1") is not None
    for quiet in range(1, LOOKUP_RESERVE):
        assert await resolver.resolve(f"hf_quiet_{quiet}", f"10.2.{quiet}.1") is None
    with pytest.raises(LookupBudgetExhausted):
        await resolver.resolve("hf_late", "10.3.0.1")
    assert provider.calls == LOOKUP_BURST


async def test_a_client_that_waits_as_told_is_served_when_the_fleet_refills() -> None:
    """A 503 for the fleet's allowance says when to come back; then the token is checked."""
    clock = Clock()
    provider = CountingProvider(delay=0)
    resolver = resolver_on(provider, clock)
    for index in range(LOOKUP_BURST):
        await resolver.resolve(f"hf_fill_{index}", f"10.0.2.{index}")
    with pytest.raises(LookupBudgetExhausted) as refused:
        await resolver.resolve("hf_good", "10.0.0.1")
    clock.now += refused.value.retry_after
    assert await resolver.resolve("hf_good", "10.0.0.1") is not None


async def test_spreading_a_flood_over_replicas_buys_no_extra_allowance() -> None:
    """Two processes on one store share each client's allowance: together they check
    CLIENT_BURST of its tokens, not twice as many."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    provider = CountingProvider(delay=0)
    replicas = [resolver_on(provider, clock, store), resolver_on(provider, clock, store)]
    throttled = 0
    for index in range(2 * CLIENT_BURST):
        try:
            await replicas[index % 2].resolve(f"hf_spread_{index}", "10.0.0.1")
        except TooManyNewTokens:
            throttled += 1
    assert provider.calls == CLIENT_BURST
    assert throttled == CLIENT_BURST


async def test_refusals_are_shared_through_the_store() -> None:
    """A second process on the same store learns of a refusal without asking the provider;
    a good token is still looked up by each (identities are never read from the store)."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    first, second = CountingProvider(delay=0), CountingProvider(delay=0)
    one, two = resolver_on(first, clock, store), resolver_on(second, clock, store)
    assert await one.resolve("hf_bad", "10.0.0.1") is None
    assert await two.resolve("hf_bad", "10.0.0.1") is None
    assert (first.calls, second.calls) == (1, 0)
    assert "hf_bad" not in str(await store.scan(""))
    assert await one.resolve("hf_good", "10.0.0.1") is not None
    assert await two.resolve("hf_good", "10.0.0.1") is not None
    assert (first.calls, second.calls) == (2, 1)
    clock.now += REFUSED_TTL
    assert await two.resolve("hf_bad", "10.0.0.1") is None
    assert second.calls == 2


async def test_a_flood_of_refusals_cannot_evict_a_good_token() -> None:
    """Refused and accepted answers are bounded separately: more refusals than the refused
    cache holds push out refusals only, and the good token stays cached."""
    clock = Clock()
    provider = CountingProvider(delay=0)
    resolver = resolver_on(provider, clock, max_accepted=5, max_refused=20)
    assert await resolver.resolve("hf_good", "10.0.0.1") is not None
    for index in range(50):
        clock.now += 1 / LOOKUP_RATE
        assert await resolver.resolve(f"hf_made_up_{index}", f"10.1.{index}.1") is None
    calls = provider.calls
    assert await resolver.resolve("hf_good", "10.0.0.1") is not None
    assert provider.calls == calls


async def test_the_gateways_own_rechecks_spend_no_clients_allowance() -> None:
    """A websocket's re-check passes no client: no 429, ever."""
    clock = Clock()
    provider = CountingProvider(delay=0)
    resolver = resolver_on(provider, clock)
    for index in range(CLIENT_BURST * 2):
        clock.now += 1 / LOOKUP_RATE
        assert await resolver.resolve(f"hf_recheck_{index}") is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        pytest.param("203.0.113.7", "203.0.113.7", id="IPv4 as it is"),
        pytest.param("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", id="IPv6 by its /64"),
        pytest.param("2001:db8:1:2::ffff", "2001:db8:1:2::/64", id="same /64, same client"),
        pytest.param("::ffff:198.51.100.4", "198.51.100.4", id="IPv4-mapped IPv6"),
        pytest.param("", "", id="no address (unix socket)"),
        pytest.param("x" * 100, "x" * 64, id="not an address, bounded"),
    ],
)
def test_clients_are_known_by_address_and_ipv6_by_its_64(address: str, key: str) -> None:
    """One IPv6 host holds a whole /64, so single addresses would be free allowances."""
    assert client_key(address) == key
