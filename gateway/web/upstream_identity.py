"""The identity headers and assertion an upstream receives, rendered once per credential
and route rather than on every request.

Rendering the header templates and looking up the signed assertion cost more than the
rest of the identity work together; both depend only on the identity and the route. An
entry is valid while the assertion cache hands out the same token: a changed identity
(after revalidation) or a token past half its lifetime gives a new token, and with it a
new rendering.
"""

from __future__ import annotations

from gateway.assertion import AssertionCache
from gateway.headers import ACCESS_TOKEN_HEADER, IdentityHeaders, Pair
from gateway.identity import Identity

MAX_ENTRIES = 16_384
"""Rendered blocks remembered per process (then forgotten all at once): about 2.1 KiB
each with the assertion, so about 35 MiB at worst (docs/architecture.md, memory)."""


class UpstreamIdentity:
    def __init__(
        self, headers: IdentityHeaders, assertions: AssertionCache, assertion_header: str
    ) -> None:
        self._headers = headers
        self._assertions = assertions
        self._assertion_header = assertion_header
        self.anonymous: tuple[Pair, ...] = (
            *headers.render(None, ""),
            (assertion_header, ""),
            (ACCESS_TOKEN_HEADER, ""),
        )
        """Every owned header, empty: what a public request carries upstream."""
        self._blocks: dict[tuple[str, str], tuple[str, tuple[Pair, ...]]] = {}

    def pairs(self, cache_key: str, identity: Identity, route: str, now: float) -> tuple[Pair, ...]:
        """Identity headers plus the assertion for this credential and route."""
        token = self._assertions.get(cache_key, identity, route, now)
        key = (cache_key, route)
        entry = self._blocks.get(key)
        if entry is not None and entry[0] is token:
            return entry[1]
        pairs = (*self._headers.render(identity, route), (self._assertion_header, token))
        if len(self._blocks) >= MAX_ENTRIES:
            self._blocks.clear()
        self._blocks[key] = (token, pairs)
        return pairs
