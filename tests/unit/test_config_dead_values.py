"""Values that can never take effect are refused at their key, with the reason and what to
write instead (issue 11, item 2): shadowed routes, duplicated or covered public paths,
misplaced wildcards, and route header edits the gateway could never honour. Each refusal
sits beside the valid twin it must not catch."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.headers import IdentityHeaders
from tests.unit.conftest import identity, minimal_raw_config, org

APP = {"name": "app", "upstream": "http://127.0.0.1:3000", "policy": "authenticated"}


def _config(routes: list[dict[str, Any]] | None = None, **sections: Any) -> dict[str, Any]:
    raw = minimal_raw_config()
    if routes is not None:
        raw["routes"] = [{**APP, **r} for r in routes]
    raw.update(sections)
    return raw


def _problems(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


REFUSED = [
    pytest.param(
        _config([{}, {"name": "b"}]),
        "routes[1].path: / on any host is already served by routes[0] (app), so this route "
        "can never be reached: give it another path or host, or remove it",
        id="route shadowed by an earlier one",
    ),
    pytest.param(
        _config([{"path": "/x/"}, {"name": "b", "path": "/x"}]),
        "routes[1].path: /x on any host is already served by routes[0] (app)",
        id="shadowed up to a trailing slash",
    ),
    pytest.param(
        _config([{"path": "/X", "case_insensitive": True}, {"name": "b", "path": "/x"}]),
        "routes[1].path: /x on any host is already served by routes[0] (app)",
        id="shadowed by a case-insensitive route",
    ),
    pytest.param(
        _config(
            server={
                **minimal_raw_config()["server"],
                "trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8"],
            }
        ),
        "server.trusted_proxies: 10.0.0.1/8 is listed twice (also as 10.0.0.0/8): remove one",
        id="trusted proxy listed twice",
    ),
    pytest.param(
        _config(provider={**minimal_raw_config()["provider"], "scopes": "openid email email"}),
        "provider.scopes: email is listed twice: remove one",
        id="scope listed twice",
    ),
    pytest.param(
        _config(
            [{"allowed_origins": ["https://portal.example.com", "https://PORTAL.example.com"]}]
        ),
        "routes[0].allowed_origins: https://PORTAL.example.com is listed twice (also as "
        "https://portal.example.com): remove one",
        id="allowed origin listed twice",
    ),
    pytest.param(
        _config([{"public_paths": ["/a", "/a/b"]}]),
        "routes[0].public_paths[1]: /a/b is already public under /a: remove this entry",
        id="public path covered by another",
    ),
    pytest.param(
        _config([{"public_paths": ["/a", "/a/"]}]),
        "routes[0].public_paths[1]: /a/ is listed twice: remove this entry",
        id="public path listed twice",
    ),
    pytest.param(
        _config(identity={"strip_headers": ["X-*-User"]}),
        "identity.strip_headers: 'X-*-User': * only ends a family (X-Corp-*), it matches "
        "nothing elsewhere",
        id="strip_headers wildcard in the middle",
    ),
    pytest.param(
        _config(identity={"strip_headers": ["X-Corp", "x_corp"]}),
        "identity.strip_headers: x_corp is listed twice (also as X-Corp): remove one",
        id="strip_headers listed twice",
    ),
    pytest.param(
        _config(identity={"strip_headers": ["Expect"]}),
        "identity.strip_headers: Expect is hop-by-hop and never forwarded anyway: remove it",
        id="strip_headers of a header never forwarded",
    ),
    pytest.param(
        _config(identity={"headers": {"X-Request-Id": "{sub}"}}),
        "identity.headers: X-Request-Id is the gateway's own (request id, websocket "
        "handshake): use a name such as X-Forwarded-User",
        id="identity header that the gateway sends itself",
    ),
    pytest.param(
        _config(identity={"headers": {"Expect": "{sub}"}}),
        "identity.headers: Expect describes the connection or the body, not a user",
        id="identity header that frames the body",
    ),
    pytest.param(
        _config([{"set_headers": {"X Team": "ml"}}]),
        "routes[0].set_headers: 'X Team' is not a header name: use 'X-Team'",
        id="set_headers invalid name",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Team": "a\r\nX-Forwarded-User: admin"}}]),
        "routes[0].set_headers.X-Team: a header value must not hold a line break or NUL",
        id="set_headers value with CRLF",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Team": "é"}}]),
        "routes[0].set_headers.X-Team: a header value must be printable ASCII ('é' is not): "
        "percent-encode it",
        id="set_headers non-ASCII value",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Team": " ml"}}]),
        "routes[0].set_headers.X-Team: a header value cannot begin or end with a blank: use 'ml'",
        id="set_headers value with a blank parsers drop",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Team": "a", "x_team": "b"}}]),
        "routes[0].set_headers.x_team: x_team is listed twice (also as X-Team): remove one",
        id="set_headers listed twice",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Forwarded-User": "admin"}}]),
        "routes[0].set_headers.X-Forwarded-User: X-Forwarded-User is an identity or "
        "forwarding header the gateway owns",
        id="set_headers of an identity header",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Gateway-Assertion": "x"}}]),
        "routes[0].set_headers.X-Gateway-Assertion: X-Gateway-Assertion is an identity",
        id="set_headers of the assertion",
    ),
    pytest.param(
        _config([{"set_headers": {"Host": "internal"}}]),
        "routes[0].set_headers.Host: Host is chosen by the route's preserve_host",
        id="set_headers Host",
    ),
    pytest.param(
        _config([{"set_headers": {"Content-Length": "0"}}]),
        "routes[0].set_headers.Content-Length: Content-Length is the body's framing",
        id="set_headers Content-Length",
    ),
    pytest.param(
        _config([{"remove_headers": ["Transfer-Encoding"]}]),
        "routes[0].remove_headers[0]: Transfer-Encoding is the body's framing",
        id="remove_headers Transfer-Encoding",
    ),
    pytest.param(
        _config([{"remove_headers": ["Connection"]}]),
        "routes[0].remove_headers[0]: Connection is hop-by-hop",
        id="remove_headers hop-by-hop",
    ),
    pytest.param(
        _config([{"remove_headers": ["X-Forwarded-Email"]}]),
        "routes[0].remove_headers[0]: X-Forwarded-Email is an identity or forwarding header",
        id="remove_headers of an identity header",
    ),
    pytest.param(
        _config([{"remove_headers": ["X-Forwarded-*"]}]),
        "routes[0].remove_headers[0]: X-Forwarded-* would also remove",
        id="remove_headers family covering identity headers",
    ),
    pytest.param(
        _config([{"remove_headers": ["X-Debug", "x-debug"]}]),
        "routes[0].remove_headers[1]: x-debug is listed twice (also as X-Debug): remove one",
        id="remove_headers listed twice",
    ),
    pytest.param(
        _config([{"set_headers": {"X-Debug": "1"}, "remove_headers": ["X-Debug"]}]),
        "routes[0].remove_headers: X-Debug is also in set_headers",
        id="set and removed",
    ),
    pytest.param(
        _config([{"set_headers": {"X-User": "x"}}], identity={"headers": {"X-User": "{username}"}}),
        "routes[0].set_headers.X-User: is set by identity.headers (X-User)",
        id="set_headers of a configured identity header",
    ),
    pytest.param(
        _config(
            [{"remove_headers": ["X-Who*"]}], identity={"headers": {"X-Who-Am-I": "{username}"}}
        ),
        "routes[0].remove_headers[0]: X-Who* would remove a header set by identity.headers",
        id="remove_headers family covering a configured identity header",
    ),
    pytest.param(
        _config(
            [{"set_headers": {"X-Signed": "x"}}],
            identity={"assertion": {"header": "X-Signed"}},
        ),
        "routes[0].set_headers.X-Signed: is set by identity.assertion.header",
        id="set_headers of the configured assertion header",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), REFUSED)
def test_values_that_can_never_take_effect_are_refused_at_their_key(
    raw: dict[str, Any], expected: str
) -> None:
    problems = _problems(raw)
    assert any(p.startswith(expected) for p in problems), problems


ACCEPTED = [
    pytest.param(_config([{}, {"name": "b", "path": "/b"}]), id="routes on different paths"),
    pytest.param(
        _config([{}, {"name": "b", "host": "tools.example.com"}]), id="same path, another host"
    ),
    pytest.param(
        _config([{"path": "/x"}, {"name": "b", "path": "/X", "case_insensitive": True}]),
        id="a case-insensitive route after a case-sensitive one still serves /X",
    ),
    pytest.param(_config([{"public_paths": ["/a", "/ab"]}]), id="public paths side by side"),
    pytest.param(
        _config(
            server={
                **minimal_raw_config()["server"],
                "trusted_proxies": ["10.0.0.0/8", "10.1.0.0/16"],
            }
        ),
        id="overlapping but different proxy networks",
    ),
    pytest.param(_config(identity={"strip_headers": ["X-Corp-*", "X-Tenant"]}), id="strip family"),
    pytest.param(
        _config(
            [
                {
                    "set_headers": {"X-Team": "ml platform", "Authorization": "Bearer k"},
                    "remove_headers": ["Cookie", "X-Debug-*", "Referer"],
                }
            ]
        ),
        id="set and remove ordinary headers",
    ),
    pytest.param(_config(identity={"headers": {"X-Roles": "{org_roles}"}}), id="org_roles field"),
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_their_valid_twins_are_accepted(raw: dict[str, Any]) -> None:
    parse_config(raw)


def test_header_edits_are_built_once_per_route() -> None:
    route = parse_config(
        _config([{"set_headers": {"X-Team": "ml"}, "remove_headers": ["X-Debug-*"]}])
    ).routes[0]
    assert route.header_edits is route.header_edits
    assert route.header_edits is not None
    edited = route.header_edits.apply(
        [("x_team", "evil"), ("X-Debug-Id", "1"), ("X-Kept", "yes"), ("X-TEAM", "evil")]
    )
    assert edited == [("X-Kept", "yes"), ("X-Team", "ml")]
    assert parse_config(_config([{}])).routes[0].header_edits is None


def test_org_roles_lists_each_counting_org_with_its_role() -> None:
    """{org_roles}: slug:role for orgs that count; a pending (SSO) membership is left out,
    as in {orgs}, and an org whose role was not granted appears without one."""
    who = identity(
        orgs=(
            org("acme", role="write"),
            org("beta", role="read"),
            org("sso", role="admin", restrictions=("sso",)),
            org("hidden", role=None),
        )
    )
    headers = IdentityHeaders.from_config(
        {"X-Roles": "{org_roles}", "X-Orgs": "{orgs}"}, "X-Gateway-Assertion"
    )
    assert headers.render(who, "app") == [
        ("X-Roles", "acme:write,beta:read,hidden"),
        ("X-Orgs", "acme,beta,hidden"),
    ]
