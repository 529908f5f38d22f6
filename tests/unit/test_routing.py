"""Routing: one normalised path for routing, policy and upstream; hosts; route choice.

SECURITY.md §4 lists the path tricks that broke other gateways; each one is a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PathError
from gateway.routing import (
    NormalPath,
    OriginPolicy,
    RouteTable,
    host_matches,
    normalize_host,
    normalize_path,
    parse_origin,
    parse_origin_pattern,
    path_under,
    strip_path_prefix,
)

NORMALISED = [
    # --- SECURITY.md §4
    pytest.param("/public/../admin", "/admin", "/admin", id="dot-dot out of a public path"),
    pytest.param("/public/%2e%2e/admin", "/admin", "/admin", id="encoded dot-dot"),
    pytest.param("/public/%2E%2E/admin", "/admin", "/admin", id="encoded dot-dot upper case"),
    pytest.param("/public/.%2e/admin", "/admin", "/admin", id="half-encoded dot-dot"),
    pytest.param("//admin", "/admin", "/admin", id="leading double slash"),
    pytest.param("/PUBLIC/x", "/PUBLIC/x", "/PUBLIC/x", id="case is kept"),
    pytest.param("/publicity", "/publicity", "/publicity", id="longer first segment"),
    pytest.param(
        "/admin;/public/", "/admin;/public/", "/admin/public/", id="path parameter is dropped"
    ),
    pytest.param("/public/..;/admin", "/admin", "/admin", id="dot-dot with a parameter"),
    pytest.param("/public/..;x=1/admin", "/admin", "/admin", id="dot-dot with a valued parameter"),
    pytest.param("/staff;x/y", "/staff;x/y", "/staff/y", id="parameter in a middle segment"),
    # --- dot segments and slashes
    pytest.param("/", "/", "/", id="root"),
    pytest.param("//", "/", "/", id="double slash only"),
    pytest.param("/a//b///c", "/a/b/c", "/a/b/c", id="duplicate slashes"),
    pytest.param("/a/./b", "/a/b", "/a/b", id="dot segment"),
    pytest.param("/a/%2e/b", "/a/b", "/a/b", id="encoded dot segment"),
    pytest.param("/a/.;x/b", "/a/b", "/a/b", id="dot with a parameter"),
    pytest.param("/a/b/../c", "/a/c", "/a/c", id="dot-dot in the middle"),
    pytest.param("/..", "/", "/", id="dot-dot at the root"),
    pytest.param("/../../etc/passwd", "/etc/passwd", "/etc/passwd", id="dot-dot above the root"),
    pytest.param("/a/...", "/a/...", "/a/...", id="three dots are a name"),
    pytest.param("/a/.hidden", "/a/.hidden", "/a/.hidden", id="dot file is a name"),
    pytest.param("/a..b/c", "/a..b/c", "/a..b/c", id="dots inside a name"),
    # --- trailing slash
    pytest.param("/a/", "/a/", "/a/", id="trailing slash kept"),
    pytest.param("/a", "/a", "/a", id="no trailing slash added"),
    pytest.param("/a//", "/a/", "/a/", id="trailing double slash"),
    pytest.param("/a/.", "/a/", "/a/", id="trailing dot ends in a directory"),
    pytest.param("/a/b/..", "/a/", "/a/", id="trailing dot-dot ends in a directory"),
    pytest.param("/a/b/..;x", "/a/", "/a/", id="trailing dot-dot with a parameter"),
    pytest.param("/a/;x", "/a/;x", "/a/", id="trailing parameter-only segment"),
    pytest.param("/;x", "/;x", "/", id="parameter-only root segment"),
    pytest.param("/a;p/b;q/", "/a;p/b;q/", "/a/b/", id="parameters with trailing slash"),
    # --- percent-escapes
    pytest.param("/%41%62%7E%7e%2D%5F%2E", "/Ab~~-_.", "/Ab~~-_.", id="unreserved decoded"),
    pytest.param("/%30%39", "/09", "/09", id="digits decoded"),
    pytest.param("/a%3ab", "/a%3Ab", "/a%3Ab", id="reserved colon kept upper-cased"),
    pytest.param("/a%3Fb", "/a%3Fb", "/a%3Fb", id="encoded question mark kept"),
    pytest.param("/a%3bb/c", "/a%3Bb/c", "/a%3Bb/c", id="encoded semicolon is not a parameter"),
    pytest.param("/a%20b", "/a%20b", "/a%20b", id="encoded space kept"),
    pytest.param("/a%25b", "/a%25b", "/a%25b", id="encoded percent kept"),
    pytest.param("/a%252fb", "/a%252fb", "/a%252fb", id="double-encoded slash stays opaque"),
    pytest.param("/caf\u00e9", "/caf%C3%A9", "/caf%C3%A9", id="non-ASCII percent-encoded"),
    pytest.param("/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9", id="encoded non-ASCII upper-cased"),
    pytest.param("/\U0001f917", "/%F0%9F%A4%97", "/%F0%9F%A4%97", id="emoji percent-encoded"),
    pytest.param("/\udcff", "/%FF", "/%FF", id="undecodable byte kept as its escape"),
    pytest.param("/a?b", "/a?b", "/a?b", id="question mark is data without a query split"),
]


@pytest.mark.parametrize(("raw", "forward", "match"), NORMALISED)
def test_normalize_path(raw: str, forward: str, match: str) -> None:
    """Each request path has one normal form to forward and one to match routes against."""
    assert normalize_path(raw) == NormalPath(forward=forward, match=match)


REFUSED = [
    pytest.param("/public%2f..%2fadmin", "an encoded slash", id="encoded slash dot-dot"),
    pytest.param("/public/%2e%2e%2fadmin", "an encoded slash", id="encoded dot-dot-slash"),
    pytest.param("/a%2Fb", "an encoded slash", id="encoded slash upper case"),
    pytest.param("/admin%23/public/", "an encoded '#'", id="encoded hash"),
    pytest.param("/a%5cb", "an encoded backslash", id="encoded backslash"),
    pytest.param("/a%00b", "a NUL byte", id="encoded NUL"),
    pytest.param("/a\\b", "backslashes", id="backslash"),
    pytest.param("/\\evil.com", "backslashes", id="leading backslash"),
    pytest.param("/a#b", "'#'", id="raw hash"),
    pytest.param("/a\x00b", "control characters", id="NUL"),
    pytest.param("/a\tb", "control characters", id="tab"),
    pytest.param("/a\nb", "control characters", id="newline"),
    pytest.param("/a\rb", "control characters", id="carriage return"),
    pytest.param("/a b", "spaces", id="space"),
    pytest.param("/a\x7fb", "control characters", id="DEL"),
    pytest.param("/a%zz", "malformed percent-escape", id="non-hex escape"),
    pytest.param("/a%4", "malformed percent-escape", id="short escape at the end"),
    pytest.param("/a%4/b", "malformed percent-escape", id="short escape mid-path"),
    pytest.param("/a%", "malformed percent-escape", id="lone percent"),
    pytest.param("/a%%41", "malformed percent-escape", id="percent before an escape"),
    pytest.param("/\ud800", "invalid UTF-8", id="lone surrogate"),
    pytest.param("", "must start with '/'", id="empty"),
    pytest.param("admin", "must start with '/'", id="relative"),
    pytest.param("*", "must start with '/'", id="asterisk form"),
    pytest.param("http://evil.com/", "must start with '/'", id="absolute form"),
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_paths_that_could_be_read_two_ways_are_refused(raw: str, reason: str) -> None:
    """Encoded slashes, backslashes, NUL, '#', controls and bad escapes mean 400."""
    with pytest.raises(PathError, match=reason):
        normalize_path(raw)


_PATH_PIECES = st.sampled_from(
    ["/", "//", "a", "Bc", "7", ".", "..", ";", ";p=1", "%2e", "%2E", "%41", "%3a", "%7e"]
    + ["%25", "%C3%A9", "\u00e9", "~", "-", "@", ":", "=", ".a", "a."]
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(_PATH_PIECES, max_size=12).map(lambda pieces: "/" + "".join(pieces)))
def test_normalize_path_is_idempotent_and_leaves_no_dot_or_empty_segments(raw: str) -> None:
    """A normalised path normalises to itself and has no //, /./ or /../ left."""
    normal = normalize_path(raw)
    assert normalize_path(normal.forward).forward == normal.forward
    assert normalize_path(normal.forward) == normal
    assert normalize_path(normal.match).match == normal.match
    for path in (normal.forward, normal.match):
        assert path.startswith("/")
        assert "//" not in path
        segments = path.split("/")[1:]
        assert "." not in segments
        assert ".." not in segments
        assert all(s.split(";", 1)[0] not in (".", "..") for s in segments)
    assert ";" not in normal.match


# --------------------------------------------------------------------------- prefixes


@pytest.mark.parametrize(
    ("path", "prefix", "under"),
    [
        pytest.param("/public", "/public", True, id="equal"),
        pytest.param("/public/", "/public", True, id="with trailing slash"),
        pytest.param("/public/x/y", "/public", True, id="below"),
        pytest.param("/public/x", "/public/", True, id="prefix with trailing slash"),
        pytest.param("/public", "/public/", True, id="directory prefix covers its own name"),
        pytest.param("/publicity", "/public", False, id="longer segment"),
        pytest.param("/publicity", "/public/", False, id="longer segment, slash prefix"),
        pytest.param("/public-x", "/public", False, id="segment with a dash"),
        pytest.param("/PUBLIC/x", "/public/", False, id="case-sensitive"),
        pytest.param("/pub", "/public", False, id="shorter"),
        pytest.param("/admin/public/", "/public/", False, id="in the middle"),
        pytest.param("/anything", "/", True, id="root prefix"),
        pytest.param("/", "/", True, id="root"),
        pytest.param("/", "/public", False, id="root is not under a prefix"),
    ],
)
def test_path_under_compares_on_segment_boundaries(path: str, prefix: str, under: bool) -> None:
    """A prefix covers itself and what continues it after a slash, nothing else."""
    assert path_under(path, prefix) is under


@pytest.mark.parametrize(
    ("path", "prefix", "rest"),
    [
        pytest.param("/grafana/d/x", "/grafana", "/d/x", id="below the prefix"),
        pytest.param("/grafana", "/grafana", "/", id="the prefix itself"),
        pytest.param("/grafana/", "/grafana", "/", id="prefix with trailing slash"),
        pytest.param("/grafana/x", "/grafana/", "/x", id="slash-ended prefix"),
        pytest.param("/x/y", "/", "/x/y", id="root prefix"),
        pytest.param("/a/b/", "/a", "/b/", id="trailing slash kept"),
        pytest.param("/app;v=1/x", "/app", "/x", id="a parameter on the prefix segment"),
        pytest.param("/a/b;k/c", "/a/b", "/c", id="a parameter deeper in the prefix"),
        pytest.param("/a/x;k", "/a", "/x;k", id="parameters below the prefix are kept"),
    ],
)
def test_strip_path_prefix_keeps_the_rest_rooted(path: str, prefix: str, rest: str) -> None:
    """The upstream of a strip_prefix route sees the path below the prefix, starting with /."""
    assert strip_path_prefix(path, prefix) == rest


# --------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    ("header", "host"),
    [
        pytest.param("tools.example.com", "tools.example.com", id="plain"),
        pytest.param("Tools.EXAMPLE.com", "tools.example.com", id="upper case"),
        pytest.param("tools.example.com:8443", "tools.example.com", id="port dropped"),
        pytest.param("tools.example.com.", "tools.example.com", id="trailing dot dropped"),
        pytest.param("tools.example.com.:443", "tools.example.com", id="trailing dot and port"),
        pytest.param(" tools.example.com ", "tools.example.com", id="whitespace"),
        pytest.param("[::1]:8080", "[::1]", id="IPv6 with port"),
        pytest.param("[2001:DB8::1]", "[2001:db8::1]", id="IPv6 upper case"),
        pytest.param("127.0.0.1:80", "127.0.0.1", id="IPv4 with port"),
    ],
)
def test_normalize_host(header: str, host: str) -> None:
    """Host headers compare lower-case, without port or trailing dot."""
    assert normalize_host(header) == host


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        pytest.param("tools.example.com", "tools.example.com", True, id="exact"),
        pytest.param("Tools.Example.com.", "tools.example.com", True, id="pattern case and dot"),
        pytest.param("example.com", "a.example.com", False, id="exact does not cover subdomains"),
        pytest.param("*.example.com", "a.example.com", True, id="wildcard subdomain"),
        pytest.param("*.example.com", "a.b.example.com", True, id="wildcard deeper subdomain"),
        pytest.param("*.example.com", "example.com", False, id="wildcard not the bare domain"),
        pytest.param("*.example.com", "evilexample.com", False, id="wildcard label boundary"),
        pytest.param("*.example.com", "a.example.com.evil.org", False, id="wildcard as prefix"),
        pytest.param("*.example.com", ".example.com", False, id="empty label"),
    ],
)
def test_host_matches_on_label_boundaries(pattern: str, host: str, matches: bool) -> None:
    """Exact hosts match themselves; *.domain matches real subdomains only."""
    assert host_matches(pattern, host) is matches


@dataclass(frozen=True)
class _Route:
    name: str
    host: str | None
    path: str
    case_insensitive: bool = False


TABLE = RouteTable(
    [
        _Route("any-root", None, "/"),
        _Route("any-api", None, "/api"),
        _Route("wild-root", "*.example.com", "/"),
        _Route("wild-deep", "*.eu.example.com", "/"),
        _Route("tools-root", "tools.example.com", "/"),
        _Route("tools-grafana", "tools.example.com", "/grafana"),
        _Route("tools-grafana-admin", "tools.example.com", "/grafana/admin/"),
        _Route("ipv6", "[::1]", "/"),
    ]
)


@pytest.mark.parametrize(
    ("host_header", "path", "route"),
    [
        pytest.param("tools.example.com", "/", "tools-root", id="exact host"),
        pytest.param("tools.example.com", "/grafana/x", "tools-grafana", id="longest prefix"),
        pytest.param("tools.example.com", "/grafana", "tools-grafana", id="prefix itself"),
        pytest.param(
            "tools.example.com", "/grafana/admin/users", "tools-grafana-admin", id="longer prefix"
        ),
        pytest.param(
            "tools.example.com", "/grafana/admin", "tools-grafana-admin", id="slash-ended prefix"
        ),
        pytest.param(
            "tools.example.com", "/grafana/administrator", "tools-grafana", id="segment boundary"
        ),
        pytest.param("tools.example.com", "/grafanax", "tools-root", id="not a segment"),
        pytest.param(
            "tools.example.com", "/api", "tools-root", id="exact host beats a longer any-host path"
        ),
        pytest.param("Tools.Example.COM:8443", "/grafana", "tools-grafana", id="case and port"),
        pytest.param("wiki.example.com", "/api", "wild-root", id="wildcard beats no host"),
        pytest.param("a.eu.example.com", "/", "wild-deep", id="longer wildcard first"),
        pytest.param("eu.example.com", "/", "wild-root", id="wildcard needs a label"),
        pytest.param("example.com", "/", "any-root", id="bare domain is not under the wildcard"),
        pytest.param("evilexample.com", "/api/x", "any-api", id="look-alike host"),
        pytest.param("other.org", "/", "any-root", id="unknown host"),
        pytest.param("[::1]:8080", "/", "ipv6", id="IPv6 host"),
    ],
)
def test_route_table_prefers_exact_then_wildcard_then_any_host(
    host_header: str, path: str, route: str
) -> None:
    """Host specificity decides first, then the longest path prefix on segment boundaries."""
    chosen = TABLE.match(normalize_host(host_header), normalize_path(path).match)
    assert chosen is not None
    assert chosen.name == route


def test_route_table_without_a_match_returns_none() -> None:
    """No route covers the request: the caller answers 404."""
    table = RouteTable([_Route("grafana", "tools.example.com", "/grafana")])
    assert table.match("tools.example.com", "/prometheus") is None
    assert table.match("other.example.com", "/grafana") is None


def test_route_table_keeps_config_order_among_equals() -> None:
    """Two routes with the same host and path: the first in the config wins."""
    table = RouteTable([_Route("first", None, "/app"), _Route("second", None, "/app/")])
    chosen = table.match("x", "/app/y")
    assert chosen is not None
    assert chosen.name == "first"


@pytest.mark.parametrize(
    ("raw", "route"),
    [
        pytest.param("/grafana/../admin", "tools-root", id="dot-dot leaves the grafana route"),
        pytest.param("/grafana;x/admin/", "tools-grafana-admin", id="parameters are ignored"),
        pytest.param("/%67rafana/x", "tools-grafana", id="encoded letter routes like the letter"),
        pytest.param("//grafana", "tools-grafana", id="double slash"),
        pytest.param("/Grafana/x", "tools-root", id="case-sensitive"),
    ],
)
def test_routes_are_chosen_on_the_normalised_match_path(raw: str, route: str) -> None:
    """Routing sees the same normalised path as policy and the upstream."""
    chosen = TABLE.match("tools.example.com", normalize_path(raw).match)
    assert chosen is not None
    assert chosen.name == route


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("https://tools.example.com", ("https", "tools.example.com", 443), id="https"),
        pytest.param(
            "HTTP://Tools.Example.COM:8080", ("http", "tools.example.com", 8080), id="case"
        ),
        pytest.param("http://[::1]:8080", ("http", "[::1]", 8080), id="ipv6"),
        pytest.param("http://127.0.0.1:80", ("http", "127.0.0.1", 80), id="explicit default"),
        pytest.param("null", None, id="opaque"),
        pytest.param("https://a.example.com/x", None, id="path"),
        pytest.param("https://u@a.example.com", None, id="userinfo"),
        pytest.param("ftp://a.example.com", None, id="scheme"),
        pytest.param("https://a.example.com:0", None, id="port zero"),
        pytest.param("https://a.example.com:99999", None, id="port too large"),
        pytest.param("https://", None, id="no host"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_origin(text: str, parsed: tuple[str, str, int] | None) -> None:
    assert parse_origin(text) == parsed


def test_origins_are_compared_whole() -> None:
    """Same host on another port or scheme is another origin; route hosts count."""
    policy = OriginPolicy("https://tools.example.com", ["*.apps.example.com"])
    assert policy.allows("https://tools.example.com")
    assert policy.allows("https://tools.example.com:443")
    assert policy.allows("https://a.apps.example.com")
    assert not policy.allows("https://tools.example.com:8443")
    assert not policy.allows("http://tools.example.com")
    assert not policy.allows("https://tools.example.com.evil.test")
    extra = [parse_origin_pattern("http://localhost:3000")]
    assert policy.allows("http://localhost:3000", [e for e in extra if e])
    assert not policy.allows("http://localhost:3001", [e for e in extra if e])
