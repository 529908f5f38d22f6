"""RouteTable's host and prefix index chooses exactly the route the old linear scan chose.

Routing is security-critical: a different route is a different policy. The scan the index
replaced is kept here, unchanged, as the reference; random route sets, hosts and paths
(letter case, trailing slashes, ``/``, wildcards, ports, look-alike hosts, non-ASCII) must
come out the same, and so must 1,000 routes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.routing import R, RouteTable, host_matches, normalize_host, path_under


class LinearRouteTable(Generic[R]):
    """The route table before the index (gateway/routing.py at 3d05efb), verbatim."""

    def __init__(self, routes: list[R]) -> None:
        ranked = [
            (self._host_rank(r.host), len(r.path.rstrip("/")), i, r) for i, r in enumerate(routes)
        ]
        ranked.sort(key=lambda item: (-item[0][0], -item[0][1], -item[1], item[2]))
        self._routes: tuple[R, ...] = tuple(item[3] for item in ranked)
        self._folded = tuple(r.path.lower() for r in self._routes)
        self._any_insensitive = any(r.case_insensitive for r in self._routes)

    @staticmethod
    def _host_rank(host: str | None) -> tuple[int, int]:
        if host is None:
            return (0, 0)
        if host.startswith("*."):
            return (1, len(host))
        return (2, len(host))

    def match(self, host: str, path: str, *, fold: bool = False) -> R | None:
        folded = path.lower() if fold or self._any_insensitive else path
        for route, route_folded in zip(self._routes, self._folded, strict=True):
            if route.host is not None and not host_matches(route.host, host):
                continue
            if fold or route.case_insensitive:
                if path_under(folded, route_folded):
                    return route
            elif path_under(path, route.path):
                return route
        return None


@dataclass(frozen=True)
class Route:
    name: str
    host: str | None
    path: str
    case_insensitive: bool = False


# Hosts as routes name them: exact, wildcard, nested wildcards, upper case and trailing dots
# (RouteTable is generic: the config lower-cases, but the index must not depend on it),
# IPv6 literals and degenerate patterns.
ROUTE_HOSTS = [
    None,
    "example.com",
    "tools.example.com",
    "Tools.Example.com",
    "tools.example.com.",
    "a.tools.example.com",
    "*.example.com",
    "*.Example.COM",
    "*.example.com.",
    "*.tools.example.com",
    "*.eu.example.com",
    "*.com",
    "evilexample.com",
    "[::1]",
    "*.",
    "*",
    "",
]
# Request hosts as clients send them: ports, case, trailing dots, look-alikes, empty labels.
REQUEST_HOSTS = [
    "example.com",
    "EXAMPLE.com:8443",
    "tools.example.com",
    "tools.example.com.:443",
    "Tools.Example.Com",
    "a.tools.example.com",
    "x.a.tools.example.com",
    "eu.example.com",
    "a.eu.example.com",
    "evilexample.com",
    "example.com.evil.org",
    ".example.com",
    "..example.com",
    "com",
    "x.com",
    "[::1]:8080",
    "[::1]",
    "*",
    "",
    "other.org",
]
# Path segments: case pairs, non-ASCII whose lower-casing changes length or depends on
# context ("İ" becomes two characters, a final "Σ" a final sigma), escapes, dots in names.
SEGMENTS = ["a", "A", "app", "App", "APP", "api", "b", "B", "x", "İ", "ΑΣ", "ß", "ẞ", "%C3%A9"]
SEGMENTS += ["a.b", "apps", "ap", "1"]


@st.composite
def route_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(SEGMENTS), max_size=3))
    slash = draw(st.sampled_from(["", "/", "//"])) if segments else ""
    return "/" + "/".join(segments) + slash


@st.composite
def request_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(SEGMENTS + [""]), max_size=5))
    path = "/" + "/".join(segments)
    return path + draw(st.sampled_from(["", "/"]))


routes_strategy = st.lists(
    st.builds(
        Route,
        name=st.just(""),
        host=st.sampled_from(ROUTE_HOSTS),
        path=route_paths(),
        case_insensitive=st.booleans(),
    ),
    max_size=12,
).map(
    lambda routes: [Route(str(i), r.host, r.path, r.case_insensitive) for i, r in enumerate(routes)]
)

lookups = st.lists(
    st.tuples(st.sampled_from(REQUEST_HOSTS), request_paths(), st.booleans()),
    min_size=1,
    max_size=12,
)


def _both(
    table: RouteTable[Route], oracle: LinearRouteTable[Route], host: str, path: str, fold: bool
) -> None:
    assert table.match(host, path, fold=fold) == oracle.match(host, path, fold=fold), (
        host,
        path,
        fold,
    )


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(routes_strategy, lookups)
def test_the_index_chooses_what_the_linear_scan_chose(
    routes: list[Route], queries: list[tuple[str, str, bool]]
) -> None:
    """Any route set, any host (normalised as requests are, and raw), any path, fold or not."""
    table, oracle = RouteTable(routes), LinearRouteTable(routes)
    for header, path, fold in queries:
        _both(table, oracle, normalize_host(header), path, fold)
        _both(table, oracle, header, path, fold)  # the index must not rely on normalisation


# A small alphabet makes routes collide: one host written several ways (its written length
# ranks it), wildcards whose walk order differs from their rank, equal prefixes in both
# letter cases, and "İ", whose lower-case form is longer than itself.
LABELS = ["a", "x", "com", "A"]


@st.composite
def small_hosts(draw: st.DrawFn, request: bool) -> str | None:
    if not request and draw(st.integers(0, 4)) == 0:
        return None
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3))
    wildcard = "" if request else draw(st.sampled_from(["", "*."]))
    dots = draw(st.sampled_from(["", "", ".", "...."]))
    return wildcard + ".".join(labels) + dots


@st.composite
def small_paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(["a", "A", "b", "İ", "i̇"]), max_size=3))
    return "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))


colliding_routes = st.lists(
    st.tuples(small_hosts(request=False), small_paths(), st.booleans()), max_size=10
).map(lambda items: [Route(str(i), h, p, ci) for i, (h, p, ci) in enumerate(items)])


@settings(max_examples=400, deadline=None, database=None)
@given(
    colliding_routes,
    st.lists(st.tuples(small_hosts(request=True), small_paths(), st.booleans()), max_size=10),
)
def test_the_index_agrees_when_routes_collide(
    routes: list[Route], queries: list[tuple[str, str, bool]]
) -> None:
    """Many routes covering one request: the best-ranked one wins, as in the scan."""
    table, oracle = RouteTable(routes), LinearRouteTable(routes)
    for host, path, fold in queries:
        _both(table, oracle, host, path, fold)
    # Requests aimed at the routes themselves: their host as written, below their path.
    for route in routes:
        written = (route.host or "a.x").replace("*.", "a.")
        for host in {written, written.rstrip("."), written.lower().rstrip(".")}:
            for below in ("", "/", "/a", "/b/A", "/İ/a"):
                for fold in (False, True):
                    _both(table, oracle, host, route.path.rstrip("/") + below, fold)


text_routes = st.lists(
    st.tuples(st.sampled_from(ROUTE_HOSTS), st.text(max_size=8), st.booleans()), max_size=8
).map(lambda items: [Route(str(i), h, p, ci) for i, (h, p, ci) in enumerate(items)])


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.one_of(routes_strategy, text_routes),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12), st.booleans()), max_size=8),
)
def test_the_index_agrees_on_arbitrary_strings(
    routes: list[Route], queries: list[tuple[str, str, bool]]
) -> None:
    """Whatever strings arrive, even ones normalisation or the config would refuse (a route
    path without its leading slash), the answer is the same."""
    table, oracle = RouteTable(routes), LinearRouteTable(routes)
    for host, path, fold in queries:
        _both(table, oracle, host, path, fold)
        _both(table, oracle, host, "/" + path, fold)
        for route in routes[:3]:  # paths below the routes' own prefixes
            _both(table, oracle, host, route.path + "/" + path, fold)


def _thousand_routes() -> list[Route]:
    """1,000 routes as a big deployment writes them: many hosts with a few paths each,
    wildcards, host-less routes, some case-insensitive, shared prefixes and equal ones."""
    rng = random.Random(8)
    routes: list[Route] = []
    teams = [f"team{i}" for i in range(60)]
    while len(routes) < 1000:
        kind = rng.random()
        if kind < 0.7:
            host: str | None = f"{rng.choice(teams)}.apps.example.com"
        elif kind < 0.85:
            host = rng.choice(
                ["*.apps.example.com", "*.example.com", f"*.{rng.choice(teams)}.apps.example.com"]
            )
        else:
            host = None
        depth = rng.randrange(0, 4)
        path = "/" + "/".join(
            rng.choice(["api", "v1", "v2", "Admin", "admin", "ui", "x"]) for _ in range(depth)
        )
        if depth and rng.random() < 0.2:
            path += "/"
        routes.append(Route(f"r{len(routes)}", host, path, rng.random() < 0.1))
    return routes


THOUSAND = _thousand_routes()


def test_a_thousand_routes_choose_what_the_linear_scan_chose() -> None:
    """Every host and path shape a big config sees, checked against the reference."""
    rng = random.Random(80)
    table, oracle = RouteTable(THOUSAND), LinearRouteTable(THOUSAND)
    hosts = [f"team{i}.apps.example.com" for i in range(70)]
    hosts += [
        "x.team3.apps.example.com",
        "apps.example.com",
        "example.com",
        "other.org",
        "evil-apps.example.com",
    ]
    hosts += ["team1.apps.example.com.evil.org", "TEAM1.apps.example.com"]
    parts = ["api", "v1", "v2", "admin", "Admin", "ADMIN", "ui", "x", "y", "apix"]
    checked = set()
    for _ in range(5000):
        host = rng.choice(hosts)
        path = "/" + "/".join(rng.choice(parts) for _ in range(rng.randrange(0, 5)))
        path += rng.choice(["", "/"]) if path != "/" else ""
        fold = rng.random() < 0.3
        chosen = table.match(host, path, fold=fold)
        assert chosen == oracle.match(host, path, fold=fold), (host, path, fold)
        checked.add(chosen.name if chosen else None)
    assert len(checked) > 300  # the queries reached a good share of the routes, not a few


def test_a_thousand_routes_route_by_host_then_longest_prefix() -> None:
    """Spot checks in a 1,000-route table, written out, beside the reference comparison."""
    routes = [
        Route(f"team{i}-{p}", f"team{i}.example.com", p)
        for i in range(250)
        for p in ("/", "/api", "/api/v1", "/ui/")
    ]
    routes += [
        Route("wild", "*.example.com", "/"),
        Route("wild-api", "*.example.com", "/api/v1/admin"),
    ]
    routes += [Route("any", None, "/"), Route("any-deep", None, "/api/v1/admin/x")]
    table = RouteTable(routes)
    assert len(routes) == 1004

    def chosen(host: str, path: str) -> str | None:
        route = table.match(host, path)
        return route.name if route else None

    assert chosen("team7.example.com", "/api/v1/x") == "team7-/api/v1"
    assert chosen("team7.example.com", "/api/v10") == "team7-/api"
    assert chosen("team7.example.com", "/ui") == "team7-/ui/"
    assert chosen("team7.example.com", "/uix") == "team7-/"
    assert chosen("team249.example.com", "/api/v1/admin/x") == "team249-/api/v1"  # host first
    assert chosen("team250.example.com", "/api/v1/admin/x") == "wild-api"
    assert chosen("team250.example.com", "/api/v1") == "wild"
    assert chosen("example.com", "/api/v1/admin/x/y") == "any-deep"
    assert chosen("example.com.evil.org", "/") == "any"
    assert chosen("eam7.example.com", "/api") == "wild"


# --------------------------------------------------------------------------- precedence


PRECEDENCE = [
    pytest.param(
        [Route("exact", "a.example.com", "/"), Route("wild", "*.example.com", "/x/y/z")],
        "a.example.com",
        "/x/y/z",
        False,
        "exact",
        id="an exact host beats a wildcard with a longer path",
    ),
    pytest.param(
        [Route("short", "*.example.com", "/a/b/c"), Route("long", "*.eu.example.com", "/")],
        "x.eu.example.com",
        "/a/b/c",
        False,
        "long",
        id="a longer wildcard beats a shorter one with a longer path",
    ),
    pytest.param(
        [Route("any", None, "/a/b/c"), Route("wild", "*.example.com", "/")],
        "x.example.com",
        "/a/b/c",
        False,
        "wild",
        id="a wildcard beats no host with a longer path",
    ),
    pytest.param(
        [Route("any", None, "/a/b/c"), Route("wild", "*.example.com", "/")],
        "example.com",
        "/a/b/c",
        False,
        "any",
        id="the bare domain falls through to no host",
    ),
    pytest.param(
        [Route("sensitive", None, "/a"), Route("insensitive", None, "/A/B", True)],
        "h",
        "/a/b/c",
        False,
        "insensitive",
        id="a longer case-insensitive prefix beats a shorter exact one",
    ),
    pytest.param(
        [Route("insensitive", None, "/App", True), Route("sensitive", None, "/app")],
        "h",
        "/app/x",
        False,
        "insensitive",
        id="equal prefixes: config order, whatever the letter case flag",
    ),
    pytest.param(
        [Route("sensitive", None, "/app"), Route("insensitive", None, "/App", True)],
        "h",
        "/app/x",
        False,
        "sensitive",
        id="equal prefixes: config order, the other way round",
    ),
    pytest.param(
        [Route("root", None, "/"), Route("admin", None, "/admin")],
        "h",
        "/ADMIN/x",
        False,
        "root",
        id="a case-sensitive route does not take another case",
    ),
    pytest.param(
        [Route("root", None, "/"), Route("admin", None, "/admin")],
        "h",
        "/ADMIN/x",
        True,
        "admin",
        id="fold reads every route ignoring case",
    ),
    pytest.param(
        [Route("root", None, "/"), Route("app", None, "/app/")],
        "h",
        "/app",
        False,
        "app",
        id="a slash-ended prefix covers its own name",
    ),
    pytest.param(
        [Route("root", None, "/"), Route("app", None, "/app")],
        "h",
        "/apps",
        False,
        "root",
        id="prefixes end on segment boundaries",
    ),
    pytest.param(
        [Route("dotted", "a.example.com....", "/a"), Route("plain", "a.example.com", "/a/b")],
        "a.example.com",
        "/a/b",
        False,
        "dotted",
        id="one host written two ways: the longer writing ranks first (the config forbids both)",
    ),
    pytest.param(
        [Route("dotted", "*.com" + "." * 10, "/"), Route("deeper", "*.example.com", "/")],
        "a.example.com",
        "/",
        False,
        "dotted",
        id="wildcards rank by written length, not by the order the host's labels are walked",
    ),
    pytest.param(
        [Route("i-dot", None, "/\u0130", True), Route("ascii", None, "/i\u0307/x", True)],
        "h",
        "/i\u0307/x",
        False,
        "ascii",
        id="case-insensitive prefixes rank by their written length ('İ' folds longer)",
    ),
    pytest.param(
        [Route("grafana", "tools.example.com", "/grafana")],
        "tools.example.com",
        "/",
        False,
        None,
        id="no route covers the root",
    ),
]


@pytest.mark.parametrize(("routes", "host", "path", "fold", "expected"), PRECEDENCE)
def test_precedence(
    routes: list[Route], host: str, path: str, fold: bool, expected: str | None
) -> None:
    """Host specificity first, then the longest prefix on segment boundaries, then config order."""
    chosen = RouteTable(routes).match(host, path, fold=fold)
    assert (chosen.name if chosen else None) == expected
    assert chosen == LinearRouteTable(routes).match(host, path, fold=fold)
