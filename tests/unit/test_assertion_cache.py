"""The assertion cache re-uses a signed JWT only while it is fresh and the identity unchanged."""

from __future__ import annotations

import jwt

from gateway.assertion import AssertionCache, AssertionSigner, generate_signing_key
from gateway.identity import Identity, Org

ALICE = Identity(sub="u1", username="alice", orgs=(Org(sub="o1", slug="acme", role="admin"),))


def make_cache(ttl: int = 60, max_entries: int = 100) -> tuple[AssertionCache, AssertionSigner]:
    signer = AssertionSigner([generate_signing_key()], issuer="https://gw.example", ttl=ttl)
    return AssertionCache(signer, max_entries=max_entries), signer


def test_same_session_route_and_identity_reuse_the_token_within_half_the_ttl() -> None:
    """Two requests 10 s apart with a 60 s ttl get the same token."""
    cache, _ = make_cache()
    first = cache.get("s:1", ALICE, "grafana", 1000.0)
    assert cache.get("s:1", ALICE, "grafana", 1010.0) == first


def test_a_token_past_half_its_ttl_is_replaced() -> None:
    """At 30 s into a 60 s token a new one is signed, so upstreams always get >= 30 s."""
    cache, signer = make_cache()
    first = cache.get("s:1", ALICE, "grafana", 1000.0)
    second = cache.get("s:1", ALICE, "grafana", 1030.0)
    assert second != first
    key = signer.jwks()["keys"][0]
    claims = jwt.decode(
        second,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience="grafana",
        options={"verify_exp": False},
    )
    assert claims["iat"] == 1030


def test_routes_and_sessions_never_share_tokens() -> None:
    """The audience is the route, so each route and each session has its own token."""
    cache, _ = make_cache()
    base = cache.get("s:1", ALICE, "grafana", 1000.0)
    assert cache.get("s:1", ALICE, "notebooks", 1000.0) != base
    assert cache.get("s:2", ALICE, "grafana", 1000.0) != base


def test_a_changed_identity_gets_a_fresh_token() -> None:
    """After revalidation changes the orgs, the cached token is not handed out again."""
    cache, _ = make_cache()
    first = cache.get("s:1", ALICE, "grafana", 1000.0)
    demoted = Identity(sub="u1", username="alice", orgs=(Org(sub="o1", slug="acme", role="read"),))
    assert cache.get("s:1", demoted, "grafana", 1001.0) != first


def test_the_cache_is_bounded() -> None:
    """Past max_entries the least recently used entry is dropped and re-signed on demand."""
    cache, _ = make_cache(max_entries=2)
    first = cache.get("s:1", ALICE, "a", 1000.0)
    cache.get("s:2", ALICE, "a", 1000.0)
    cache.get("s:3", ALICE, "a", 1000.0)
    assert cache.get("s:1", ALICE, "a", 1001.0) != first
