"""Headers between client, gateway and upstream. Pure: pairs in, pairs out.

The rule: drop every client header the gateway owns (identity headers, the assertion,
the access token, forwarding headers), matched case-insensitively with ``_`` read as
``-`` and on every duplicated line; drop hop-by-hop headers; then set ours, always all
of them (empty when a value is unknown) so nothing the client sent can survive.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from gateway.identity import Identity

Pair = tuple[str, str]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
FRAMING = frozenset({"content-length", "transfer-encoding", "expect"})
"""The client's body framing: the gateway re-frames every body itself, and has answered
``Expect: 100-continue`` on its own side already."""
FORWARDING = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-uri",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-original-uri",
        "x-rewrite-url",
        "x-request-id",  # the gateway's own request id goes upstream (docs/logs.md)
    }
)
"""Headers that describe the original request; clients must not choose them upstream."""

ACCESS_TOKEN_HEADER = "X-Forwarded-Access-Token"  # noqa: S105 - a header name, not a secret
ALWAYS_STRIPPED = frozenset(
    {
        "x-forwarded-user",
        "x-forwarded-user-id",
        "x-forwarded-email",
        "x-forwarded-name",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-gateway-assertion",
        "x-hf-authorization",  # a token for the gateway (gradio_client), never the upstream's
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "x-auth-request-preferred-username",
        "x-auth-request-access-token",
        "remote-user",
        "x-remote-user",
    }
)
"""Identity headers other gateways (and our defaults) use. They are removed from client
requests even when the configuration renames ours, so an upstream that still trusts a
default name can never receive a client's forgery."""
IDENTITY_FAMILIES = (
    "x-auth-request-",  # oauth2-proxy
    "remote-",  # Authelia: Remote-User, Remote-Groups, Remote-Email, Remote-Name
    "x-remote-",
    "x-pomerium-",  # Pomerium: X-Pomerium-Jwt-Assertion, X-Pomerium-Claim-*
    "x-vouch-",  # vouch-proxy: X-Vouch-User, X-Vouch-IdP-Claims-*
    "x-authentik-",  # authentik's proxy outpost
    "x-webauth-",  # Grafana's auth proxy default, X-WEBAUTH-USER
    "x-amzn-oidc-",  # AWS ALB
    "cf-access-",  # Cloudflare Access
    "x-goog-authenticated-user-",  # Google IAP
    "x-goog-iap-jwt-assertion",
    "x-ms-client-principal",  # Azure App Service authentication
)
"""Prefixes of identity header families that common gateways set for their upstreams,
compared on the canonical name (lower case, ``_`` read as ``-``): a client's copy of any
of them, in any spelling, never reaches an upstream that may trust one. (The
``X-Forwarded-*`` identity names are exact names in ALWAYS_STRIPPED: a family prefix there
would also take X-Forwarded-User-Agent.)"""

# Values are percent-encoded UTF-8 outside printable ASCII; '%' is encoded too so that
# decoding is never ambiguous.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def canonical(name: str) -> str:
    """The form used to compare header names: lower case, ``_`` read as ``-``."""
    return name.lower().replace("_", "-")


def encode_value(value: str) -> str:
    """Printable ASCII as is; everything else (and '%') as percent-encoded UTF-8."""
    try:
        return quote(value, safe=_SAFE)
    except UnicodeEncodeError:
        # A lone surrogate (valid JSON, invalid UTF-8) becomes U+FFFD, not a 500.
        cleaned = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        return quote(cleaned, safe=_SAFE)


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """The identity header templates of a configuration, ready to render."""

    templates: tuple[Pair, ...]
    assertion_header: str
    stripped: tuple[str, ...] = ()
    """Configured extra names (``identity.strip_headers``); a trailing ``*`` is a prefix."""
    owned_prefixes: tuple[str, ...] = IDENTITY_FAMILIES
    """Canonical prefixes of header families removed from every client request."""

    @classmethod
    def from_config(
        cls, templates: Mapping[str, str], assertion_header: str, stripped: Iterable[str] = ()
    ) -> IdentityHeaders:
        extra = tuple(stripped)
        prefixes = (*IDENTITY_FAMILIES, *(canonical(n[:-1]) for n in extra if n.endswith("*")))
        return cls(tuple(templates.items()), assertion_header, extra, prefixes)

    @property
    def owned(self) -> frozenset[str]:
        """Canonical names of every header the gateway sets upstream or always removes."""
        names = [name for name, _ in self.templates]
        extra = [n for n in self.stripped if not n.endswith("*")]
        return (
            frozenset(
                canonical(n) for n in (*names, *extra, self.assertion_header, ACCESS_TOKEN_HEADER)
            )
            | FORWARDING
            | ALWAYS_STRIPPED
        )

    def render(self, identity: Identity | None, route: str) -> list[Pair]:
        """Every configured header, each with a value ("" for anonymous or unknown fields)."""
        if identity is None:
            return [(name, "") for name, _ in self.templates]
        fields = identity_fields(identity, route)
        return [
            (name, encode_value(template.format_map(fields))) for name, template in self.templates
        ]


def identity_fields(identity: Identity, route: str) -> dict[str, str]:
    return {
        "sub": identity.sub,
        "username": identity.username,
        "name": identity.name,
        "email": identity.email or "",
        "orgs": ",".join(org.slug for org in identity.counting_orgs),
        "org_roles": ",".join(
            f"{org.slug}:{org.role}" if org.role else org.slug for org in identity.counting_orgs
        ),
        "picture": identity.picture or "",
        "route": route,
    }


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ROUTE_OWNED = ALWAYS_STRIPPED | FORWARDING | {canonical(ACCESS_TOKEN_HEADER)}
_NEVER_EDITED = {
    **dict.fromkeys(
        (*HOP_BY_HOP, "proxy-connection"),
        "is hop-by-hop: it describes one connection and is never forwarded",
    ),
    "host": "is chosen by the route's preserve_host (the client's Host or the upstream's)",
    "content-length": "is the body's framing, which the gateway writes itself",
    "transfer-encoding": "is the body's framing, which the gateway writes itself",
    "expect": "is answered by the gateway itself and never forwarded",
}
_NEVER_SET = {
    "cookie": "carries the browser's cookies: a static one would replace them",
    "content-type": "describes the client's body",
}


def route_header_problem(name: str, verb: str) -> str | None:
    """Why a route may not ``verb`` ("set" or "remove") the header ``name``, or None.

    Refused: invalid names; hop-by-hop, framing and Host (the gateway writes those);
    the identity, assertion, access-token and forwarding headers the gateway owns (an
    upstream trusts them to come from the gateway); the websocket handshake's headers.
    ``remove`` takes a trailing ``*`` for a family (``X-Debug-*``).
    """
    family = verb == "remove" and name.endswith("*") and len(name) > 1
    bare = name[:-1] if family else name
    if not _TOKEN.match(bare) or "*" in bare:
        suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", bare).strip("-") or "X-Example"
        hint = " (a trailing * removes a family)" if verb == "remove" else ""
        return f"{name!r} is not a header name{hint}: use {suggestion!r}"
    key = canonical(bare)
    if family:
        covered = sorted(n for n in (*_ROUTE_OWNED, *_NEVER_EDITED) if n.startswith(key)) + [
            p + "*" for p in IDENTITY_FAMILIES if p.startswith(key) or key.startswith(p)
        ]
        if covered:
            return (
                f"{name} would also remove {covered[0]}, which the gateway writes itself: "
                "name a narrower family"
            )
        return None
    if key in _NEVER_EDITED:
        return f"{name} {_NEVER_EDITED[key]}; a route cannot {verb} it"
    if key.startswith("sec-websocket-"):
        return f"{name} belongs to the websocket handshake; a route cannot {verb} it"
    if key in _ROUTE_OWNED or key.startswith(IDENTITY_FAMILIES):
        return (
            f"{name} is an identity or forwarding header the gateway owns (clients' copies "
            f"are always removed, its own value is always sent); a route cannot {verb} it"
            + ("" if verb == "remove" else ": use a header name of your own, e.g. X-Static-Value")
        )
    if verb == "set" and key in _NEVER_SET:
        return f"{name} {_NEVER_SET[key]}; a route cannot set it"
    return None


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """A route's set_headers and remove_headers, ready to apply to a forwarded request."""

    set_pairs: tuple[Pair, ...]
    dropped: frozenset[str]
    """Canonical names removed from the request: every removed and every set name."""
    dropped_prefixes: tuple[str, ...]

    @classmethod
    def from_config(cls, set_headers: Mapping[str, str], remove: Iterable[str]) -> HeaderEdits:
        removed = tuple(remove)
        exact = {canonical(n) for n in removed if not n.endswith("*")}
        prefixes = tuple(canonical(n[:-1]) for n in removed if n.endswith("*"))
        return cls(
            tuple(set_headers.items()),
            frozenset(exact | {canonical(n) for n in set_headers}),
            prefixes,
        )

    def apply(self, headers: Iterable[Pair]) -> list[Pair]:
        """The headers without every line of a removed or set name (in any spelling, so a
        client's copy never survives beside the route's), then the set ones."""
        kept = []
        for name, value in headers:
            key = canonical(name)
            if key in self.dropped or (
                self.dropped_prefixes and key.startswith(self.dropped_prefixes)
            ):
                continue
            kept.append((name, value))
        kept.extend(self.set_pairs)
        return kept


def connection_listed(items: Iterable[Pair]) -> frozenset[str]:
    """Header names a Connection header marks as hop-by-hop."""
    names: set[str] = set()
    for name, value in items:
        if name.lower() == "connection":
            names.update(canonical(token.strip()) for token in value.split(",") if token.strip())
    return frozenset(names)


def filter_request_headers(
    items: Sequence[Pair],
    *,
    owned: frozenset[str],
    drop_cookies: frozenset[str],
    owned_prefixes: tuple[str, ...] = IDENTITY_FAMILIES,
) -> list[Pair]:
    """The client's headers minus hop-by-hop, framing, owned (by name or family prefix) and
    Host headers, and minus the gateway's own cookies (the Cookie header is dropped when
    nothing else is left)."""
    listed = connection_listed(items)
    kept: list[Pair] = []
    for name, value in items:
        key = canonical(name)
        if (
            key in HOP_BY_HOP
            or key in FRAMING
            or key in listed
            or key in owned
            or key == "host"
            or key.startswith(owned_prefixes)
        ):
            continue
        if key == "cookie":
            remaining = strip_cookies(value, drop_cookies)
            if remaining:
                kept.append((name, remaining))
            continue
        kept.append((name, value))
    return kept


def cookie_value(headers: Iterable[str], name: str) -> str | None:
    """The value of cookie ``name`` across every Cookie header line; None when absent or
    ambiguous (two different values: a tossed cookie must not pick the session).

    A plain split instead of ``http.cookies``: the gateway's cookies are unquoted tokens,
    and this runs on every request.
    """
    found: str | None = None
    prefix = name + "="
    for header in headers:
        if prefix not in header:
            continue
        for part in header.split(";"):
            part = part.strip()
            if part.startswith(prefix):
                value = part[len(prefix) :]
                if found is not None and value != found:
                    return None
                found = value
    return found


def strip_cookies(header: str, names: frozenset[str]) -> str | None:
    """A Cookie header without the named cookies; None if none is left."""
    pairs = [part.strip() for part in header.split(";")]
    kept = [p for p in pairs if p and p.split("=", 1)[0].strip() not in names]
    return "; ".join(kept) or None


RawPair = tuple[bytes, bytes]
"""A header line as the upstream sent it (llhttp has checked both halves)."""

_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)


def filter_response_headers(
    items: Sequence[RawPair],
    *,
    drop_cookies: frozenset[bytes],
    also: frozenset[bytes] = frozenset(),
) -> list[RawPair]:
    """The upstream's response headers minus hop-by-hop ones (and those named in ``also``,
    lower case) and any Set-Cookie that would overwrite the gateway's own cookies.

    Bytes in, bytes out: an answer is relayed as the upstream encoded it (a latin-1 value
    stays latin-1), and nothing is decoded on the way.
    """
    listed: frozenset[bytes] = frozenset()
    for name, value in items:
        if name.lower() == b"connection":
            listed = listed | {
                token.strip().lower().replace(b"_", b"-")
                for token in value.split(b",")
                if token.strip()
            }
    kept: list[RawPair] = []
    for name, value in items:
        key = name.lower().replace(b"_", b"-")
        if key in _HOP_BY_HOP_BYTES or key in listed or key in also:
            continue
        if key == b"set-cookie" and value.split(b"=", 1)[0].strip() in drop_cookies:
            continue
        kept.append((name, value))
    return kept


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Peers whose X-Forwarded-* headers are believed. Default: nobody."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def trusts(self, peer: str | None) -> bool:
        if not peer or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """Where a request came from, as far as the gateway can trust it."""

    ip: str
    proto: str
    host: str


def client_facts(
    *,
    peer: str | None,
    scheme: str,
    host: str,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    trusted: TrustedProxies,
    forwarded_host: str | None = None,
) -> tuple[ClientFacts, str]:
    """The client's address, scheme and host, and the X-Forwarded-For chain to send upstream.

    Only a trusted peer may extend the chain or say the original scheme and host; otherwise
    the chain starts at the peer and scheme and host are the connection's own.
    """
    peer_ip = peer or ""
    if trusted.trusts(peer) and forwarded_host:
        host = forwarded_host.rsplit(",", 1)[-1].strip() or host
    if trusted.trusts(peer) and forwarded_for:
        chain = [p.strip() for p in forwarded_for.split(",") if p.strip()]
        client_ip = _first_untrusted(chain, trusted) or peer_ip
        proto = _trusted_scheme(forwarded_proto, scheme)
        return ClientFacts(client_ip, proto, host), ", ".join([*chain, peer_ip])
    if trusted.trusts(peer) and forwarded_proto:
        return ClientFacts(peer_ip, _trusted_scheme(forwarded_proto, scheme), host), peer_ip
    return ClientFacts(peer_ip, scheme, host), peer_ip


def _trusted_scheme(forwarded_proto: str | None, scheme: str) -> str:
    """The scheme a trusted peer names: the RIGHTMOST X-Forwarded-Proto entry.

    A proxy that appends (its own line, or ``, http``) leaves whatever the client wrote
    on the left; only the last entry is the trusted hop's own, as for X-Forwarded-For.
    """
    last = (forwarded_proto or "").rsplit(",", 1)[-1].strip().lower()
    return last or scheme


def _first_untrusted(chain: list[str], trusted: TrustedProxies) -> str | None:
    """Walk the chain from the right, skipping our own trusted proxies."""
    for hop in reversed(chain):
        if not trusted.trusts(hop):
            return hop
    return None


def forwarding_headers(chain: str, facts: ClientFacts) -> list[Pair]:
    return [
        ("X-Forwarded-For", chain),
        ("X-Forwarded-Proto", facts.proto),
        ("X-Forwarded-Host", facts.host),
    ]
