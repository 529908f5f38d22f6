"""AssertionVerifier against tokens from the gateway's own signer and a real JWKS server.

Every attack sits beside the valid token it is a variation of.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.assertion import AssertionSigner, SigningKey, generate_signing_key
from hf_gateway_client import AssertionVerifier, InvalidAssertion, JWKSUnavailable
from tests.client.conftest import ALICE, ISSUER, ROUTE, JWKSServer


class Clock:
    """Monotonic time the test moves by hand (TTL and rate-limit tests)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier_for(server: JWKSServer, **options: Any) -> AssertionVerifier:
    return AssertionVerifier(server.url, ISSUER, ROUTE, **options)


def forge(key: SigningKey, claims: dict[str, Any], **header: Any) -> str:
    """A token signed with a real gateway key but claims of the test's choosing."""
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, **header}
    )


def claims_now(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ROUTE,
        "sub": "3f50",
        "preferred_username": "alice",
        "name": "Alice",
        "email": None,
        "orgs": [],
        "scope": "openid profile",
        "iat": now,
        "exp": now + 60,
        "jti": "x",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not ...}


def code_of(verifier: AssertionVerifier, token: str) -> str:
    with pytest.raises(InvalidAssertion) as caught:
        verifier.verify(token)
    return caught.value.code


# --------------------------------------------------------------------------- the valid token


def test_a_gateway_assertion_verifies_into_the_caller(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """sub, username, name, email, counting orgs with roles, scopes, iss, aud and times."""
    now = time.time()
    identity = verifier_for(jwks_server).verify(signer.sign(ALICE, ROUTE, now))
    assert (identity.sub, identity.username, identity.name, identity.email) == (
        "3f501019b1460301dacf1e59",
        "alice",
        "Alice Liddell",
        "alice@example.com",
    )
    assert [(o.slug, o.role) for o in identity.orgs] == [("acme", "admin"), ("hf-tools", "read")]
    assert identity.scopes == {"openid", "profile", "email", "read-memberships"}
    assert (identity.issuer, identity.audience) == (ISSUER, ROUTE)
    assert identity.expires_at.timestamp() == int(now) + 60
    assert identity.has_role("ACME", "write") and not identity.has_role("hf-tools", "write")
    assert identity.org("secure-corp") is None  # SSO pending: the gateway left it out


def test_an_rs256_gateway_key_verifies_too(jwks_server: JWKSServer) -> None:
    key = SigningKey.from_private_key(rsa.generate_private_key(65537, 2048))
    rsa_signer = AssertionSigner([key], issuer=ISSUER, ttl=60)
    jwks_server.publish(rsa_signer)
    assert verifier_for(jwks_server).verify(rsa_signer.sign(ALICE, ROUTE, time.time())).sub


def test_one_fetch_serves_many_tokens_until_the_ttl(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    clock = Clock()
    verifier = verifier_for(jwks_server, clock=clock, jwks_ttl=300)
    for _ in range(5):
        verifier.verify(signer.sign(ALICE, ROUTE, time.time()))
    assert jwks_server.requests == 1
    clock.now += 301
    verifier.verify(signer.sign(ALICE, ROUTE, time.time()))
    assert jwks_server.requests == 2


async def test_averify_fetches_off_the_event_loop(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """The first call fetches in a worker thread; later ones use the cache at once."""
    fetched_on: list[str] = []
    verifier = verifier_for(jwks_server)
    original = verifier.jwks._fetch

    def recording_fetch(url: str, timeout: float) -> bytes:
        fetched_on.append(threading.current_thread().name)
        return original(url, timeout)

    verifier.jwks._fetch = recording_fetch
    token = signer.sign(ALICE, ROUTE, time.time())
    identities = await asyncio.gather(*(verifier.averify(token) for _ in range(3)))
    assert {i.username for i in identities} == {"alice"}
    assert fetched_on and threading.main_thread().name not in fetched_on
    assert jwks_server.requests == 1  # the lock made the three share one fetch


def test_headers_are_read_ignoring_case_and_empty_means_anonymous(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    token = signer.sign(ALICE, ROUTE, time.time())
    assert verifier.verify_headers({"x-gateway-assertion": token}) is not None
    assert verifier.verify_headers({"X-Gateway-Assertion": token}) is not None
    assert verifier.verify_headers({"X-Gateway-Assertion": ""}) is None
    assert verifier.verify_headers({}) is None


def test_a_list_of_audiences_accepts_each_route(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    verifier = AssertionVerifier(jwks_server.url, ISSUER, [ROUTE, "other"])
    for route in (ROUTE, "other"):
        assert verifier.verify(signer.sign(ALICE, route, time.time())).audience == route


# --------------------------------------------------------------------------- attacks


def test_alg_none_is_refused(signing_key: SigningKey, jwks_server: JWKSServer) -> None:
    """An unsigned token with the gateway's kid is refused before any key is looked up."""
    verifier = verifier_for(jwks_server)
    assert verifier.verify(forge(signing_key, claims_now())).username == "alice"
    unsigned = jwt.encode(claims_now(), None, algorithm="none", headers={"kid": signing_key.kid})
    assert code_of(verifier, unsigned) == "algorithm"


def test_hs256_keyed_with_the_public_key_is_refused(
    signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    """The classic confusion: HMAC with the published key as secret."""
    verifier = verifier_for(jwks_server)
    assert verifier.verify(forge(signing_key, claims_now())).username == "alice"
    public_pem = signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": signing_key.kid, "typ": "JWT"}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims_now()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert code_of(verifier, f"{signing_input}.{b64(mac)}") == "algorithm"


def test_an_rs256_header_over_the_ec_key_is_refused(
    signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    other = SigningKey.from_private_key(rsa.generate_private_key(65537, 2048))
    token = jwt.encode(
        claims_now(), other.private_key, algorithm="RS256", headers={"kid": signing_key.kid}
    )
    assert code_of(verifier, token) == "algorithm"


def test_a_token_for_another_gateway_is_refused(
    signer: AssertionSigner, signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    assert verifier.verify(signer.sign(ALICE, ROUTE, time.time())).issuer == ISSUER
    foreign = AssertionSigner([signing_key], issuer="https://evil.example.com", ttl=60)
    assert code_of(verifier, foreign.sign(ALICE, ROUTE, time.time())) == "issuer"


def test_a_token_for_another_route_is_refused(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    assert verifier.verify(signer.sign(ALICE, ROUTE, time.time())).audience == ROUTE
    assert code_of(verifier, signer.sign(ALICE, "grafana", time.time())) == "audience"


def test_an_expired_token_is_refused_past_the_leeway(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """ttl 60 s, leeway 5 s: issued 63 s ago passes, issued 66 s ago does not."""
    verifier = verifier_for(jwks_server, leeway=5)
    assert verifier.verify(signer.sign(ALICE, ROUTE, time.time() - 63)).username == "alice"
    assert code_of(verifier, signer.sign(ALICE, ROUTE, time.time() - 66)) == "expired"


def test_a_token_issued_in_the_future_is_refused(
    signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    later = int(time.time()) + 600
    assert code_of(verifier, forge(signing_key, claims_now(iat=later, exp=later + 60))) == "expired"


@pytest.mark.parametrize("claim", ["sub", "preferred_username", "iss", "aud", "exp", "iat"])
def test_a_token_without_a_required_claim_is_refused(
    claim: str, signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    assert verifier.verify(forge(signing_key, claims_now())).sub == "3f50"
    assert code_of(verifier, forge(signing_key, claims_now(**{claim: ...}))) == "claims"


@pytest.mark.parametrize(
    "changes",
    [{"sub": ""}, {"sub": 7}, {"orgs": "acme"}, {"orgs": [{"slug": "acme"}]}, {"email": 3}],
)
def test_a_token_with_claims_of_the_wrong_type_is_refused(
    changes: dict[str, Any], signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    verifier = verifier_for(jwks_server)
    assert verifier.verify(forge(signing_key, claims_now(orgs=[{"sub": "o", "slug": "acme"}])))
    assert code_of(verifier, forge(signing_key, claims_now(**changes))) == "claims"


def test_a_tampered_payload_is_refused(signer: AssertionSigner, jwks_server: JWKSServer) -> None:
    verifier = verifier_for(jwks_server)
    token = signer.sign(ALICE, ROUTE, time.time())
    assert verifier.verify(token).username == "alice"
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert code_of(verifier, f"{head}.{forged}.{signature}") == "signature"


def test_a_key_claiming_the_gateways_kid_is_refused(
    signing_key: SigningKey, jwks_server: JWKSServer
) -> None:
    """Somebody else's P-256 key, with the published kid in the header."""
    verifier = verifier_for(jwks_server)
    assert verifier.verify(forge(signing_key, claims_now())).username == "alice"
    impostor = generate_signing_key()
    token = jwt.encode(
        claims_now(), impostor.private_key, algorithm="ES256", headers={"kid": signing_key.kid}
    )
    assert code_of(verifier, token) == "signature"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(token: str, jwks_server: JWKSServer) -> None:
    assert code_of(verifier_for(jwks_server), token) in {"missing", "malformed"}
    assert jwks_server.requests == 0


# --------------------------------------------------------------------------- keys


def test_a_rotated_key_is_fetched_once_and_unknown_kids_are_rate_limited(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """A new kid costs one refetch (then verifies); made-up kids cost nothing more."""
    clock = Clock()
    verifier = verifier_for(jwks_server, clock=clock, min_refetch_interval=10)
    verifier.verify(signer.sign(ALICE, ROUTE, time.time()))
    clock.now += 11
    rotated = AssertionSigner([generate_signing_key()], issuer=ISSUER, ttl=60)
    jwks_server.publish(rotated, signer)
    assert verifier.verify(rotated.sign(ALICE, ROUTE, time.time())).username == "alice"
    assert jwks_server.requests == 2

    stranger = AssertionSigner([generate_signing_key()], issuer=ISSUER, ttl=60)
    for _ in range(20):
        assert code_of(verifier, stranger.sign(ALICE, ROUTE, time.time())) == "unknown_key"
    assert jwks_server.requests == 2  # within min_refetch_interval of the last fetch
    clock.now += 11
    assert code_of(verifier, stranger.sign(ALICE, ROUTE, time.time())) == "unknown_key"
    assert jwks_server.requests == 3


def test_an_unreachable_jwks_fails_closed_and_is_not_hammered(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """Cached keys serve while fresh; once stale and the gateway is down nobody passes, and
    retries wait min_refetch_interval."""
    clock = Clock()
    verifier = verifier_for(jwks_server, clock=clock, jwks_ttl=300, min_refetch_interval=10)
    token = signer.sign(ALICE, ROUTE, time.time())
    verifier.verify(token)
    jwks_server.status = 503
    assert verifier.verify(token).username == "alice"  # fresh cache: no fetch
    clock.now += 301
    with pytest.raises(JWKSUnavailable):
        verifier.verify(token)
    with pytest.raises(JWKSUnavailable):
        verifier.verify(token)
    assert jwks_server.requests == 2
    jwks_server.status = 200
    clock.now += 11
    assert verifier.verify(token).username == "alice"


def test_keys_of_other_kinds_in_the_jwks_are_ignored(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """An oct (HMAC) key or a key for encryption never verifies a signature."""
    real = signer.jwks()["keys"][0]
    assert verifier_for(jwks_server).verify(signer.sign(ALICE, ROUTE, time.time()))
    verifier = verifier_for(jwks_server)
    jwks_server.document = {"keys": [{**real, "use": "enc"}]}
    assert code_of(verifier, signer.sign(ALICE, ROUTE, time.time())) == "unknown_key"

    secret = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()
    jwks_server.document = {"keys": [{"kty": "oct", "k": secret, "kid": "h", "alg": "HS256"}]}
    hs = jwt.encode(claims_now(), b"k" * 32, algorithm="HS256", headers={"kid": "h"})
    assert code_of(verifier_for(jwks_server), hs) == "algorithm"


def test_the_verifier_needs_an_issuer_and_an_audience(jwks_server: JWKSServer) -> None:
    assert AssertionVerifier.for_gateway(ISSUER, ROUTE).jwks.url == f"{ISSUER}/_gateway/jwks.json"
    with pytest.raises(ValueError, match="issuer and audience"):
        AssertionVerifier(jwks_server.url, ISSUER, "")
