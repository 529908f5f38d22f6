"""The fake provider's RS256 key: its JWKS document and ID-token signing.

Hugging Face signs ID tokens with RS256 and (as observed) no ``kid`` header; the
``with_kid`` flags add one. ``forge`` signs with a second key that is never published,
so a verifier must reject the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ID_TOKEN_LIFETIME = 3600
"""Seconds from ``iat`` to ``exp`` in HF ID tokens (HF-OAUTH.md §4.3)."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class SigningKeys:
    """A fresh RSA-2048 signing key (made per instance) plus an unpublished impostor key."""

    def __init__(self) -> None:
        self._key = _new_key()
        self._impostor: rsa.RSAPrivateKey | None = None
        public = self._key.public_key().public_numbers()
        self._public_jwk = {"kty": "RSA", "n": _b64url_uint(public.n), "e": _b64url_uint(public.e)}
        self.kid = _thumbprint(self._public_jwk)

    def jwks(self, *, with_kid: bool) -> dict[str, list[dict[str, str]]]:
        """The ``/oauth/jwks`` document: one RSA key, with ``kid`` only if asked."""
        jwk = {**self._public_jwk, "alg": "RS256", "use": "sig"}
        if with_kid:
            jwk["kid"] = self.kid
        return {"keys": [jwk]}

    def sign(self, claims: dict[str, Any], *, with_kid: bool, forge: bool = False) -> str:
        """A compact RS256 JWS of ``claims``; the header is ``{"alg":"RS256"}`` plus ``kid``."""
        headers: dict[str, Any] = {"typ": None}
        if with_kid:
            headers["kid"] = self.kid
        return jwt.encode(claims, self._signer(forge), algorithm="RS256", headers=headers)

    def _signer(self, forge: bool) -> rsa.RSAPrivateKey:
        if not forge:
            return self._key
        if self._impostor is None:
            self._impostor = _new_key()
        return self._impostor


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
