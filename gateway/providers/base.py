"""The Provider protocol: what the web layer needs from an identity provider."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.identity import Identity


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Tokens from the provider's token endpoint; ``scopes`` are the granted ones."""

    access_token: str
    refresh_token: str | None
    expires_at: float | None
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class LoginResult:
    identity: Identity
    tokens: TokenSet


class Provider(Protocol):
    @property
    def ready(self) -> bool:
        """True once the provider's metadata has loaded at least once."""
        ...

    async def load_metadata(self) -> None:
        """Fetch (or refresh) discovery metadata; raise ProviderUnavailable on failure."""
        ...

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
        """Where to send the browser to sign in (PKCE S256 of ``code_verifier``, state and
        nonce always)."""
        ...

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
        """Redeem a code, verify the ID token and read the user's full identity.

        ``scopes`` are the ones the authorization asked for: the granted set when the
        token response does not say (RFC 6749 §5.1)."""
        ...

    async def refresh(self, refresh_token: str, scopes: frozenset[str], now: float) -> TokenSet:
        """New tokens from a refresh token; TokenRejected when it no longer works."""
        ...

    async def fetch_identity(self, tokens: TokenSet) -> Identity:
        """Re-read the identity (orgs, roles) with an access token; TokenRejected on 401."""
        ...

    async def identity_for_token(self, token: str) -> Identity:
        """The user behind an access token a script sends as ``Authorization: Bearer``.

        TokenRejected when it is not a valid user token; ProviderRateLimited (with
        retry_after) when the provider throttles; ProviderUnavailable otherwise."""
        ...

    async def close(self) -> None: ...
