"""Verifying X-Gateway-Assertion: signature from the gateway's JWKS, alg, iss, aud, exp."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

from hf_gateway_client._jwks import ALGORITHMS, Fetcher, JWKSCache, urllib_fetch
from hf_gateway_client.errors import InvalidAssertion
from hf_gateway_client.identity import GatewayIdentity

ASSERTION_HEADER = "X-Gateway-Assertion"
ACCESS_TOKEN_HEADER = "X-Forwarded-Access-Token"  # noqa: S105 - a header name
JWKS_PATH = "/_gateway/jwks.json"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "preferred_username", "iat", "exp")

# PyJWT's exception for each check, mapped onto InvalidAssertion's stable codes.
_CODES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "expired"),  # iat/nbf in the future: not valid (yet)
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.MissingRequiredClaimError, "claims"),
    (jwt.exceptions.InvalidSubjectError, "claims"),
    (jwt.exceptions.InvalidJTIError, "claims"),
    (jwt.exceptions.InvalidIssuedAtError, "claims"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
)


class AssertionVerifier:
    """Verifies assertions for one route of one gateway. Make one per process and share it.

    ``jwks_url`` may be an internal address of the gateway; ``issuer`` is always the
    gateway's ``server.public_url`` and ``audience`` the route's name (a list accepts any).
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str | Sequence[str],
        *,
        leeway: float = 5.0,
        jwks_ttl: float = 300.0,
        min_refetch_interval: float = 10.0,
        timeout: float = 5.0,
        header: str = ASSERTION_HEADER,
        fetch: Fetcher = urllib_fetch,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required: they are what binds a token")
        self.issuer = issuer.rstrip("/")
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        self.header = header
        self._leeway = leeway
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.jwks = JWKSCache(
            jwks_url,
            ttl=jwks_ttl,
            min_refetch_interval=min_refetch_interval,
            timeout=timeout,
            fetch=fetch,
            **extra,
        )

    @classmethod
    def for_gateway(
        cls, public_url: str, route: str, *, jwks_base: str | None = None, **options: Any
    ) -> AssertionVerifier:
        """The usual set-up: keys from ``{jwks_base or public_url}/_gateway/jwks.json``."""
        base = (jwks_base or public_url).rstrip("/")
        return cls(f"{base}{JWKS_PATH}", public_url, route, **options)

    # ------------------------------------------------------------------ tokens

    def verify(self, token: str) -> GatewayIdentity:
        """The caller a valid token describes; raises InvalidAssertion or JWKSUnavailable.

        May block on fetching the JWKS (at most ``timeout`` seconds); in async code use
        ``averify``.
        """
        algorithm, kid = self._header(token)
        return self._decode(token, algorithm, self.jwks.get(kid))

    async def averify(self, token: str) -> GatewayIdentity:
        """``verify`` for async code: a key already cached is used at once; a fetch runs in
        a worker thread so the event loop never waits on the network."""
        algorithm, kid = self._header(token)
        key = self.jwks.cached(kid)
        if key is None:
            key = await asyncio.to_thread(self.jwks.get, kid)
        return self._decode(token, algorithm, key)

    # ----------------------------------------------------------------- headers

    def token_from(self, headers: Mapping[str, str]) -> str:
        """The assertion in ``headers`` (any mapping; names compared ignoring case)."""
        return header_value(headers, self.header)

    def verify_headers(self, headers: Mapping[str, str]) -> GatewayIdentity | None:
        """None when the gateway sent no assertion (an anonymous request on a public path),
        the caller when it sent a valid one; raises for an invalid one."""
        token = self.token_from(headers)
        return self.verify(token) if token else None

    async def averify_headers(self, headers: Mapping[str, str]) -> GatewayIdentity | None:
        token = self.token_from(headers)
        return await self.averify(token) if token else None

    # ---------------------------------------------------------------- internals

    def _header(self, token: str) -> tuple[str, str]:
        if not token:
            raise InvalidAssertion("missing", "no assertion")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidAssertion("malformed", "not a compact JWS") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise InvalidAssertion("algorithm", f"alg must be ES256 or RS256, not {algorithm!r}")
        if not isinstance(kid, str) or not kid:
            raise InvalidAssertion("malformed", "the header has no kid")
        return algorithm, kid

    def _decode(self, token: str, algorithm: str, key: jwt.PyJWK) -> GatewayIdentity:
        if key.algorithm_name != algorithm:
            # An RS256 header over an EC key (or the reverse) is never the gateway's.
            raise InvalidAssertion("algorithm", "alg does not match the key's")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            code = next((c for kind, c in _CODES if isinstance(exc, kind)), "malformed")
            raise InvalidAssertion(code, str(exc)) from exc
        return GatewayIdentity.from_claims(claims)


def header_value(headers: Mapping[str, str], name: str) -> str:
    """A header's value from any mapping: case-insensitive ones (Starlette, aiohttp, Flask)
    directly, plain dicts (gr.Request in some modes) by comparing names ignoring case."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return (value or "").strip()
