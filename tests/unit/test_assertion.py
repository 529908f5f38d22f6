"""The identity assertion JWT and its JWKS (DESIGN.md §4a "Assertion JWT", SECURITY.md §9).

Tokens are verified the way an upstream would: with PyJWT and the published JWKS only.
Key ids are checked against thumbprints computed here from the raw key numbers, and
against the example in RFC 7638 itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.assertion import (
    AssertionSigner,
    SigningKey,
    generate_signing_key,
    jwk_thumbprint,
    load_signing_keys,
)
from gateway.identity import Identity
from tests.unit.conftest import org

ISSUER = "https://tools.example.com"
TTL = 60
ALICE = Identity(
    sub="3f501019b1460301dacf1e59",
    username="alice",
    name="Alice Liddell",
    email="alice@example.com",
    email_verified=True,
    picture="https://cdn.example/avatars/alice.png",
    is_pro=True,
    orgs=(
        org("acme", "admin", sub="6650a1c2"),
        org("secure-corp", "write", sub="77aa", restrictions=["sso"]),
        org("hf-tools", "read", sub="9af2"),
    ),
    scopes=frozenset({"profile", "openid", "read-memberships", "email"}),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, size: int | None = None) -> str:
    length = size if size is not None else (value.bit_length() + 7) // 8
    return _b64(value.to_bytes(length, "big"))


def independent_thumbprint(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """RFC 7638 from the raw key numbers: required members, lexical order, no spaces."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        canonical = (
            f'{{"crv":"P-256","kty":"EC","x":"{_uint(numbers.x, 32)}",'
            f'"y":"{_uint(numbers.y, 32)}"}}'
        )
    else:
        public = key.public_key().public_numbers()
        canonical = f'{{"e":"{_uint(public.e)}","kty":"RSA","n":"{_uint(public.n)}"}}'
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def verify(
    token: str,
    jwks: dict[str, Any],
    *,
    audience: str = "grafana",
    issuer: str = ISSUER,
    algorithms: tuple[str, ...] = ("ES256", "RS256"),
) -> dict[str, Any]:
    """What an upstream does: pick the key by kid from the JWKS, check aud, iss and exp."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=list(algorithms),
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return claims


def write_pem(path: Path, *keys: Any, fmt: str = "pkcs8") -> Path:
    private_format = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }[fmt]
    path.write_bytes(
        b"".join(
            k.private_bytes(
                serialization.Encoding.PEM, private_format, serialization.NoEncryption()
            )
            for k in keys
        )
    )
    return path


@pytest.fixture
def signer() -> AssertionSigner:
    return AssertionSigner([generate_signing_key()], issuer=ISSUER, ttl=TTL)


# --------------------------------------------------------------------------- claims


def test_the_claims_describe_the_user_for_one_route(signer: AssertionSigner) -> None:
    """iss, aud, sub, names, email and its verification, picture, PRO, counting orgs,
    scope, iat and exp = iat + ttl."""
    now = time.time()
    claims = verify(signer.sign(ALICE, "grafana", now), signer.jwks())
    jti = claims.pop("jti")
    assert claims == {
        "iss": ISSUER,
        "aud": "grafana",
        "sub": "3f501019b1460301dacf1e59",
        "preferred_username": "alice",
        "name": "Alice Liddell",
        "email": "alice@example.com",
        "email_verified": True,
        "picture": "https://cdn.example/avatars/alice.png",
        "is_pro": True,
        "orgs": [
            {"sub": "6650a1c2", "slug": "acme", "name": "Acme", "role": "admin"},
            {"sub": "9af2", "slug": "hf-tools", "name": "Hf-Tools", "role": "read"},
        ],
        "scope": "email openid profile read-memberships",
        "iat": int(now),
        "exp": int(now) + TTL,
    }
    assert isinstance(jti, str) and len(jti) >= 16


def test_an_org_with_unmet_restrictions_is_left_out(signer: AssertionSigner) -> None:
    """Only orgs that count reach the token (DESIGN §4a); the restricted one does not."""
    claims = verify(signer.sign(ALICE, "grafana", time.time()), signer.jwks())
    assert "secure-corp" not in {o["slug"] for o in claims["orgs"]}
    assert "77aa" not in {o["sub"] for o in claims["orgs"]}


def test_missing_fields_and_ungranted_orgs_are_explicit(signer: AssertionSigner) -> None:
    """A user without email or orgs gets null and [], and an ungranted org has role null."""
    dave = Identity(sub="db66", username="dave", orgs=(org("acme", None, sub="o1"),))
    claims = verify(signer.sign(dave, "grafana", time.time()), signer.jwks())
    assert claims["email"] is None
    assert claims["name"] == ""
    assert claims["orgs"] == [{"sub": "o1", "slug": "acme", "name": "Acme", "role": None}]
    assert (claims["picture"], claims["email_verified"], claims["is_pro"]) == (None, False, False)
    bare = Identity(sub="x", username="x")
    assert verify(signer.sign(bare, "grafana", time.time()), signer.jwks())["orgs"] == []


def test_every_token_has_its_own_jti(signer: AssertionSigner) -> None:
    """Two tokens for the same user, route and second still differ by jti."""
    now = time.time()
    jtis = {verify(signer.sign(ALICE, "grafana", now), signer.jwks())["jti"] for _ in range(20)}
    assert len(jtis) == 20


@pytest.mark.parametrize("ttl", [1, 60, 3600])
def test_exp_is_iat_plus_the_ttl(ttl: int) -> None:
    """The token lives exactly ttl seconds from the second it was signed."""
    signer = AssertionSigner([generate_signing_key()], issuer=ISSUER, ttl=ttl)
    claims = jwt.decode(
        signer.sign(ALICE, "grafana", 1_000_000.75),
        options={"verify_signature": False},
    )
    assert claims["iat"] == 1_000_000
    assert claims["exp"] == 1_000_000 + ttl
    assert signer.ttl == ttl


# --------------------------------------------------------------------------- keys and kid


def test_the_header_names_the_key_by_its_rfc7638_thumbprint() -> None:
    """kid = thumbprint, computed here independently of the code under test."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer = AssertionSigner([SigningKey.from_private_key(key)], issuer=ISSUER, ttl=TTL)
    header = jwt.get_unverified_header(signer.sign(ALICE, "grafana", time.time()))
    assert header["alg"] == "ES256"
    assert header["kid"] == independent_thumbprint(key)


def test_the_thumbprint_matches_the_rfc7638_example() -> None:
    """RFC 7638 §3.1's RSA key has the thumbprint the RFC prints."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhA"
        "I4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    assert jwk_thumbprint({"e": "AQAB", "kty": "RSA", "n": n}) == (
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    )


def test_the_jwks_publishes_only_public_members(signer: AssertionSigner) -> None:
    """The JWKS holds kty, crv, x, y, kid, alg and use: never the private scalar."""
    (key,) = signer.jwks()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32


# --------------------------------------------------------------------------- verification


def test_a_token_signed_by_another_key_is_rejected(signer: AssertionSigner) -> None:
    """A forger who copies our kid but not our key fails verification."""
    ours = signer.sign(ALICE, "grafana", time.time())
    assert verify(ours, signer.jwks())["sub"] == ALICE.sub
    forged_claims = jwt.decode(ours, options={"verify_signature": False})
    kid = jwt.get_unverified_header(ours)["kid"]
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(forged_claims, other, algorithm="ES256", headers={"kid": kid})
    with pytest.raises(jwt.InvalidSignatureError):
        verify(forged, signer.jwks())


def test_a_token_of_another_gateway_has_an_unknown_kid(signer: AssertionSigner) -> None:
    """Another gateway's token names a key our JWKS does not have."""
    other = AssertionSigner([generate_signing_key()], issuer=ISSUER, ttl=TTL)
    with pytest.raises(KeyError):
        verify(other.sign(ALICE, "grafana", time.time()), signer.jwks())


@pytest.mark.parametrize(
    ("audience", "issuer", "error"),
    [
        pytest.param("notebooks", ISSUER, jwt.InvalidAudienceError, id="another route"),
        pytest.param("grafana", "https://evil.example", jwt.InvalidIssuerError, id="another iss"),
        pytest.param("grafana", ISSUER + "/", jwt.InvalidIssuerError, id="iss with a slash"),
    ],
)
def test_a_token_for_another_audience_or_issuer_is_rejected(
    signer: AssertionSigner, audience: str, issuer: str, error: type[Exception]
) -> None:
    """A token for one route is useless on another, and bound to its issuer."""
    token = signer.sign(ALICE, "grafana", time.time())
    assert verify(token, signer.jwks())["aud"] == "grafana"
    with pytest.raises(error):
        verify(token, signer.jwks(), audience=audience, issuer=issuer)


def test_an_expired_token_is_rejected(signer: AssertionSigner) -> None:
    """A token signed longer than ttl ago no longer verifies."""
    stale = signer.sign(ALICE, "grafana", time.time() - TTL - 5)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(stale, signer.jwks())


def test_an_unsigned_or_hmac_token_is_rejected(signer: AssertionSigner) -> None:
    """alg none and HS256 with the public key as the secret are refused."""
    token = signer.sign(ALICE, "grafana", time.time())
    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": kid})
    with pytest.raises(jwt.InvalidTokenError):
        verify(unsigned, signer.jwks())
    with pytest.raises(jwt.InvalidTokenError):
        verify(unsigned, signer.jwks(), algorithms=("ES256", "none"))
    # HS256 keyed with the published JWK: PyJWT will not build this, so do it by hand.
    (jwk,) = signer.jwks()["keys"]
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    secret = json.dumps(jwk, sort_keys=True).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(jwt.InvalidTokenError):
        verify(f"{header}.{payload}.{_b64(mac)}", signer.jwks(), algorithms=("ES256", "HS256"))


# --------------------------------------------------------------------------- key files


def test_an_rs256_key_file_signs_verifiable_tokens(tmp_path: Path) -> None:
    """An RSA key yields RS256 tokens with an RSA JWK and its own thumbprint as kid."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (signing,) = load_signing_keys(write_pem(tmp_path / "rsa.pem", key))
    assert signing.algorithm == "RS256"
    assert signing.kid == independent_thumbprint(key)
    signer = AssertionSigner([signing], issuer=ISSUER, ttl=TTL)
    (jwk,) = signer.jwks()["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["alg"]) == ("RSA", "RS256")
    token = signer.sign(ALICE, "grafana", time.time())
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert verify(token, signer.jwks(), algorithms=("RS256",))["sub"] == ALICE.sub


def test_several_keys_in_one_file_first_signs_all_are_published(tmp_path: Path) -> None:
    """Rotation: the first key signs; every key, in file order, is in the JWKS."""
    new = ec.generate_private_key(ec.SECP256R1())
    old_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    older = ec.generate_private_key(ec.SECP256R1())
    path = write_pem(tmp_path / "keys.pem", new, old_rsa, older)
    keys = load_signing_keys(path)
    kids = [independent_thumbprint(k) for k in (new, old_rsa, older)]
    assert [k.kid for k in keys] == kids
    signer = AssertionSigner(keys, issuer=ISSUER, ttl=TTL)
    assert [k["kid"] for k in signer.jwks()["keys"]] == kids
    token = signer.sign(ALICE, "grafana", time.time())
    assert jwt.get_unverified_header(token)["kid"] == kids[0]
    assert verify(token, signer.jwks())["sub"] == ALICE.sub


def test_an_older_key_still_verifies_its_tokens_after_rotation(tmp_path: Path) -> None:
    """A token signed before rotation verifies against the JWKS published after it."""
    old = ec.generate_private_key(ec.SECP256R1())
    before = AssertionSigner(
        load_signing_keys(write_pem(tmp_path / "old.pem", old)), issuer=ISSUER, ttl=TTL
    )
    token = before.sign(ALICE, "grafana", time.time())
    new = ec.generate_private_key(ec.SECP256R1())
    after = AssertionSigner(
        load_signing_keys(write_pem(tmp_path / "both.pem", new, old)), issuer=ISSUER, ttl=TTL
    )
    assert verify(token, after.jwks())["sub"] == ALICE.sub


def test_traditional_openssl_pem_blocks_load(tmp_path: Path) -> None:
    """'BEGIN EC PRIVATE KEY' and 'BEGIN RSA PRIVATE KEY' files work like PKCS#8."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = write_pem(tmp_path / "trad.pem", ec_key, rsa_key, fmt="traditional")
    assert b"BEGIN EC PRIVATE KEY" in path.read_bytes()
    keys = load_signing_keys(path)
    assert [k.algorithm for k in keys] == ["ES256", "RS256"]


def test_text_around_the_keys_is_ignored(tmp_path: Path) -> None:
    """Comments and certificates beside the keys do not matter; only private keys count."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "commented.pem"
    path.write_bytes(b"# current key, rotated 2026-01\n" + pem + b"\n# end\n")
    (loaded,) = load_signing_keys(path)
    assert loaded.kid == independent_thumbprint(key)


def _p384() -> Any:
    return ec.generate_private_key(ec.SECP384R1())


def _secp256k1() -> Any:
    return ec.generate_private_key(ec.SECP256K1())


def _rsa1024() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused


def _ed25519() -> Any:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(_p384, "P-256", id="EC P-384"),
        pytest.param(_secp256k1, "P-256", id="EC secp256k1"),
        pytest.param(_rsa1024, "2048", id="RSA 1024"),
        pytest.param(_ed25519, "only EC P-256 and RSA", id="Ed25519"),
    ],
)
def test_unsupported_keys_are_rejected(tmp_path: Path, make: Any, message: str) -> None:
    """Curves other than P-256, small RSA keys and other key types are refused."""
    path = write_pem(tmp_path / "key.pem", make())
    with pytest.raises(ValueError, match=message):
        load_signing_keys(path)


@pytest.mark.parametrize("make", [_p384, _rsa1024], ids=["EC P-384", "RSA 1024"])
def test_an_unsupported_key_is_rejected_even_after_a_good_one(tmp_path: Path, make: Any) -> None:
    """A bad key anywhere in the file fails the whole file, not silently skipped."""
    path = write_pem(tmp_path / "key.pem", ec.generate_private_key(ec.SECP256R1()), make())
    with pytest.raises(ValueError, match="key 2"):
        load_signing_keys(path)


def test_from_private_key_refuses_the_same_keys_directly() -> None:
    """The key check lives in SigningKey, so generated keys obey it too."""
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_private_key(_p384())
    with pytest.raises(ValueError, match="2048"):
        SigningKey.from_private_key(_rsa1024())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "no PEM private key", id="empty"),
        pytest.param(b"not a key\n", "no PEM private key", id="text"),
        pytest.param(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "no PEM private key",
            id="a public key",
        ),
        pytest.param(
            b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
            "cannot be read",
            id="corrupt",
        ),
    ],
)
def test_a_file_without_a_usable_key_is_rejected(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Files that hold no readable private key raise ValueError naming the file."""
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as raised:
        load_signing_keys(path)
    assert str(path) in str(raised.value)


def test_an_encrypted_key_is_a_value_error(tmp_path: Path) -> None:
    """A password-protected key is reported like any unusable file (not a TypeError)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "encrypted.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ValueError, match="encrypted"):
        load_signing_keys(path)


def test_a_signer_needs_a_key() -> None:
    """There is no unsigned mode."""
    with pytest.raises(ValueError, match="at least one"):
        AssertionSigner([], issuer=ISSUER, ttl=TTL)
