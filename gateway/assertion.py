"""The identity assertion: a short-lived JWT upstreams can verify, and its JWKS.

Claims: iss = public_url, aud = route name, sub = HF sub, preferred_username, name,
email, orgs ``[{sub, slug, role}]``, scope, iat, exp = iat + ttl, jti. The header's
``kid`` is the key's RFC 7638 JWK thumbprint. ES256 by default; RS256 keys work too.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.identity import Identity
from gateway.session.model import b64e

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_key: PrivateKey
    algorithm: str
    kid: str
    public_jwk: dict[str, Any]

    @classmethod
    def from_private_key(cls, key: PrivateKey) -> SigningKey:
        members: tuple[str, ...]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError("EC signing keys must use the P-256 curve (ES256)")
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            algorithm, members = "ES256", ("crv", "kty", "x", "y")
        else:
            if key.key_size < 2048:
                raise ValueError("RSA signing keys must have at least 2048 bits")
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            algorithm, members = "RS256", ("e", "kty", "n")
        public = {m: jwk[m] for m in members}
        kid = jwk_thumbprint(public)
        # Publish the required members only: PyJWT adds "key_ops" to RSA keys, which
        # RFC 7517 §4.3 says should not appear together with "use".
        return cls(key, algorithm, kid, {**public, "kid": kid, "alg": algorithm, "use": "sig"})


def jwk_thumbprint(members: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64e(hashlib.sha256(canonical.encode()).digest())


def load_signing_keys(path: str | Path) -> list[SigningKey]:
    """Every private key in a PEM file, in order: the first signs, all are published.

    Raises ValueError naming the file for anything unusable: no key, a corrupt or
    password-protected key, or a key type, curve or size the assertion does not allow.
    """
    text = Path(path).read_text(encoding="utf-8")
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
    if not blocks:
        raise ValueError(f"{path}: no PEM private key found")
    keys = []
    for index, block in enumerate(blocks):
        try:
            key = load_pem_private_key(block.encode(), password=None)
        except TypeError as exc:
            # cryptography raises TypeError (not ValueError) for an encrypted key read
            # without a password; callers should see one exception type for bad files.
            raise ValueError(f"{path}: key {index + 1} is encrypted; store it unencrypted") from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"{path}: key {index + 1} cannot be read ({exc})") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{path}: only EC P-256 and RSA keys are supported")
        try:
            keys.append(SigningKey.from_private_key(key))
        except ValueError as exc:
            raise ValueError(f"{path}: key {index + 1}: {exc}") from exc
    return keys


def generate_signing_key() -> SigningKey:
    return SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))


class AssertionSigner:
    def __init__(self, keys: Sequence[SigningKey], *, issuer: str, ttl: int) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = tuple(keys)
        self._issuer = issuer
        self._ttl = ttl
        self._jwks = {"keys": [k.public_jwk for k in self._keys]}

    @property
    def ttl(self) -> int:
        return self._ttl

    def sign(self, identity: Identity, audience: str, now: float) -> str:
        key = self._keys[0]
        issued = int(now)
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": identity.sub,
            "preferred_username": identity.username,
            "name": identity.name,
            "email": identity.email,
            "email_verified": identity.email_verified,
            "picture": identity.picture,
            "is_pro": identity.is_pro,
            "orgs": [
                {"sub": org.sub, "slug": org.slug, "name": org.name, "role": org.role}
                for org in identity.counting_orgs
            ],
            "scope": " ".join(sorted(identity.scopes)),
            "iat": issued,
            "exp": issued + self._ttl,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(
            claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document served at /_gateway/jwks.json."""
        return self._jwks


class AssertionCache:
    """Re-use a signed assertion for one session and route for half its lifetime.

    Signing costs far more than a dictionary lookup; a token stays valid for ``ttl`` and is
    handed out only while at least half of that remains. A changed identity (after
    revalidation) always gets a fresh token. Bounded: the oldest entries go first.
    """

    def __init__(self, signer: AssertionSigner, max_entries: int = 10_000) -> None:
        self._signer = signer
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[Identity, float, str]] = OrderedDict()

    def get(self, session_key: str, identity: Identity, audience: str, now: float) -> str:
        key = (session_key, audience)
        entry = self._entries.get(key)
        if entry is not None and now < entry[1] and (entry[0] is identity or entry[0] == identity):
            self._entries.move_to_end(key)
            return entry[2]
        token = self._signer.sign(identity, audience, now)
        self._entries[key] = (identity, int(now) + self._signer.ttl / 2, token)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return token
