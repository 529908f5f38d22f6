"""Access control: one normalised path picks the route, the public paths and the policy.

The request target is split from its query and normalised once; that single match path
is what routing, public paths and the policy see (SECURITY.md §4).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.access import Access, AccessControl
from gateway.config import parse_config
from gateway.errors import PathError
from gateway.identity import Identity
from gateway.policy import Reason, ReasonCode
from gateway.routing import normalize_path
from tests.unit.conftest import identity, minimal_raw_config, org

NOW = datetime(2025, 1, 1, tzinfo=UTC)
HOST = "tools.example.com"

CONFIG = parse_config(
    minimal_raw_config(
        policies={
            "admins": {"allow": [{"org": "acme", "min_role": "admin"}]},
            "writers": {
                "allow": [{"method": ["GET", "HEAD"]}, {"org": "acme", "min_role": "write"}]
            },
        },
        routes=[
            {
                "name": "site",
                "host": HOST,
                "path": "/",
                "upstream": "http://127.0.0.1:3000",
                "policy": "authenticated",
                "public_paths": ["/public/", "/healthz", "/assets/./img/"],
            },
            {
                "name": "admin",
                "host": HOST,
                "path": "/admin",
                "upstream": "http://127.0.0.1:4000",
                "policy": "admins",
            },
            {
                "name": "docs",
                "host": HOST,
                "path": "/docs",
                "upstream": "http://127.0.0.1:5000",
                "policy": "writers",
                "public_paths": ["/docs"],
            },
            {
                "name": "docs-admin",
                "host": HOST,
                "path": "/docs/admin",
                "upstream": "http://127.0.0.1:5000",
                "policy": "admins",
            },
            {
                "name": "wiki",
                "host": HOST,
                "path": "/wiki",
                "upstream": "http://127.0.0.1:7000",
                "policy": "writers",
            },
            {
                "name": "open",
                "host": HOST,
                "path": "/open",
                "upstream": "http://127.0.0.1:6000",
                "policy": "public",
            },
        ],
    )
)
CONTROL = AccessControl(CONFIG)


def _judge(target: str, who: Identity | None = None, method: str = "GET") -> Access:
    """What the gateway does with a request target: split the query, normalise, decide."""
    path, _, _query = target.partition("?")
    match = normalize_path(path).match
    route = CONTROL.route_for(HOST, match)
    assert route is not None
    return CONTROL.decide(route, match, method, who, NOW, HOST)


@pytest.mark.parametrize(
    ("target", "route", "public"),
    [
        pytest.param("/public/", "site", True, id="public path"),
        pytest.param("/public/css/x.css", "site", True, id="below a public path"),
        pytest.param("/public", "site", True, id="public directory's own name"),
        pytest.param("/public/x?next=/admin", "site", True, id="query does not matter"),
        pytest.param("//public/x", "site", True, id="double slash"),
        pytest.param("/public;jsessionid=1/x", "site", True, id="path parameter ignored"),
        pytest.param("/%70ublic/x", "site", True, id="encoded letter"),
        pytest.param("/healthz", "site", True, id="exact public path"),
        pytest.param("/assets/img/logo.png", "site", True, id="public path normalised in config"),
        pytest.param("/admin?x=/public/", "admin", False, id="public path in the query"),
        pytest.param("/public/../admin", "admin", False, id="dot-dot out of a public path"),
        pytest.param("/public/%2e%2e/admin", "admin", False, id="encoded dot-dot"),
        pytest.param("/public/..;/admin", "admin", False, id="dot-dot with a parameter"),
        pytest.param("/admin;/public/", "admin", False, id="public path after a parameter"),
        pytest.param("/PUBLIC/x", "site", False, id="public paths are case-sensitive"),
        pytest.param("/publicity", "site", False, id="longer segment"),
        pytest.param("/healthz/../secret", "site", False, id="dot-dot out of healthz"),
        pytest.param("/healthzx", "site", False, id="healthz prefix"),
        pytest.param("/docs/guide", "docs", True, id="public route prefix"),
        pytest.param("/docs/admin/users", "docs-admin", False, id="longer route is not public"),
        pytest.param("/docs/admin/../guide", "docs", True, id="dot-dot back into public docs"),
    ],
)
def test_public_paths_match_the_normalised_path_on_segment_boundaries(
    target: str, route: str, public: bool
) -> None:
    """Anonymous requests pass only below a public path of the route they are routed to."""
    access = _judge(target)
    assert access.route.name == route
    assert access.public_path is public
    assert access.decision.allowed is public
    assert access.decision.unauthenticated is not public


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/public%2f..%2fadmin", id="encoded slash"),
        pytest.param("/public/%2e%2e%2fadmin", id="encoded dot-dot-slash"),
        pytest.param("/admin%23/public/", id="encoded hash"),
        pytest.param("/public\\..\\admin", id="backslashes"),
    ],
)
def test_ambiguous_paths_never_reach_routing(target: str) -> None:
    """Paths that could be read two ways are refused before any route or public path."""
    with pytest.raises(PathError):
        _judge(target)


def test_a_public_path_decision_names_the_public_path() -> None:
    """The reason says which public_paths entry let the request through."""
    access = _judge("/healthz")
    assert access.decision.reasons == (
        Reason(ReasonCode.PUBLIC, "public_paths[1]", "/healthz is public"),
    )


def test_public_paths_let_signed_in_users_through_too() -> None:
    """A public path is public for everyone, whatever the route's policy would say."""
    assert _judge("/docs/x", identity("alice")).decision.allowed is True


def test_the_policy_of_the_matched_route_is_the_one_evaluated() -> None:
    """/public/../admin is judged by the admin route's policy, not the site's."""
    member = identity("alice", orgs=[org("acme", "read")])
    admin = identity("root", orgs=[org("acme", "admin")])
    assert _judge("/public/../admin", member).decision.allowed is False
    assert _judge("/public/../admin", admin).decision.allowed is True
    assert _judge("/public/../site-page", member).decision.allowed is True


@pytest.mark.parametrize(
    ("method", "allowed"),
    [
        pytest.param("GET", True, id="GET"),
        pytest.param("get", True, id="lower-case get"),
        pytest.param("POST", False, id="POST"),
        pytest.param("post", False, id="lower-case post"),
    ],
)
def test_the_request_method_reaches_the_policy_upper_cased(method: str, allowed: bool) -> None:
    """Method rules compare against the upper-cased request method."""
    reader = identity("alice", orgs=[org("acme", "read")])
    access = _judge("/wiki/page", reader, method)
    assert access.route.name == "wiki"
    assert access.decision.allowed is allowed


def test_the_public_policy_lets_anonymous_requests_through() -> None:
    """A route with the built-in public policy needs no sign-in anywhere below it."""
    access = _judge("/open/anything")
    assert access.route.name == "open"
    assert access.public_path is False
    assert access.decision.allowed is True
    assert [r.code for r in access.decision.reasons] == [ReasonCode.PUBLIC]


def test_access_control_exposes_each_route_policy() -> None:
    """policy(route) is the named, inline or built-in policy of that route."""
    routes = {route.name: route for route in CONFIG.routes}
    assert CONTROL.policy(routes["admin"]) is CONFIG.policies["admins"]
    assert CONTROL.policy(routes["open"]).public is True


def test_a_host_without_routes_has_no_route() -> None:
    """Requests for hosts no route names are not routed (404), never to another host."""
    assert CONTROL.route_for("other.example.com", "/") is None
