"""Request paths, route matching and safe redirect targets.

One function, ``normalize_path``, turns the raw request target into the path that
routing, policy, public paths and the upstream request all use, so no two parts of the
gateway can read a path differently. Paths it cannot read one way only are refused.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from gateway.errors import PathError

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)
# Encoded characters that would change the path's structure if some server decoded them.
_REFUSED_ESCAPES = {
    "2F": "an encoded slash",
    "5C": "an encoded backslash",
    "00": "a NUL byte",
    "23": "an encoded '#'",
}


@dataclass(frozen=True, slots=True)
class NormalPath:
    """A normalised request path.

    ``forward`` is sent upstream (``;params`` kept); ``match`` is what routes, public
    paths and policies compare against (``;params`` removed from every segment).
    """

    forward: str
    match: str


NORMAL_PATHS = 8192
"""Normalised paths remembered per process (pure, and the same few paths come again and
again), then forgotten all at once."""
MEMO_PATH_CHARS = 512
"""Longer paths are normalised afresh each time rather than remembered: a client choosing
8 KiB paths cannot make the memo hold 8192 of them (docs/architecture.md, memory)."""
_normal_paths: dict[str, NormalPath] = {}


def normalize_path(raw: str) -> NormalPath:
    """Normalise the path of a request target (without its query string), remembered."""
    found = _normal_paths.get(raw)
    if found is not None:
        return found
    found = _normalize_path(raw)
    if len(raw) <= MEMO_PATH_CHARS:
        if len(_normal_paths) >= NORMAL_PATHS:
            _normal_paths.clear()
        _normal_paths[raw] = found
    return found


def _normalize_path(raw: str) -> NormalPath:
    """Normalise the path of a request target (without its query string).

    Percent-escapes of unreserved characters are decoded, other escapes upper-cased,
    duplicate slashes collapsed and dot segments resolved (a segment like ``..;x`` counts
    as ``..``). Raises PathError for encoded slashes, backslashes, NUL, ``#``, control
    characters and malformed escapes.
    """
    if not raw.startswith("/"):
        raise PathError("the request path must start with '/'")
    if "\\" in raw:
        raise PathError("backslashes are not allowed in paths")
    if "#" in raw:
        raise PathError("'#' is not allowed in paths")
    decoded = _decode_unreserved(raw)
    raw_segments = decoded.split("/")
    segments: list[str] = []
    for segment in raw_segments:
        name = segment.split(";", 1)[0]
        if name == "..":
            if segments:
                segments.pop()
        elif segment and name != ".":
            segments.append(segment)
    # "/a/", "/a/." and "/a/b/.." all end in a directory. A last segment of only
    # parameters ("/a/;x") is an empty segment for matching, but forwarding it must not
    # grow a slash ("/a/;x/"): only the match path treats it as a trailing slash.
    last, last_name = raw_segments[-1], raw_segments[-1].split(";", 1)[0]
    forward = _join(segments, last == "" or last_name in (".", ".."))
    match_segments = [s.split(";", 1)[0] for s in segments]
    match = _join([s for s in match_segments if s], last_name in ("", ".", ".."))
    return NormalPath(forward, match)


def _join(segments: Sequence[str], trailing: bool) -> str:
    if not segments:
        return "/"
    return "/" + "/".join(segments) + ("/" if trailing else "")


def _decode_unreserved(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise PathError("malformed percent-escape in path")
            pair = pair.upper()
            if pair in _REFUSED_ESCAPES:
                raise PathError(f"{_REFUSED_ESCAPES[pair]} is not allowed in paths")
            decoded = chr(int(pair, 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + pair)
            i += 3
            continue
        code = ord(char)
        if code < 0x21 or code == 0x7F:
            raise PathError("control characters and spaces are not allowed in paths")
        if code > 0x7E:
            try:
                encoded = char.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a lone surrogate that no byte decodes to
                raise PathError("invalid UTF-8 in path") from None
            out.append("".join(f"%{b:02X}" for b in encoded))
        else:
            out.append(char)
        i += 1
    return "".join(out)


def path_under(path: str, prefix: str) -> bool:
    """True when ``path`` equals ``prefix`` or continues it at a segment boundary."""
    base = prefix.rstrip("/")
    if not base:
        return True
    return path == base or path.startswith(base + "/")


def strip_path_prefix(path: str, prefix: str) -> str:
    """The part of a normalised path below ``prefix`` (which it must be under), rooted.

    Works on the forwarded form too: a ``;params`` segment counts as the segment it names,
    so ``/app;v=1/x`` below ``/app`` is ``/x``.
    """
    drop = sum(1 for segment in prefix.split("/") if segment)
    kept: list[str] = []
    for segment in path.split("/")[1:]:
        if drop and segment.split(";", 1)[0]:
            drop -= 1
            continue
        kept.append(segment)
    return "/" + "/".join(kept)


def normalize_host(host: str) -> str:
    """Lower-case a Host header value and drop its port and a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_matches(pattern: str, host: str) -> bool:
    """Exact host, or ``*.suffix`` matching subdomains on label boundaries."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


class RouteLike(Protocol):
    @property
    def host(self) -> str | None: ...

    @property
    def path(self) -> str: ...

    @property
    def case_insensitive(self) -> bool: ...


R = TypeVar("R", bound=RouteLike)

Ranked = tuple[int, R]
"""A route and its rank: the lower, the more specific (its place in the precedence order)."""


class _PrefixIndex(Generic[R]):
    """Routes by their path prefix without trailing slashes ("" for ``/``), each prefix
    mapped to its best-ranked route."""

    __slots__ = ("by_prefix", "_depth")

    def __init__(self) -> None:
        self.by_prefix: dict[str, Ranked[R]] = {}
        self._depth = 0
        """The most slashes in a prefix: a longer part of a path cannot be one."""

    def add(self, prefix: str, ranked: Ranked[R]) -> None:
        self.by_prefix.setdefault(prefix, ranked)  # added in rank order: the first stays
        self._depth = max(self._depth, prefix.count("/"))

    def best(self, path: str) -> Ranked[R] | None:
        """The best-ranked route whose prefix covers ``path`` (see ``path_under``).

        The prefixes that do are "", the parts of ``path`` before each '/', and ``path``
        itself: one dict look-up each, from the shortest, up to the deepest prefix there
        is, whatever the number of routes.
        """
        index = self.by_prefix
        best = index.get("")
        slashes = 0  # in path[:end]
        end = path.find("/")
        while end != -1:
            if end:  # path[:0] is "", looked up already
                if slashes > self._depth:
                    return best
                found = index.get(path[:end])
                if found is not None and (best is None or found[0] < best[0]):
                    best = found
            slashes += 1
            end = path.find("/", end + 1)
        if slashes <= self._depth:
            found = index.get(path)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best


class _HostRoutes(Generic[R]):
    """The routes of one host pattern (or of no host), indexed by path prefix."""

    __slots__ = ("first", "_sensitive", "_insensitive", "_all_folded")

    def __init__(self) -> None:
        self.first = -1
        """The best rank among these routes: none of them can beat a route ranked above."""
        self._sensitive: _PrefixIndex[R] = _PrefixIndex()
        self._insensitive: _PrefixIndex[R] = _PrefixIndex()
        """Routes marked case_insensitive, by lower-cased prefix."""
        self._all_folded: _PrefixIndex[R] = _PrefixIndex()
        """Every route by lower-cased prefix, for ``match(fold=True)``."""

    def add(self, ranked: Ranked[R]) -> None:
        if self.first < 0:
            self.first = ranked[0]
        route = ranked[1]
        folded = route.path.lower().rstrip("/")
        self._all_folded.add(folded, ranked)
        if route.case_insensitive:
            self._insensitive.add(folded, ranked)
        else:
            self._sensitive.add(route.path.rstrip("/"), ranked)

    def best(self, path: str, folded: str, fold: bool) -> Ranked[R] | None:
        if fold:
            return self._all_folded.best(folded)
        best = self._sensitive.best(path) if self._sensitive.by_prefix else None
        if self._insensitive.by_prefix:
            found = self._insensitive.best(folded)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best


class RouteTable(Generic[R]):
    """Chooses a route by host, then by the longest path prefix.

    Precedence: an exact host beats a wildcard host (the longer pattern first), which
    beats routes without a host; among those, the longest matching path prefix wins, and
    config order among equals. That order ranks every route once; a request looks up
    only the routes of its own host, its wildcard suffixes and no host, each through a
    prefix index, and takes the best-ranked match: the cost follows the host's labels and
    the path's segments, not the number of routes.
    """

    def __init__(self, routes: Iterable[R]) -> None:
        ranked = [
            (self._host_rank(r.host), len(r.path.rstrip("/")), i, r) for i, r in enumerate(routes)
        ]
        # Most specific first, config order among equals.
        ranked.sort(key=lambda item: (-item[0][0], -item[0][1], -item[1], item[2]))
        self._exact: dict[str, _HostRoutes[R]] = {}
        self._wildcard: dict[str, _HostRoutes[R]] = {}
        """By suffix with its leading dot: "*.example.com" is ".example.com"."""
        self._any_host: _HostRoutes[R] = _HostRoutes()
        for rank, (_, _, _, route) in enumerate(ranked):
            self._routes_of(route.host).add((rank, route))
        self._any_insensitive = any(item[3].case_insensitive for item in ranked)

    @staticmethod
    def _host_rank(host: str | None) -> tuple[int, int]:
        if host is None:
            return (0, 0)
        if host.startswith("*."):
            return (1, len(host))
        return (2, len(host))

    def _routes_of(self, host: str | None) -> _HostRoutes[R]:
        if host is None:
            return self._any_host
        pattern = host.lower().rstrip(".")  # as host_matches reads it
        if pattern.startswith("*."):
            return self._wildcard.setdefault(pattern[1:], _HostRoutes())
        return self._exact.setdefault(pattern, _HostRoutes())

    def match(self, host: str, path: str, *, fold: bool = False) -> R | None:
        """The route for a normalised host and ``NormalPath.match``, or None.

        Routes marked ``case_insensitive`` compare their path ignoring case; ``fold``
        compares every route that way (the reading of an upstream that ignores case).
        """
        folded = path.lower() if fold or self._any_insensitive else path
        # The groups that cover the host, in about their rank order: its exact host, its
        # wildcard suffixes from the longest, no host. A group whose best rank is below
        # the match in hand is skipped.
        best: Ranked[R] | None = None
        routes = self._exact.get(host)
        if routes is not None:
            best = routes.best(path, folded, fold)
        if self._wildcard:
            # "*.suffix" covers a host that ends in ".suffix" after at least one character.
            dot = host.find(".", 1)
            while dot != -1:
                routes = self._wildcard.get(host[dot:])
                if routes is not None and (best is None or routes.first < best[0]):
                    found = routes.best(path, folded, fold)
                    if found is not None and (best is None or found[0] < best[0]):
                        best = found
                dot = host.find(".", dot + 1)
        routes = self._any_host
        if routes.first >= 0 and (best is None or routes.first < best[0]):
            found = routes.best(path, folded, fold)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best[1] if best is not None else None


class RedirectPolicy:
    """Decides where a browser may be sent after sign-in or sign-out.

    Accepted: a same-origin absolute path (``/x?y``), or an absolute http(s) URL whose host
    is public_url's host or matches one of ``hosts`` (exact or ``*.suffix`` on label
    boundaries). Everything else becomes ``/``; a rejected target never blocks a login.
    """

    MAX_LENGTH = 2048

    def __init__(self, public_url: str, hosts: Iterable[str] = ()) -> None:
        parts = urlsplit(public_url)
        self._https = parts.scheme == "https"
        self._hosts = tuple(h.lower().rstrip(".") for h in (parts.hostname or "", *hosts) if h)

    def sanitize(self, target: str | None) -> str:
        if self.is_safe(target):
            assert target is not None
            return target
        return "/"

    def is_safe(self, target: str | None) -> bool:
        if not target or len(target) > self.MAX_LENGTH:
            return False
        if any(not 0x21 <= ord(c) <= 0x7E for c in target) or "\\" in target:
            return False
        if target.startswith("/"):
            return _safe_local_path(target)
        return self._safe_absolute(target)

    def _safe_absolute(self, target: str) -> bool:
        scheme, sep, _ = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return False
        if self._https and scheme.lower() != "https":
            return False
        try:
            # urlsplit itself raises ValueError for broken brackets ("https://[evil.com",
            # "https://evil.com]"); a target we cannot parse is rejected, never an error.
            parts = urlsplit(target)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return False
        # No userinfo, and no "[...]" host: urlsplit reads "https://[v1.apps.example.com]/" as
        # host v1.apps.example.com (an IPvFuture literal), which no browser does.
        if "@" in parts.netloc or "[" in parts.netloc or not parts.netloc:
            return False
        if not host or host.endswith(".") or not _plain_hostname(host):
            return False
        if parts.path and not _safe_local_path(parts.path):
            return False
        return any(host_matches(pattern, host) for pattern in self._hosts)


def _plain_hostname(host: str) -> bool:
    allowed = frozenset(string.ascii_lowercase + string.digits + "-.")
    return set(host) <= allowed and ".." not in host and not host.startswith(("-", "."))


def _safe_local_path(path: str) -> bool:
    """A path that every browser reads as same-origin, even after percent-decoding."""
    head = path.split("?", 1)[0].split("#", 1)[0]
    # Undo layered encodings such as %252f however deep they go (a fixed number of rounds
    # let "%2525252f" through). Each round that changes the string shortens it, so the
    # loop ends after at most len(head) / 2 rounds.
    decoded = head
    while (once := unquote(decoded)) != decoded:
        decoded = once
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return False
    if "\\" in decoded:
        return False
    # "//host", "/\host" and their encoded forms are protocol-relative in browsers.
    return decoded.startswith("/") and not decoded.startswith("//")


Origin = tuple[str, str, int]
"""(scheme, host, port) of a browser origin, lower-cased, the port always explicit."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(text: str | None) -> Origin | None:
    """``scheme://host[:port]`` as a browser sends it in Origin; None for anything else
    (``null``, a path, userinfo, another scheme, a malformed port)."""
    if not text:
        return None
    scheme, sep, authority = text.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or not authority:
        return None
    if any(c in authority for c in "/?#@\\") or any(c.isspace() for c in authority):
        return None
    host, port_text = authority.lower(), ""
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        host, rest = host[: end + 1], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    elif ":" in host:
        host, _, port_text = host.partition(":")
    if not host:
        return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    return scheme, host.rstrip("."), port


def parse_origin_pattern(text: str) -> Origin | None:
    """An origin whose host may be a ``*.domain`` wildcard (for ``allowed_origins``)."""
    scheme, sep, rest = text.partition("://")
    wildcard = rest.startswith("*.")
    found = parse_origin(f"{scheme}{sep}{rest[2:] if wildcard else rest}")
    if found is None:
        return None
    return found[0], ("*." if wildcard else "") + found[1], found[2]


class OriginPolicy:
    """Which origins may send unsafe requests and websocket upgrades that carry a session:
    public_url's origin and the route and allowed hosts on the same scheme and port,
    compared whole (scheme, host, port), plus a route's own ``allowed_origins``."""

    def __init__(self, public_url: str, hosts: Iterable[str] = ()) -> None:
        own = parse_origin(public_url)
        if own is None:
            raise ValueError(f"public_url {public_url!r} is not an origin")
        self._scheme, public_host, self._port = own
        self._hosts = tuple(h.lower().rstrip(".") for h in (public_host, *hosts) if h)

    def allows(self, origin: str | None, extra: Iterable[Origin] = ()) -> bool:
        """``extra``: patterns from ``parse_origin_pattern``."""
        found = parse_origin(origin)
        if found is None:
            return False
        scheme, host, port = found
        if any((s, p) == (scheme, port) and host_matches(pattern, host) for s, pattern, p in extra):
            return True
        if (scheme, port) != (self._scheme, self._port):
            return False
        return any(host_matches(pattern, host) for pattern in self._hosts)
