"""The gateway's public keys, fetched from its JWKS and cached.

Keys are kept for ``ttl`` seconds. A token naming a ``kid`` the cache does not hold triggers
one refetch (the gateway rotated or restarted), at most once per ``min_refetch_interval``, so
a stream of tokens with made-up kids cannot turn into a stream of requests to the gateway.
Fetching uses the standard library only; one lock makes concurrent threads share a fetch.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from hf_gateway_client.errors import InvalidAssertion, JWKSUnavailable

ALGORITHMS = ("ES256", "RS256")
"""What the gateway signs with (gateway/assertion.py); nothing else is ever accepted."""

_KEY_TYPES = {"ES256": "EC", "RS256": "RSA"}
_MAX_BYTES = 1 << 20  # a JWKS is a few hundred bytes; refuse to buffer anything huge

Fetcher = Callable[[str, float], bytes]
"""fetch(url, timeout) -> body; raises OSError (or ValueError) when it cannot."""


def urllib_fetch(url: str, timeout: float) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"the JWKS URL must be http(s): {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read(_MAX_BYTES + 1)
    if len(body) > _MAX_BYTES:
        raise ValueError("the JWKS is larger than 1 MiB")
    return body


def parse_jwks(body: bytes) -> dict[str, jwt.PyJWK]:
    """Signing keys by kid: EC P-256 for ES256 and RSA for RS256; anything else is skipped."""
    document = json.loads(body)
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        key = _signing_key(entry)
        if key is not None:
            keys[str(entry["kid"])] = key
    return keys


def _signing_key(entry: Any) -> jwt.PyJWK | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
        return None
    algorithm = entry.get("alg")
    if algorithm not in ALGORITHMS or entry.get("kty") != _KEY_TYPES[algorithm]:
        return None
    if entry.get("use", "sig") != "sig":
        return None
    try:
        return jwt.PyJWK(dict(entry), algorithm=algorithm)
    except jwt.PyJWTError:
        return None


class JWKSCache:
    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refetch_interval: float = 10.0,
        timeout: float = 5.0,
        fetch: Fetcher = urllib_fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._ttl = ttl
        self._min_interval = min_refetch_interval
        self._timeout = timeout
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0
        """Requests made to the JWKS URL, successful or not (for tests and metrics)."""

    def cached(self, kid: str) -> jwt.PyJWK | None:
        """The key, when it can be had without fetching; None means get() would fetch."""
        if self._fresh():
            return self._keys.get(kid)
        return None

    def get(self, kid: str) -> jwt.PyJWK:
        """The key for ``kid``, fetching when the cache is stale or does not know it.

        Raises InvalidAssertion for a kid the gateway does not publish, JWKSUnavailable when
        the keys cannot be fetched (an expired cache is not used: keys may have been revoked).
        """
        key = self.cached(kid)
        if key is not None:
            return key
        with self._lock:
            if not self._fresh() or (kid not in self._keys and self._may_refetch()):
                self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidAssertion("unknown_key", "no key with this kid in the gateway's JWKS")
        return key

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl

    def _may_refetch(self) -> bool:
        return (
            self._attempted_at is None or self._clock() - self._attempted_at >= self._min_interval
        )

    def _refresh(self) -> None:
        if not self._may_refetch():
            # The last attempt failed moments ago: do not hammer a gateway that is down.
            raise JWKSUnavailable(f"the JWKS at {self.url} could not be fetched recently")
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch(self.url, self._timeout))
        except (OSError, ValueError) as exc:
            self._keys, self._fetched_at = {}, None
            raise JWKSUnavailable(f"the JWKS at {self.url} could not be fetched: {exc}") from exc
        self._keys, self._fetched_at = keys, self._attempted_at
