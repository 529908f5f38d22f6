"""Bearer tokens: which Authorization headers are looked up, whoami's shape, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.errors import ProviderRateLimited, TokenRejected
from gateway.identity import Identity
from gateway.providers.base import LoginResult, TokenSet
from gateway.providers.huggingface import whoami_identity
from gateway.providers.oidc import retry_after_seconds
from gateway.web.bearer import (
    ACCEPTED_TTL,
    LOOKUP_BURST,
    LOOKUP_RATE,
    REFUSED_TTL,
    TokenResolver,
    bearer_token,
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

    def __init__(self) -> None:
        self.calls = 0

    async def identity_for_token(self, token: str) -> Identity:
        self.calls += 1
        await asyncio.sleep(0.01)
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


async def test_answers_are_cached_for_their_ttl_and_refusals_for_less() -> None:
    """A good token is looked up once a minute, a refused one every ten seconds."""
    now = [1000.0]
    provider = CountingProvider()
    resolver = TokenResolver(provider, clock=lambda: now[0])
    assert (await resolver.resolve("hf_good")) is not None
    assert await resolver.resolve("hf_bad") is None
    await resolver.resolve("hf_good")
    await resolver.resolve("hf_bad")
    assert provider.calls == 2
    now[0] += REFUSED_TTL
    await resolver.resolve("hf_bad")
    await resolver.resolve("hf_good")
    assert provider.calls == 3
    now[0] += ACCEPTED_TTL
    await resolver.resolve("hf_good")
    assert provider.calls == 4


async def test_concurrent_requests_with_one_token_share_one_lookup() -> None:
    """Twenty requests arriving together make one whoami call."""
    provider = CountingProvider()
    resolver = TokenResolver(provider)
    results = await asyncio.gather(*(resolver.resolve("hf_good") for _ in range(20)))
    assert provider.calls == 1
    assert {r.username for r in results if r} == {"alice"}


async def test_a_flood_of_unknown_tokens_is_throttled_before_it_reaches_the_provider() -> None:
    """After a burst, new tokens are checked at a few per second; known ones stay instant."""
    now = [1000.0]
    provider = CountingProvider()
    resolver = TokenResolver(provider, clock=lambda: now[0])
    assert await resolver.resolve("hf_good") is not None
    for index in range(LOOKUP_BURST - 1):
        assert await resolver.resolve(f"hf_made_up_{index}") is None
    with pytest.raises(ProviderRateLimited) as refused:
        await resolver.resolve("hf_one_too_many")
    assert refused.value.retry_after == 1
    assert provider.calls == LOOKUP_BURST
    assert await resolver.resolve("hf_good") is not None  # cached: no lookup needed
    now[0] += 1 / LOOKUP_RATE
    assert await resolver.resolve("hf_one_too_many") is None
