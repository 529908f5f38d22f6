"""Configuration: every mistake is reported as ``path: reason``, all at once.

``parse_config`` is pure (a loaded mapping in, GatewayConfig or ConfigError out);
``load_config`` adds the file, the environment, policy files and ``*_file`` secrets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import (
    GatewayConfig,
    config_json_schema,
    interpolate,
    load_config,
    parse_config,
    parse_duration,
)
from gateway.errors import ConfigError
from gateway.policy import BUILTIN_POLICIES, Policy
from tests.unit.conftest import SECRET, minimal_raw_config, write_yaml

DELETE = object()
"""Marks a key to remove in a table of changes."""

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _apply(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Set (or, with DELETE, remove) each dotted path such as ``routes[0].policy``."""
    for path, value in changes.items():
        keys: list[int | str] = [
            int(index) if index else name for index, name in _TOKEN.findall(path)
        ]
        node: Any = raw
        for key, following in zip(keys, keys[1:], strict=False):
            if isinstance(key, str) and key not in node:
                node[key] = [] if isinstance(following, int) else {}
            node = node[key]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(last, int) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return raw


def _problems(raw: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


ROUTE_B = {"name": "b", "upstream": "http://127.0.0.1:4000", "policy": "authenticated"}
REDIS = {"session.store": "redis", "session.redis_url": "redis://127.0.0.1:6379/0"}
SENTINEL = {"master": "mymaster", "nodes": ["10.0.0.1:26379"]}

MISTAKES = [
    # --- unknown keys, at every level
    pytest.param({"bogus": 1}, ["bogus: unknown key"], id="unknown top-level key"),
    pytest.param({"server.bogus": 1}, ["server.bogus: unknown key"], id="unknown key in server"),
    pytest.param(
        {"provider.client_secrets": "x"},
        ["provider.client_secrets: unknown key"],
        id="unknown key in provider (a typo)",
    ),
    pytest.param(
        {"session.idle_timout": "1h"},
        ["session.idle_timout: unknown key"],
        id="unknown key in session",
    ),
    pytest.param(
        {"session.store": "redis", "session.redis_sentinel": {**SENTINEL, "pw": "x"}},
        ["session.redis_sentinel.pw: unknown key"],
        id="unknown key in redis_sentinel",
    ),
    pytest.param(
        {"identity": {"header": {}}}, ["identity.header: unknown key"], id="unknown key in identity"
    ),
    pytest.param(
        {"identity": {"assertion": {"tll": "60s"}}},
        ["identity.assertion.tll: unknown key"],
        id="unknown key in identity.assertion",
    ),
    pytest.param(
        {"policies": {"staff": {"allow": [{"org": "acme"}], "requires_scopes": ["x"]}}},
        ["policies.staff.requires_scopes: unknown key"],
        id="unknown key in a named policy",
    ),
    pytest.param(
        {"policies": {"staff": {"allow": [{"orgs": "acme"}]}}},
        ["policies.staff.allow[0].orgs: unknown key"],
        id="unknown criterion in a policy rule",
    ),
    pytest.param(
        {"policies": {"staff": {"allow": [{"any": [{"user": "a"}, {"usr": "b"}]}]}}},
        ["policies.staff.allow[0].any[1].usr: unknown key"],
        id="unknown criterion inside any",
    ),
    pytest.param(
        {"policies": {"staff": {"allow": [{"org": "a", "not": {"usr": "b"}}]}}},
        ["policies.staff.allow[0].not.usr: unknown key"],
        id="unknown criterion inside not",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"org": "acme", "min_rol": "write"}]}},
        ["routes[0].policy.allow[0].min_rol: unknown key"],
        id="unknown criterion in an inline route policy",
    ),
    pytest.param(
        {"routes[0].public_path": ["/x"]},
        ["routes[0].public_path: unknown key"],
        id="unknown key in a route",
    ),
    # --- wrong types
    pytest.param({"server.workers": "two"}, ["server.workers: must be an integer"], id="workers"),
    pytest.param(
        {"routes[0].websockets": "maybe"},
        ["routes[0].websockets: must be true or false"],
        id="boolean that is not",
    ),
    pytest.param({"server": "x"}, ["server: must be a mapping"], id="section that is a string"),
    pytest.param({"routes": {"a": 1}}, ["routes: must be a list of routes"], id="routes mapping"),
    pytest.param({"routes[0]": "app"}, ["routes[0]: must be a mapping"], id="route string"),
    pytest.param(
        {"policies": ["staff"]},
        ["policies: must be a mapping of policy names to policies"],
        id="policies list",
    ),
    pytest.param({"policies": {"p": "x"}}, ["policies.p: must be a mapping"], id="policy string"),
    pytest.param(
        {"policy_files": 5}, ["policy_files: must be a list of globs"], id="policy_files number"
    ),
    pytest.param(
        {"session.secret": 123},
        ["session.secret: must be a string or a list of strings"],
        id="secret number",
    ),
    pytest.param(
        {"server.trusted_proxies": None},
        ["server.trusted_proxies: must be a string or a list of strings"],
        id="trusted_proxies null",
    ),
    pytest.param(
        {"routes[0].policy": 5},
        ["routes[0].policy: must be a policy name or an inline policy"],
        id="route policy number",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"user": 5}]}},
        ["routes[0].policy.allow[0].user: must be a string or a list of strings"],
        id="criterion number",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"authenticated": False}]}},
        ["routes[0].policy.allow[0].authenticated: must be true"],
        id="authenticated false",
    ),
    pytest.param(
        {"identity": {"headers": {"X-User": 5}}},
        ["identity.headers.X-User: must be a string"],
        id="header template number",
    ),
    # --- missing things
    pytest.param({"server": DELETE}, ["server: is required"], id="no server section"),
    pytest.param(
        {"provider.client_id": DELETE},
        [
            "provider.client_secret: a CIMD client id (client_id auto) is a public client: "
            "remove client_secret, or set client_id to the id of your registered app"
        ],
        id="no client_id but a secret",
    ),
    pytest.param(
        {"provider.client_id": ""}, ["provider.client_id: must not be empty"], id="empty client_id"
    ),
    pytest.param({"routes": []}, ["routes: at least one route is required"], id="no routes"),
    pytest.param({"routes[0].policy": DELETE}, ["routes[0].policy: is required"], id="no policy"),
    pytest.param(
        {"routes[0].upstream": DELETE}, ["routes[0].upstream: is required"], id="no upstream"
    ),
    # --- durations
    pytest.param(
        {"session.idle_timeout": "5x"},
        ["session.idle_timeout: must be a duration like 30s, 5m, 8h, 7d or a number of seconds"],
        id="duration with unknown unit",
    ),
    pytest.param(
        {"routes[0].read_timeout": "1.5h"},
        ["routes[0].read_timeout: must be a duration like 30s, 5m, 8h, 7d or a number of seconds"],
        id="fractional duration",
    ),
    pytest.param(
        {"session.max_lifetime": -5},
        ["session.max_lifetime: must not be negative"],
        id="negative duration",
    ),
    pytest.param(
        {"routes[0].connect_timeout": True},
        [
            "routes[0].connect_timeout: must be a duration like 30s, 5m, 8h, 7d "
            "or a number of seconds"
        ],
        id="boolean duration",
    ),
    pytest.param(
        {"session.idle_timeout": 0},
        ["session.idle_timeout: idle_timeout and max_lifetime must be positive"],
        id="zero idle timeout",
    ),
    pytest.param(
        {"identity": {"assertion": {"ttl": "2h"}}},
        ["identity.assertion.ttl: must be between 1s and 1h"],
        id="assertion ttl too long",
    ),
    # --- policies and rules
    pytest.param(
        {
            "routes[1]": {
                **ROUTE_B,
                "policy": {"allow": [{"org": "acme", "min_role": "owner"}]},
            }
        },
        ["routes[1].policy.allow[0].min_role: must be one of read, contributor, write, admin"],
        id="min_role not a role",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"min_role": "write"}]}},
        ["routes[0].policy.allow[0]: min_role needs org or org_id in the same rule"],
        id="min_role without org",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{}]}},
        ["routes[0].policy.allow[0]: a rule needs at least one criterion"],
        id="empty rule",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"user": []}]}},
        ["routes[0].policy.allow[0].user: must not be empty"],
        id="empty user list",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"org": ["acme", " "]}]}},
        ["routes[0].policy.allow[0].org: must not contain empty strings"],
        id="blank org slug",
    ),
    pytest.param(
        {"routes[0].policy": {"allow": [{"any": []}]}},
        ["routes[0].policy.allow[0].any: must list at least one rule"],
        id="empty any",
    ),
    pytest.param(
        {"routes[0].policy": {"deny": [{"user": "mallory"}]}},
        [
            "routes[0].policy: allow: at least one rule is required "
            "(use the built-in policy 'authenticated' for any signed-in user)"
        ],
        id="policy without allow",
    ),
    pytest.param(
        {"routes[0].policy": {"public": True, "allow": [{"user": "a"}]}},
        ["routes[0].policy: a public policy takes no allow, deny or require_scopes"],
        id="public policy with rules",
    ),
    pytest.param(
        {"policies": {"public": {"allow": [{"user": "a"}]}}},
        ["policies.public: 'public' is a built-in policy name"],
        id="policy named like a built-in",
    ),
    pytest.param(
        {"routes[0].policy": "staf"},
        ["routes[0].policy: unknown policy 'staf' (known: authenticated, public)"],
        id="unknown policy name",
    ),
    # --- routes
    pytest.param(
        {"routes[1]": {**ROUTE_B, "name": "app", "path": "/b"}},
        ["routes[1].name: duplicate route name 'app' (also routes[0])"],
        id="duplicate route names",
    ),
    pytest.param(
        {"routes[0].name": "my app"},
        ["routes[0].name: must be 1-63 letters, digits, '.', '_' or '-'"],
        id="route name with a space",
    ),
    pytest.param(
        {"routes[0].upstream": "127.0.0.1:3000"},
        ["routes[0].upstream: upstream '127.0.0.1:3000' has no http:// or https:// scheme"],
        id="upstream without scheme",
    ),
    pytest.param(
        {"routes[0].upstream": "http://127.0.0.1:3000/?x=1"},
        ["routes[0].upstream: upstream must not have a query or fragment"],
        id="upstream with query",
    ),
    pytest.param(
        {"routes[0].upstream": "unix:app.sock"},
        ["routes[0].upstream: a unix socket upstream must be unix:/absolute/path.sock"],
        id="relative unix socket",
    ),
    pytest.param(
        {"routes[0].path": "admin"},
        ["routes[0].path: 'admin' must start with '/'"],
        id="relative route path",
    ),
    pytest.param(
        {"routes[0].path": "/a%2Fb"},
        ["routes[0].path: '/a%2Fb': an encoded slash is not allowed in paths"],
        id="route path with %2F",
    ),
    pytest.param(
        {"routes[0].public_paths": ["/ok", "/x%00"]},
        ["routes[0].public_paths: '/x%00': a NUL byte is not allowed in paths"],
        id="public path with %00",
    ),
    pytest.param(
        {"routes[0].host": "tools.example.com:443"},
        [
            "routes[0].host: 'tools.example.com:443' is not a host name or *.domain pattern "
            "(no port, no scheme)"
        ],
        id="route host with port",
    ),
    pytest.param(
        {"routes[0].host": "grafana.other.org"},
        [
            "routes[0].host: grafana.other.org is neither public_url's host (tools.example.com) "
            "nor under session.cookie_domain "
            "(set cookie_domain to share sign-in across subdomains)"
        ],
        id="route host not under the public host",
    ),
    pytest.param(
        {"routes[0].host": "*.example.com"},
        [
            "routes[0].host: *.example.com is neither public_url's host (tools.example.com) "
            "nor under session.cookie_domain "
            "(set cookie_domain to share sign-in across subdomains)"
        ],
        id="wildcard route host without cookie_domain",
    ),
    pytest.param(
        {"session.cookie_domain": ".example.com", "routes[0].host": "grafana.evilexample.com"},
        [
            "routes[0].host: grafana.evilexample.com is neither public_url's host "
            "(tools.example.com) nor under session.cookie_domain"
        ],
        id="route host under a look-alike of cookie_domain",
    ),
    # --- server
    pytest.param(
        {"server.public_url": "tools.example.com"},
        ["server.public_url: must be an absolute http:// or https:// URL, not 'tools.example.com'"],
        id="public_url not absolute",
    ),
    pytest.param(
        {"server.public_url": "https://tools.example.com/gateway"},
        ["server.public_url: must be an origin without a path, query or fragment"],
        id="public_url with a path",
    ),
    pytest.param(
        {"server.listen": "8080"},
        ["server.listen: must be host:port, for example 0.0.0.0:8080"],
        id="listen without host",
    ),
    pytest.param(
        {"server.listen": "0.0.0.0:\u0668\u0660"},
        ["server.listen: must be host:port, for example 0.0.0.0:8080"],
        id="listen port in non-ASCII digits",
    ),
    pytest.param(
        {"server.workers": 0},
        ["server.workers: must be greater than or equal to 1"],
        id="zero workers",
    ),
    pytest.param(
        {"server.trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33"]},
        ["server.trusted_proxies: '10.0.0.0/33' is not an IP address or CIDR"],
        id="bad trusted_proxies CIDR",
    ),
    pytest.param(
        {"server.allowed_redirect_hosts": ["https://evil.com"]},
        [
            "server.allowed_redirect_hosts: 'https://evil.com' is not a host name or "
            "*.domain pattern (no port, no scheme)"
        ],
        id="redirect host with a scheme",
    ),
    # --- provider
    pytest.param(
        {"provider.kind": "github"},
        ["provider.kind: must be one of huggingface, oidc"],
        id="unknown provider kind",
    ),
    pytest.param(
        {"provider.scopes": ["profile", "email"]},
        ["provider.scopes: must include openid (the gateway verifies an ID token)"],
        id="scopes without openid",
    ),
    pytest.param(
        {"provider.issuer": "huggingface.co"},
        ["provider.issuer: must be an absolute http:// or https:// URL, not 'huggingface.co'"],
        id="issuer without scheme",
    ),
    # --- session
    pytest.param(
        {"session.secret": "too-short"},
        ["session.secret: must be at least 32 bytes (one is 9)"],
        id="secret shorter than 32 bytes",
    ),
    pytest.param(
        {"session.secret": [SECRET, "too-short"]},
        ["session.secret: must be at least 32 bytes (one is 9)"],
        id="list of secrets with a short one",
    ),
    pytest.param(
        {"session.secret": []},
        ["session.secret: at least one secret is required"],
        id="empty list of secrets",
    ),
    pytest.param(
        {"session.cookie_samesite": "none", "server.public_url": "http://tools.example.com"},
        [
            "session.cookie_samesite: none needs an https public_url (browsers require "
            "Secure), or an http one on localhost or 127.0.0.1 (a secure context)"
        ],
        id="samesite none over http",
    ),
    pytest.param(
        {"session.cookie_samesite": "None"},
        ["session.cookie_samesite: must be one of lax, strict, none"],
        id="samesite with capital",
    ),
    pytest.param(
        {"session.store": "redis"},
        ["session.store: redis needs redis_url, redis_sentinel or redis_cluster"],
        id="redis store without location",
    ),
    pytest.param(
        {"server.workers": 4},
        [
            "session.store: the memory store is for a single process; "
            "use store: redis with workers > 1",
            "identity.assertion.signing_key_file: workers > 1 needs a shared signing key "
            "(each process would otherwise sign with a key of its own)",
        ],
        id="memory store with several workers",
    ),
    pytest.param(
        {**REDIS, "session.redis_sentinel": SENTINEL, "session.redis_cluster": True},
        ["session.redis_sentinel: redis_sentinel and redis_cluster are mutually exclusive"],
        id="sentinel and cluster",
    ),
    pytest.param(
        {"session.store": "redis", "session.redis_cluster": True},
        ["session.redis_cluster: needs redis_url pointing at one cluster node"],
        id="cluster without a node",
    ),
    pytest.param(
        {"session.redis_url": "http://127.0.0.1:6379"},
        ["session.redis_url: must start with redis://, rediss:// or unix://"],
        id="redis_url with an http scheme",
    ),
    pytest.param(
        {"session.cookie_name": "__Host-sid"},
        ["session.cookie_name: must be a cookie name token (letters, digits, - and _)"],
        id="cookie name with a reserved prefix",
    ),
    pytest.param(
        {"session.cookie_domain": "localhost"},
        ["session.cookie_domain: must be a domain such as .example.com"],
        id="cookie domain without a dot",
    ),
    # --- identity headers
    pytest.param(
        {"identity": {"headers": {"X-User": "{login}"}}},
        [
            "identity.headers: X-User: unknown field {login}; "
            "use one of sub, username, name, email, orgs, org_roles, picture, route"
        ],
        id="header template unknown field",
    ),
    pytest.param(
        {"identity": {"headers": {"X-User": "{username!r}"}}},
        ["identity.headers: X-User: {username}: format specs and conversions are not supported"],
        id="header template with a conversion",
    ),
    pytest.param(
        {"identity": {"headers": {"X User": "{username}"}}},
        ["identity.headers: 'X User' is not a valid header name"],
        id="header name with a space",
    ),
    pytest.param(
        {"identity": {"headers": {"Host": "{username}"}}},
        ["identity.headers: Host cannot be set by the gateway"],
        id="reserved header Host",
    ),
    pytest.param(
        {"identity": {"headers": {"x-forwarded-for": "{username}"}}},
        ["identity.headers: x-forwarded-for cannot be set by the gateway"],
        id="reserved header in lower case",
    ),
    pytest.param(
        {"identity": {"headers": {"X-User": "{username}", "x-user": "{sub}"}}},
        ["identity.headers: x-user is listed twice (also as X-User)"],
        id="header listed twice",
    ),
    pytest.param(
        {"identity": {"assertion": {"header": "Authorization"}}},
        ["identity.assertion.header: Authorization cannot be set by the gateway"],
        id="assertion header reserved",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), MISTAKES)
def test_each_mistake_is_reported_as_path_and_reason(
    changes: dict[str, Any], expected: list[str]
) -> None:
    """A configuration with one mistake fails with exactly that one `path: reason` line."""
    assert list(_problems(_apply(minimal_raw_config(), changes))) == expected


def test_the_minimal_configuration_is_valid_and_takes_the_documented_defaults() -> None:
    """Everything but public_url, client_id, secret and one route has a default."""
    config = parse_config(minimal_raw_config())
    assert config.server.listen == "0.0.0.0:8080"
    assert config.server.trusted_proxies == ()
    assert config.server.workers == 1
    assert config.session.store == "memory"
    assert config.session.cookie_samesite == "lax"
    assert (config.session.idle_timeout, config.session.max_lifetime) == (8 * 3600, 7 * 86400)
    assert config.session.revalidate_after == 300
    assert config.provider.scopes == ("openid", "profile", "email", "read-memberships")
    assert config.identity.assertion.ttl == 60
    assert config.routes[0].path == "/"
    assert config.policy_for(config.routes[0]) is BUILTIN_POLICIES["authenticated"]


VALID = [
    pytest.param({}, id="minimal"),
    pytest.param({"routes[0].host": "tools.example.com"}, id="route on the public host"),
    pytest.param({"routes[0].host": "TOOLS.example.com"}, id="route host in capitals"),
    pytest.param(
        {"session.cookie_domain": ".example.com", "routes[0].host": "*.example.com"},
        id="wildcard host under cookie_domain",
    ),
    pytest.param(
        {"session.cookie_domain": "example.com", "routes[0].host": "grafana.example.com"},
        id="cookie_domain without its leading dot",
    ),
    pytest.param(
        {"session.cookie_domain": ".example.com", "routes[0].host": "example.com"},
        id="the cookie domain itself",
    ),
    pytest.param({"session.secret": [SECRET, SECRET + "-old"]}, id="rotating secrets"),
    pytest.param({"policy_files": None}, id="policy_files left empty"),
    pytest.param({"policy_files": "policies/*.yaml"}, id="policy_files as one glob"),
    pytest.param({"server.trusted_proxies": "10.0.0.0/8"}, id="one trusted proxy as a string"),
    pytest.param({"server.trusted_proxies": ["10.0.0.1", "fd00::/8"]}, id="IPv4 and IPv6"),
    pytest.param({"server.public_url": "http://localhost:8080"}, id="http public_url"),
    pytest.param({"session.cookie_samesite": "none"}, id="samesite none over https"),
    pytest.param(
        {**REDIS, "server.workers": 4, "identity.assertion.signing_key_file": "/keys/gw.pem"},
        id="redis store with several workers and a shared key",
    ),
    pytest.param(
        {"session.store": "redis", "session.redis_sentinel": SENTINEL}, id="redis sentinel"
    ),
    pytest.param(
        {**REDIS, "session.redis_cluster": True},
        id="redis cluster",
    ),
    pytest.param({"session.redis_url": "unix:///run/redis.sock"}, id="redis over a unix socket"),
    pytest.param({"routes[0].upstream": "unix:/run/app.sock"}, id="unix socket upstream"),
    pytest.param({"routes[0].read_timeout": 0}, id="no read timeout"),
    pytest.param({"routes[0].policy": "public"}, id="built-in public policy"),
    pytest.param({"routes[0].policy": {"allow": {"org": "acme"}}}, id="one rule without a list"),
    pytest.param(
        {"policies": {"staff": {"allow": [{"user": "alice"}]}}, "routes[0].policy": "staff"},
        id="named policy",
    ),
    pytest.param(
        {"identity": {"headers": {"X-Who": "user={username} route={route}"}}},
        id="header template with text around fields",
    ),
    pytest.param({"identity": {"headers": {}}}, id="no identity headers"),
]


@pytest.mark.parametrize("changes", VALID)
def test_valid_configurations_parse(changes: dict[str, Any]) -> None:
    """Each of these variations is accepted."""
    assert isinstance(parse_config(_apply(minimal_raw_config(), changes)), GatewayConfig)


def test_three_different_mistakes_are_reported_together() -> None:
    """One ConfigError lists every problem, so a user fixes them in one round."""
    raw = _apply(
        minimal_raw_config(),
        {
            "server.workers": "many",
            "session.idle_timeout": "soon",
            "routes[0].policy": "nobody-defined-this",
        },
    )
    assert sorted(_problems(raw)) == [
        "routes[0].policy: unknown policy 'nobody-defined-this' (known: authenticated, public)",
        "server.workers: must be an integer",
        "session.idle_timeout: must be a duration like 30s, 5m, 8h, 7d or a number of seconds",
    ]


def test_a_route_with_a_mistake_still_has_its_policy_name_checked() -> None:
    """A broken route does not hide that it names a policy that does not exist."""
    raw = _apply(minimal_raw_config(), {"routes[0].upstream": "nope", "routes[0].policy": "x"})
    assert set(_problems(raw)) == {
        "routes[0].upstream: upstream 'nope' has no http:// or https:// scheme",
        "routes[0].policy: unknown policy 'x' (known: authenticated, public)",
    }


def test_the_error_message_lists_every_problem_on_its_own_line() -> None:
    """str(ConfigError) starts with a summary and indents one problem per line."""
    raw = _apply(minimal_raw_config(), {"bogus": 1, "server.bogus": 2})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert str(caught.value) == (
        "invalid configuration:\n  bogus: unknown key\n  server.bogus: unknown key"
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param(["server"], id="list"),
        pytest.param("server: x", id="string"),
    ],
)
def test_a_document_that_is_not_a_mapping_is_refused(raw: Any) -> None:
    """The top level must be a mapping of sections."""
    assert _problems(raw) == ("(root): must be a mapping of sections (server, provider, ...)",)


def test_numeric_policy_names_do_not_crash_the_checks() -> None:
    """YAML reads `1:` as a number; the policy list in messages still renders."""
    raw = _apply(
        minimal_raw_config(),
        {"policies": {1: {"allow": [{"user": "a"}]}}, "routes[0].policy": "missing"},
    )
    assert _problems(raw) == (
        "routes[0].policy: unknown policy 'missing' (known: 1, authenticated, public)",
    )


_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=6)
)
_VALUES = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 2), inner, max_size=3)
    ),
    max_leaves=6,
)
_PLACES = [
    "server",
    "server.public_url",
    "server.workers",
    "server.trusted_proxies",
    "provider",
    "provider.scopes",
    "provider.client_secret",
    "session",
    "session.secret",
    "session.idle_timeout",
    "session.redis_sentinel",
    "session.cookie_domain",
    "identity.headers",
    "identity.assertion",
    "policy_files",
    "policies",
    "policies.p",
    "policies.p.allow",
    "policies.p.allow[0]",
    "policies.p.deny",
    "routes",
    "routes[0]",
    "routes[0].name",
    "routes[0].host",
    "routes[0].path",
    "routes[0].policy",
    "routes[0].public_paths",
    "routes[0].upstream",
]


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(place=st.sampled_from(_PLACES), value=_VALUES)
def test_any_value_anywhere_gives_a_config_error_or_a_config(place: str, value: Any) -> None:
    """Whatever YAML holds at any key, parse_config answers with a config or ConfigError."""
    raw = minimal_raw_config(
        policies={"p": {"allow": [{"user": "a"}]}}, identity={"headers": {}, "assertion": {}}
    )
    try:
        parse_config(_apply(raw, {place: value}))
    except ConfigError as exc:
        assert exc.problems
        assert all(": " in problem for problem in exc.problems)


# --------------------------------------------------------------------------- secrets

VISIBLE_SECRET = "VISIBLE-SECRET-0123456789-abcdefghijklmnop"
SHORT_SECRET = "VISIBLE-SHORT"


def _config_with_secrets() -> dict[str, Any]:
    return minimal_raw_config(
        provider={"client_secret": VISIBLE_SECRET},
        session={
            "store": "redis",
            "secret": [VISIBLE_SECRET, SECRET],
            "redis_url": f"redis://:{VISIBLE_SECRET}@127.0.0.1:6379/0",
            "redis_sentinel": {**SENTINEL, "password": VISIBLE_SECRET},
        },
    )


def test_secrets_never_appear_in_repr_str_or_redacted_output() -> None:
    """client_secret, session secrets, the redis URL and the sentinel password are masked."""
    config = parse_config(_config_with_secrets())
    redacted = config.redacted()
    for text in (repr(config), str(config), json.dumps(redacted), config.model_dump_json()):
        assert VISIBLE_SECRET not in text
    assert redacted["session"]["secret"] == ["**********", "**********"]
    assert redacted["provider"]["client_secret"] == "**********"
    assert config.session.secret[0].get_secret_value() == VISIBLE_SECRET


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"session.secret": SHORT_SECRET}, id="secret too short"),
        pytest.param({"session.secret": [VISIBLE_SECRET, SHORT_SECRET]}, id="one of two short"),
        pytest.param({"session.secret": {"value": VISIBLE_SECRET}}, id="secret of the wrong type"),
        pytest.param(
            {"session.redis_url": f"http://:{VISIBLE_SECRET}@x"}, id="redis_url wrong scheme"
        ),
        pytest.param({"provider.client_secret": [VISIBLE_SECRET]}, id="client_secret a list"),
        pytest.param({"session.secrett": VISIBLE_SECRET}, id="secret under a misspelt key"),
        pytest.param({"server.bogus": 1}, id="an unrelated mistake"),
    ],
)
def test_secrets_never_appear_in_config_errors(changes: dict[str, Any]) -> None:
    """Error messages name the key and the problem, never the secret value."""
    raw = _apply(_config_with_secrets(), changes)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    text = str(caught.value) + repr(caught.value)
    assert VISIBLE_SECRET not in text
    assert SHORT_SECRET not in text


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("30s", 30, id="seconds"),
        pytest.param("5m", 300, id="minutes"),
        pytest.param("8h", 8 * 3600, id="hours"),
        pytest.param("7d", 7 * 86400, id="days"),
        pytest.param("0s", 0, id="zero with unit"),
        pytest.param(0, 0, id="zero"),
        pytest.param(90, 90, id="integer seconds"),
        pytest.param("90", 90, id="integer seconds as a string (from ${VAR})"),
        pytest.param("007m", 420, id="leading zeros"),
    ],
)
def test_parse_duration_reads_units_and_integers(value: Any, seconds: int) -> None:
    """Durations are 30s, 5m, 8h, 7d or a non-negative number of seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1.5h", id="fraction"),
        pytest.param("5 s", id="space before unit"),
        pytest.param(" 5s", id="leading space"),
        pytest.param("5S", id="capital unit"),
        pytest.param("5w", id="weeks"),
        pytest.param("1h30m", id="compound"),
        pytest.param("s", id="unit only"),
        pytest.param("", id="empty"),
        pytest.param("-1", id="negative string"),
        pytest.param("\u0661\u0662", id="non-ASCII digits"),
        pytest.param("\u0661\u0662s", id="non-ASCII digits with unit"),
        pytest.param("\u00b2", id="superscript digit"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="boolean"),
        pytest.param(None, id="none"),
        pytest.param([30], id="list"),
    ],
)
def test_parse_duration_refuses_everything_else(value: Any) -> None:
    """Anything else is a ValueError with the accepted forms in its message."""
    with pytest.raises(ValueError, match="must be a duration like 30s, 5m, 8h, 7d"):
        parse_duration(value)


def test_parse_duration_refuses_negative_integers() -> None:
    """A negative number of seconds is refused with its own message."""
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(-1)


# --------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        pytest.param("${VAR}", {"VAR": "x"}, "x", id="variable"),
        pytest.param("a-${VAR}-b", {"VAR": "x"}, "a-x-b", id="inside text"),
        pytest.param("${A}${B}", {"A": "1", "B": "2"}, "12", id="two variables"),
        pytest.param("${VAR}", {"VAR": ""}, "", id="set but empty"),
        pytest.param("${VAR:-dflt}", {}, "dflt", id="default when unset"),
        pytest.param("${VAR:-dflt}", {"VAR": ""}, "dflt", id="default when empty"),
        pytest.param("${VAR:-dflt}", {"VAR": "x"}, "x", id="default not used when set"),
        pytest.param("${VAR:-}", {}, "", id="empty default"),
        pytest.param("${VAR:-a:b/c}", {}, "a:b/c", id="default with punctuation"),
        pytest.param("$$", {}, "$", id="escaped dollar"),
        pytest.param("$${VAR}", {"VAR": "x"}, "${VAR}", id="escaped variable"),
        pytest.param("$$$${VAR}", {"VAR": "x"}, "$${VAR}", id="two escaped dollars"),
        pytest.param("$$${VAR}", {"VAR": "x"}, "$x", id="escaped dollar then variable"),
        pytest.param("pa$word", {}, "pa$word", id="lone dollar"),
        pytest.param("$VAR", {"VAR": "x"}, "$VAR", id="no braces"),
        pytest.param("${ VAR }", {"VAR": "x"}, "${ VAR }", id="spaces in braces"),
        pytest.param("${VAR", {"VAR": "x"}, "${VAR", id="unclosed"),
        pytest.param("${VAR}", {"VAR": "${OTHER}", "OTHER": "y"}, "${OTHER}", id="not recursive"),
        pytest.param("plain", {}, "plain", id="no dollar"),
    ],
)
def test_interpolate_replaces_variables_in_strings(
    text: str, environ: dict[str, str], expected: str
) -> None:
    """${VAR}, ${VAR:-default} and $$ are read once; nothing else changes."""
    problems: list[str] = []
    assert interpolate(text, environ, "key", problems) == expected
    assert problems == []


def test_interpolate_walks_lists_and_mappings_but_not_keys() -> None:
    """String values at any depth are interpolated; keys and non-strings stay as written."""
    raw = {
        "${KEY}": "${VAL}",
        "nested": {"list": ["${VAL}", 5, True, None, {"deep": "${VAL}"}]},
        "number": 8080,
    }
    problems: list[str] = []
    assert interpolate(raw, {"KEY": "k", "VAL": "v"}, "", problems) == {
        "${KEY}": "v",
        "nested": {"list": ["v", 5, True, None, {"deep": "v"}]},
        "number": 8080,
    }
    assert problems == []


def test_interpolate_names_the_missing_variable_and_the_key() -> None:
    """An unset variable without a default is reported with its name and where it is."""
    problems: list[str] = []
    raw = {"provider": {"client_id": "${CID}"}, "routes": [{"upstream": "http://${HOST}:1"}]}
    interpolate(raw, {}, "", problems)
    assert problems == [
        "provider.client_id: environment variable CID is not set",
        "routes[0].upstream: environment variable HOST is not set",
    ]


# --------------------------------------------------------------------------- load_config


def _write_config(tmp_path: Path, raw: dict[str, Any], name: str = "gateway.yaml") -> Path:
    return write_yaml(tmp_path / name, raw)


def _load_problems(path: Path, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def test_load_config_interpolates_from_the_given_environment(tmp_path: Path) -> None:
    """Environment values fill ${VAR}s before validation, numbers and durations included."""
    raw = minimal_raw_config(
        server={"listen": "0.0.0.0:${PORT:-8080}", "workers": "${WORKERS:-1}"},
        provider={"client_id": "${OAUTH_CLIENT_ID}"},
        session={
            "secret": "${GATEWAY_SECRET}",
            "idle_timeout": "${IDLE:-8h}",
            "max_lifetime": "${MAX_LIFETIME}",
        },
    )
    path = _write_config(tmp_path, raw)
    env = {"OAUTH_CLIENT_ID": "from-env", "GATEWAY_SECRET": SECRET, "MAX_LIFETIME": "3600"}
    config = load_config(path, env)
    assert config.server.listen == "0.0.0.0:8080"
    assert config.server.workers == 1
    assert config.provider.client_id == "from-env"
    assert config.session.secret[0].get_secret_value() == SECRET
    assert (config.session.idle_timeout, config.session.max_lifetime) == (8 * 3600, 3600)


def test_a_missing_variable_is_reported_once_without_follow_on_errors(tmp_path: Path) -> None:
    """The empty value left in its place does not add "must not be empty" or "32 bytes"."""
    raw = minimal_raw_config(
        provider={"client_id": "${OAUTH_CLIENT_ID}"}, session={"secret": "${GATEWAY_SECRET}"}
    )
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "provider.client_id: environment variable OAUTH_CLIENT_ID is not set",
        "session.secret: environment variable GATEWAY_SECRET is not set",
    )


def test_a_missing_variable_in_a_list_hides_the_follow_on_error_of_its_key(
    tmp_path: Path,
) -> None:
    """`secret: [${NEW}, ...]` with NEW unset is one problem, not also "0 bytes"."""
    raw = minimal_raw_config(session={"secret": ["${NEW_SECRET}", SECRET]})
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "session.secret[0]: environment variable NEW_SECRET is not set",
    )


def test_a_missing_variable_does_not_hide_other_problems(tmp_path: Path) -> None:
    """Only problems about the same key are dropped."""
    raw = minimal_raw_config(provider={"client_id": "${CID}"}, server={"workers": "x"})
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "provider.client_id: environment variable CID is not set",
        "server.workers: must be an integer",
    )


def test_policy_files_are_globbed_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working directory does not matter; policies from every matched file merge."""
    config_dir = tmp_path / "etc"
    write_yaml(config_dir / "policies" / "a.yaml", {"policies": {"staff": {"allow": {"org": "a"}}}})
    write_yaml(config_dir / "policies" / "b.yaml", {"policies": {"ops": {"allow": {"org": "b"}}}})
    raw = minimal_raw_config(
        policy_files=["policies/*.yaml"],
        policies={"inline": {"allow": [{"user": "alice"}]}},
        routes=[{"name": "app", "upstream": "http://127.0.0.1:1", "policy": "ops"}],
    )
    path = _write_config(config_dir, raw)
    monkeypatch.chdir(tmp_path)
    config = load_config(path, {})
    assert sorted(config.policies) == ["inline", "ops", "staff"]
    assert config.policy_files == ("policies/*.yaml",)
    assert isinstance(config.policy_for(config.routes[0]), Policy)


def test_a_policy_file_glob_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    """A typo in policy_files would silently drop policies, so it is refused."""
    raw = minimal_raw_config(policy_files=["policy/*.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "policy_files[0]: 'policy/*.yaml' matches no file",
    )


def test_duplicate_policy_names_across_files_name_both_places(tmp_path: Path) -> None:
    """The second definition is refused, naming the file that defined it first."""
    write_yaml(tmp_path / "p" / "a.yaml", {"policies": {"staff": {"allow": {"org": "a"}}}})
    write_yaml(tmp_path / "p" / "b.yaml", {"policies": {"staff": {"allow": {"org": "b"}}}})
    raw = minimal_raw_config(policy_files=["p/*.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "p/b.yaml: policies.staff: already defined in p/a.yaml",
    )


def test_a_duplicate_policy_does_not_hide_other_mistakes_in_the_same_file(
    tmp_path: Path,
) -> None:
    """Only follow-on complaints are dropped, never a different policy's mistake."""
    write_yaml(tmp_path / "p" / "a.yaml", {"policies": {"staff": {"allow": {"org": "a"}}}})
    write_yaml(
        tmp_path / "p" / "b.yaml",
        {"policies": {"staff": {"allow": {"org": "b"}}, "ops": {"allow": {"usr": "x"}}}},
    )
    raw = minimal_raw_config(policy_files=["p/*.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "p/b.yaml: policies.staff: already defined in p/a.yaml",
        "p/b.yaml: policies.ops.allow[0].usr: unknown key",
    )


def test_a_policy_file_may_not_redefine_an_inline_policy(tmp_path: Path) -> None:
    """Inline policies and policy files share one namespace."""
    write_yaml(tmp_path / "p.yaml", {"policies": {"staff": {"allow": {"org": "a"}}}})
    raw = minimal_raw_config(policy_files=["p.yaml"], policies={"staff": {"allow": {"org": "b"}}})
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "p.yaml: policies.staff: already defined in the main config file",
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param({"policies": {}, "routes": []}, id="routes next to policies"),
        pytest.param({"staff": {"allow": {"org": "a"}}}, id="policies without the key"),
        pytest.param(["staff"], id="a list"),
    ],
)
def test_a_policy_file_holds_only_policies(tmp_path: Path, content: Any) -> None:
    """Anything but a `policies:` mapping in a policy file is refused."""
    write_yaml(tmp_path / "p.yaml", content)
    raw = minimal_raw_config(policy_files=["p.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "p.yaml: a policy file holds only a 'policies:' mapping",
    )


def test_errors_inside_a_policy_file_are_prefixed_with_its_name(tmp_path: Path) -> None:
    """The user learns which file to open, and the path inside it."""
    write_yaml(
        tmp_path / "policies" / "staff.yaml",
        {"policies": {"staff": {"allow": [{"org": "acme", "min_role": "owner"}, {"usr": "x"}]}}},
    )
    raw = minimal_raw_config(policy_files=["policies/*.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "policies/staff.yaml: policies.staff.allow[0].min_role: "
        "must be one of read, contributor, write, admin",
        "policies/staff.yaml: policies.staff.allow[1].usr: unknown key",
    )


def test_a_missing_variable_in_a_policy_file_names_the_file(tmp_path: Path) -> None:
    """Policy files are interpolated too; the problem says in which file."""
    write_yaml(tmp_path / "p.yaml", {"policies": {"staff": {"allow": [{"user": "${ADMIN}"}]}}})
    raw = minimal_raw_config(policy_files=["p.yaml"])
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "p.yaml: policies.staff.allow[0].user: environment variable ADMIN is not set",
    )


def test_an_invalid_policy_file_reports_line_and_column(tmp_path: Path) -> None:
    """A YAML syntax error in a policy file is located like one in the main file."""
    (tmp_path / "p.yaml").write_text("policies:\n  staff: [\n", encoding="utf-8")
    raw = minimal_raw_config(policy_files=["p.yaml"])
    (problem,) = _load_problems(_write_config(tmp_path, raw))
    assert problem.startswith(f"{tmp_path / 'p.yaml'}: ")
    assert re.search(r"\(line \d+, column \d+\)$", problem)


def test_secret_files_are_read_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    """client_secret_file, secret_file (one or a list) and redis_url_file replace their keys."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "client").write_text("client-secret-from-file\n", encoding="utf-8")
    (tmp_path / "secrets" / "session").write_text(f"  {SECRET}\n\n", encoding="utf-8")
    (tmp_path / "secrets" / "old").write_text(SECRET + "-old\n", encoding="utf-8")
    (tmp_path / "secrets" / "redis").write_text("redis://:pw@10.0.0.1:6379/1\n", encoding="utf-8")
    raw = minimal_raw_config()
    del raw["provider"]["client_secret"], raw["session"]["secret"]
    raw["provider"]["client_secret_file"] = "secrets/client"
    raw["session"].update(
        store="redis",
        secret_file=["secrets/session", "secrets/old"],
        redis_url_file="secrets/redis",
    )
    config = load_config(_write_config(tmp_path, raw), {})
    assert config.provider.client_secret is not None
    assert config.provider.client_secret.get_secret_value() == "client-secret-from-file"
    assert [s.get_secret_value() for s in config.session.secret] == [SECRET, SECRET + "-old"]
    assert config.session.redis_url is not None
    assert config.session.redis_url.get_secret_value() == "redis://:pw@10.0.0.1:6379/1"


def test_a_secret_and_its_file_variant_together_are_an_error(tmp_path: Path) -> None:
    """Which one wins would be a guess, so both is refused."""
    (tmp_path / "s").write_text(SECRET, encoding="utf-8")
    raw = minimal_raw_config(session={"secret_file": "s"})
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "session.secret_file: set either secret or secret_file, not both",
    )


def test_an_unreadable_secret_file_is_reported_without_follow_on_errors(tmp_path: Path) -> None:
    """The file is named with the reason; the empty secret is not also "0 bytes"."""
    raw = minimal_raw_config()
    del raw["session"]["secret"]
    raw["session"]["secret_file"] = "missing-secret"
    assert _load_problems(_write_config(tmp_path, raw)) == (
        "session.secret_file: cannot read missing-secret: No such file or directory",
    )


def test_a_missing_signing_key_file_is_an_error(tmp_path: Path) -> None:
    """signing_key_file is resolved against the config file's folder and must exist."""
    raw = minimal_raw_config(identity={"assertion": {"signing_key_file": "keys/jwt.pem"}})
    assert _load_problems(_write_config(tmp_path, raw)) == (
        f"identity.assertion.signing_key_file: {tmp_path / 'keys' / 'jwt.pem'} does not exist",
    )


def test_a_signing_key_file_is_resolved_relative_to_the_config(tmp_path: Path) -> None:
    """The stored path is absolute, so later reads do not depend on the working directory."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwt.pem").write_text("not read here", encoding="utf-8")
    raw = minimal_raw_config(identity={"assertion": {"signing_key_file": "keys/jwt.pem"}})
    config = load_config(_write_config(tmp_path, raw), {})
    assert config.identity.assertion.signing_key_file == str(tmp_path / "keys" / "jwt.pem")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("server: [1,\nprovider: 2\n", 3, 1, id="unclosed list"),
        pytest.param("server:\n  a: 1\n b: 2\n", 3, 2, id="bad indentation"),
        pytest.param("server:\n\tpublic_url: x\n", 2, 1, id="tab indentation"),
        pytest.param('session: {secret: "abc\n', 2, 1, id="unclosed quote"),
    ],
)
def test_invalid_yaml_reports_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    """A syntax error names the file and where in it, one based."""
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    (problem,) = _load_problems(path)
    assert problem.startswith(f"{path}: ")
    assert problem.endswith(f"(line {line}, column {column})")


def test_a_yaml_error_on_a_secret_line_does_not_show_the_secret(tmp_path: Path) -> None:
    """Syntax errors are located by line and column; the line's text is not echoed."""
    path = tmp_path / "gateway.yaml"
    path.write_text(f'session:\n  secret: "{VISIBLE_SECRET}\n', encoding="utf-8")
    (problem,) = _load_problems(path)
    assert "(line 3, column 1)" in problem
    assert VISIBLE_SECRET not in problem


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"\xff\xfe\x00garbage", "is not UTF-8 text", id="binary"),
        pytest.param(
            b"server: \x00\n",
            "special characters are not allowed (#x0000 at character 9)",
            id="NUL byte",
        ),
        pytest.param(
            b"- server\n- provider\n",
            "must be a mapping of sections (server, provider, ...)",
            id="a list",
        ),
        pytest.param(
            b"just a string\n",
            "must be a mapping of sections (server, provider, ...)",
            id="a string",
        ),
    ],
)
def test_unusable_files_are_one_problem_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    """Files that are not a YAML mapping fail with one problem, never a traceback."""
    path = tmp_path / "gateway.yaml"
    path.write_bytes(content)
    assert _load_problems(path) == (f"{path}: {reason}",)


def test_an_empty_file_reports_every_required_section(tmp_path: Path) -> None:
    """An empty document is an empty mapping: each missing section is named."""
    path = tmp_path / "gateway.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert _load_problems(path) == (
        "server: is required",
        "provider: is required",
        "session: is required",
        "routes: at least one route is required",
    )


@pytest.mark.parametrize(
    "name",
    [pytest.param("missing.yaml", id="missing file"), pytest.param(".", id="a directory")],
)
def test_a_file_that_cannot_be_read_is_one_problem(tmp_path: Path, name: str) -> None:
    """The path and the operating system's reason are given."""
    path = tmp_path / name
    (problem,) = _load_problems(path)
    assert problem.startswith(f"{path}: cannot read: ")


# --------------------------------------------------------------------------- JSON Schema


def test_the_json_schema_is_json_with_every_section() -> None:
    """`hf-gateway schema` output round-trips through JSON and names each section."""
    schema = json.loads(json.dumps(config_json_schema()))
    assert schema["title"] == "hf-gateway configuration"
    assert set(schema["properties"]) == {
        "server",
        "provider",
        "session",
        "identity",
        "policy_files",
        "policies",
        "routes",
        "logging",
        "branding",
    }
    assert set(schema["required"]) == {"server", "provider", "session", "routes"}


def test_the_json_schema_forbids_unknown_keys_everywhere() -> None:
    """Editors flag typos: every object in the schema sets additionalProperties false."""
    schema = config_json_schema()
    assert schema["additionalProperties"] is False
    objects = {name: d for name, d in schema["$defs"].items() if "properties" in d}
    assert {"ServerConfig", "SessionConfig", "RouteConfig", "Policy", "Rule"} <= set(objects)
    assert {name: d.get("additionalProperties") for name, d in objects.items()} == dict.fromkeys(
        objects, False
    )


def test_the_json_schema_uses_yaml_names_for_combinators() -> None:
    """Rules are written with any / all / not, so the schema says so."""
    rule = config_json_schema()["$defs"]["Rule"]["properties"]
    assert {"any", "all", "not"} <= set(rule)
    assert not {"any_", "all_", "not_"} & set(rule)


@pytest.mark.parametrize(
    ("definition", "key"),
    [
        pytest.param("SessionConfig", "secret", id="secret: ${GATEWAY_SECRET}"),
        pytest.param("ServerConfig", "trusted_proxies", id="trusted_proxies: 10.0.0.0/8"),
        pytest.param("Rule", "user", id="user: alice"),
        pytest.param("Policy", "allow", id="allow: {org: acme}"),
    ],
)
def test_the_json_schema_accepts_the_one_item_forms(definition: str, key: str) -> None:
    """Keys that take one item or a list say so, or editors flag documented configs."""
    prop = config_json_schema()["$defs"][definition]["properties"][key]
    kinds = [option.get("type", option.get("$ref")) for option in prop["anyOf"]]
    assert "array" in kinds
    assert len([kind for kind in kinds if kind not in ("array", "null")]) == 1


def test_the_schema_knows_the_secret_file_variants() -> None:
    """Editors accept client_secret_file, secret_file and redis_url_file, and do not demand
    session.secret when secret_file stands in for it."""
    defs = config_json_schema()["$defs"]
    assert "client_secret_file" in defs["ProviderConfig"]["properties"]
    assert {"secret_file", "redis_url_file"} <= set(defs["SessionConfig"]["properties"])
    assert "secret" not in defs["SessionConfig"].get("required", [])


def test_hf_name_checks_apply_to_hugging_face_only() -> None:
    """An email as `user` is refused for Hugging Face (usernames cannot hold '@'), in a named
    policy and in a route's inline one; a generic OIDC provider's usernames may be emails."""
    policy = {"allow": {"user": "alice@example.com"}}
    raw = {
        "server": {"public_url": "http://127.0.0.1:8080"},
        "provider": {"client_id": "x", "client_secret": "y"},
        "session": {"secret": "s" * 32},
        "policies": {"p": policy},
        "routes": [
            {"name": "a", "upstream": "http://127.0.0.1:9000", "policy": policy},
            {"name": "b", "path": "/b", "upstream": "http://127.0.0.1:9000", "policy": "p"},
        ],
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert sorted(p.split(":")[0] for p in refused.value.problems) == [
        "policies.p.allow[0].user",
        "routes[0].policy.allow[0].user",
    ]
    oidc = {**raw["provider"], "kind": "oidc", "issuer": "https://idp.example.com"}
    config = parse_config({**raw, "provider": oidc})
    assert config.policies["p"].allow[0].user == ("alice@example.com",)
