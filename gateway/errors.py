"""The gateway's exception tree.

    GatewayError
    ├── ConfigError            invalid configuration; carries every problem found
    ├── PathError              a request path the gateway refuses to interpret (400)
    ├── StoreError             the session store failed or is unreachable (503)
    └── ProviderError          the identity provider failed (502/503)
        ├── ProviderUnavailable    metadata, JWKS or an endpoint could not be reached
        │   └── ProviderRateLimited   the provider said 429 (retry_after seconds)
        ├── LoginError             the login could not complete (bad state, bad ID token, ...)
        │   └── AuthorizationDenied   the provider sent error= to the callback
        └── TokenRejected          the provider says a token is invalid or expired

Adapters raise these with ``from exc`` so the cause is kept; web code maps them to a
status code and never shows a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class GatewayError(Exception):
    """Base class for every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; ``problems`` lists each one as ``path: reason``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class PathError(GatewayError):
    """A request path that could be read two ways (encoded slashes, NULs, ...)."""


class StoreError(GatewayError):
    """The session store failed; requests that need it answer 503."""


class ProviderError(GatewayError):
    """The identity provider failed or answered something unusable."""


class ProviderUnavailable(ProviderError):
    """The provider (discovery, JWKS, token or userinfo endpoint) could not be reached."""


class ProviderRateLimited(ProviderUnavailable):
    """The provider refused for now (429); ``retry_after`` seconds until it may answer."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class LoginError(ProviderError):
    """A login could not be completed; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class AuthorizationDenied(LoginError):
    """The provider redirected back with ``error=...`` (for example access_denied)."""


class TokenRejected(ProviderError):
    """The provider rejected a token (401 from userinfo/whoami, invalid_grant on refresh)."""
