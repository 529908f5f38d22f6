"""parse_config: an already-loaded mapping in, a GatewayConfig or one ConfigError with
every problem as ``path.to.key: reason`` out. Pure: no files, no environment."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.config.branding import BrandingConfig
from gateway.config.cimd import AUTO_CLIENT_ID, public_url_problem
from gateway.config.models import (
    GatewayConfig,
    IdentityConfig,
    LoggingConfig,
    ProviderConfig,
    RouteConfig,
    ServerConfig,
    SessionConfig,
)
from gateway.errors import ConfigError
from gateway.headers import canonical
from gateway.policy import BUILTIN_POLICIES, Policy

_SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "provider": ProviderConfig,
    "session": SessionConfig,
    "identity": IdentityConfig,
    "logging": LoggingConfig,
    "branding": BrandingConfig,
}
_OPTIONAL_SECTIONS = frozenset({"identity", "logging", "branding"})
_TOP_KEYS = frozenset((*_SECTIONS, "policy_files", "policies", "routes"))

M = TypeVar("M", bound=BaseModel)


def parse_config(raw: Any, *, policy_sources: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate an already-loaded mapping. Pure: no files, no environment.

    Sections and list items are validated one by one so a mistake in one never hides
    another; cross-checks run on whatever validated. ``policy_sources`` names the file
    each policy came from, for error messages.
    """
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ConfigError(["(root): must be a mapping of sections (server, provider, ...)"])
    for key in raw:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key")
    sections: dict[str, Any] = {}
    for key, model in _SECTIONS.items():
        if key in raw or key not in _OPTIONAL_SECTIONS:
            sections[key] = _validate(model, raw.get(key), key, problems)
    sources = policy_sources or {}
    # Rule checks of HF names and scopes apply to Hugging Face only: a generic OIDC
    # provider's usernames may be email addresses and its groups may hold '/'.
    context = {"provider_kind": _provider_kind(raw.get("provider"), sections.get("provider"))}
    policies = _parse_policies(raw.get("policies"), sources, problems, context)
    routes = _parse_routes(raw.get("routes"), problems, context)
    policy_files = _parse_policy_files(raw.get("policy_files"), problems)
    problems.extend(_check_route_names(raw.get("routes"), raw.get("policies")))
    problems.extend(_cross_checks(sections, routes))
    if problems:
        raise ConfigError(problems)
    return GatewayConfig.model_validate(
        {
            **{k: v for k, v in sections.items() if v is not None},
            "policy_files": policy_files,
            "policies": policies,
            "routes": routes,
        }
    )


def _parse_policy_files(raw: Any, problems: list[str]) -> tuple[str, ...]:
    # Checked here rather than left to GatewayConfig.model_validate, which would raise a
    # bare ValidationError (a traceback in the CLI) for `policy_files:` left empty.
    if raw is None:
        return ()
    globs = [raw] if isinstance(raw, str) else raw
    if not isinstance(globs, list | tuple) or not all(isinstance(g, str) for g in globs):
        problems.append("policy_files: must be a list of globs")
        return ()
    return tuple(globs)


def _provider_kind(raw: Any, provider: Any) -> str:
    """The provider kind rules are checked for (huggingface unless the section says oidc)."""
    kind = getattr(provider, "kind", None)
    if kind is None and isinstance(raw, Mapping):
        kind = raw.get("kind")
    return kind if isinstance(kind, str) else "huggingface"


def _parse_policies(
    raw: Any, sources: Mapping[str, str], problems: list[str], context: dict[str, Any]
) -> dict[str, Policy]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append("policies: must be a mapping of policy names to policies")
        return {}
    policies: dict[str, Policy] = {}
    for name, value in raw.items():
        where = f"{sources[name]}: " if name in sources else ""
        if name in BUILTIN_POLICIES:
            problems.append(f"{where}policies.{name}: '{name}' is a built-in policy name")
            continue
        policy = _validate(
            Policy, value, f"policies.{name}", problems, prefix=where, context=context
        )
        if policy is not None:
            policies[str(name)] = policy
    return policies


def _parse_routes(raw: Any, problems: list[str], context: dict[str, Any]) -> list[RouteConfig]:
    if raw is None or (isinstance(raw, list) and not raw):
        problems.append("routes: at least one route is required")
        return []
    if not isinstance(raw, list):
        problems.append("routes: must be a list of routes")
        return []
    routes = [
        _validate(RouteConfig, item, f"routes[{i}]", problems, context=context)
        for i, item in enumerate(raw)
    ]
    return [r for r in routes if r is not None]


def _validate(
    model: type[M],
    value: Any,
    path: str,
    problems: list[str],
    prefix: str = "",
    context: dict[str, Any] | None = None,
) -> M | None:
    if value is None:
        problems.append(f"{prefix}{path}: is required")
        return None
    try:
        return model.model_validate(value, context=context)
    except ValidationError as exc:
        problems.extend(prefix + line for line in format_validation_error(exc, path))
        return None


def _cross_checks(sections: Mapping[str, Any], routes: list[RouteConfig]) -> Iterator[str]:
    server: ServerConfig | None = sections.get("server")
    session: SessionConfig | None = sections.get("session")
    identity: IdentityConfig | None = sections.get("identity", IdentityConfig())
    if session is not None:
        yield from _check_session(session, server)
    if server is not None:
        yield from _check_hosts(server, session, routes)
    provider: ProviderConfig | None = sections.get("provider")
    if server is not None and provider is not None and provider.client_id == AUTO_CLIENT_ID:
        if problem := public_url_problem(server.public_url):
            yield f"server.public_url: {problem}"
    yield from _check_shadowed_routes(routes)
    if identity is not None:
        yield from _check_route_headers(identity, routes)
    if server is not None and identity is not None:
        if server.workers > 1 and identity.assertion.signing_key_file is None:
            yield (
                "identity.assertion.signing_key_file: workers > 1 needs a shared signing key "
                "(each process would otherwise sign with a key of its own)"
            )


def _check_shadowed_routes(routes: list[RouteConfig]) -> Iterator[str]:
    """A route with the host and path of an earlier one is never chosen (config order
    decides among equals), unless only it ignores letter case."""
    for index, route in enumerate(routes):
        host = (route.host or "").rstrip(".")
        path = route.path.rstrip("/") or "/"
        for first, earlier in enumerate(routes[:index]):
            if (earlier.host or "").rstrip(".") != host:
                continue
            earlier_path = earlier.path.rstrip("/") or "/"
            if (
                earlier_path == path
                if not earlier.case_insensitive
                else (earlier_path.lower() == path.lower())
            ):
                if route.case_insensitive and not earlier.case_insensitive:
                    continue  # it still serves the other spellings
                where = f"host {route.host}" if route.host else "any host"
                yield (
                    f"routes[{index}].path: {route.path} on {where} is already served by "
                    f"routes[{first}] ({earlier.name}), so this route can never be reached: "
                    "give it another path or host, or remove it"
                )
                break


def _check_route_headers(identity: IdentityConfig, routes: list[RouteConfig]) -> Iterator[str]:
    """set_headers / remove_headers must not touch the headers identity configures."""
    owned = {canonical(name): f"identity.headers ({name})" for name in identity.headers}
    owned[canonical(identity.assertion.header)] = "identity.assertion.header"
    for index, route in enumerate(routes):
        for name in route.set_headers:
            if canonical(name) in owned:
                yield (
                    f"routes[{index}].set_headers.{name}: is set by {owned[canonical(name)]}; "
                    "the gateway's identity headers cannot be overridden: use another name"
                )
        for position, name in enumerate(route.remove_headers):
            key = canonical(name)
            hits = (
                [o for o in owned if o.startswith(key[:-1])]
                if key.endswith("*")
                else [key]
                if key in owned
                else []
            )
            if hits:
                yield (
                    f"routes[{index}].remove_headers[{position}]: {name} would remove a header "
                    f"set by {owned[hits[0]]}; identity headers cannot be removed per route"
                )


def _check_route_names(raw_routes: Any, raw_policies: Any) -> Iterator[str]:
    """Duplicate route names and unknown policy names, read from the raw routes so they
    are reported even when a route has other mistakes."""
    if not isinstance(raw_routes, list):
        return
    # str(): YAML keys may be numbers, and sorted() cannot compare int with str.
    known = sorted(
        {*BUILTIN_POLICIES, *(str(k) for k in raw_policies)}
        if isinstance(raw_policies, Mapping)
        else BUILTIN_POLICIES
    )
    seen: dict[str, int] = {}
    for index, route in enumerate(raw_routes):
        if not isinstance(route, Mapping):
            continue
        name, policy = route.get("name"), route.get("policy")
        if isinstance(name, str):
            if name in seen:
                first = seen[name]
                yield f"routes[{index}].name: duplicate route name {name!r} (also routes[{first}])"
            seen.setdefault(name, index)
        if isinstance(policy, str) and policy not in known:
            yield f"routes[{index}].policy: unknown policy {policy!r} (known: {', '.join(known)})"


def _check_session(session: SessionConfig, server: ServerConfig | None) -> Iterator[str]:
    if session.store == "redis" and not (
        session.redis_url or session.redis_sentinel or session.redis_cluster
    ):
        yield "session.store: redis needs redis_url, redis_sentinel or redis_cluster"
    if session.redis_sentinel is not None and session.redis_cluster:
        yield "session.redis_sentinel: redis_sentinel and redis_cluster are mutually exclusive"
    if session.redis_cluster and session.redis_url is None:
        yield "session.redis_cluster: needs redis_url pointing at one cluster node"
    if session.idle_timeout <= 0 or session.max_lifetime <= 0:
        yield "session.idle_timeout: idle_timeout and max_lifetime must be positive"
    if server is None:
        return
    if session.store == "memory" and server.workers > 1:
        yield (
            "session.store: the memory store is for a single process; "
            "use store: redis with workers > 1"
        )
    if session.cookie_samesite == "none" and not _secure_origin(server):
        yield (
            "session.cookie_samesite: none needs an https public_url (browsers require "
            "Secure), or an http one on localhost or 127.0.0.1 (a secure context)"
        )


def _secure_origin(server: ServerConfig) -> bool:
    """Browsers keep Secure cookies from https and from loopback http (Chromium verified,
    tests/e2e/test_spaces.py), where a Space is tried out locally."""
    return server.public_scheme == "https" or server.public_host in ("localhost", "127.0.0.1")


def _check_hosts(
    server: ServerConfig, session: SessionConfig | None, routes: list[RouteConfig]
) -> Iterator[str]:
    public_host = server.public_host
    domain = session.cookie_domain if session else None
    if domain and not (public_host == domain[1:] or public_host.endswith(domain)):
        yield (
            f"session.cookie_domain: public_url's host {public_host} is not under {domain}; "
            "browsers would refuse the session cookie set at the callback"
        )
    for index, route in enumerate(routes):
        if route.host is None:
            continue
        bare = route.host[2:] if route.host.startswith("*.") else route.host
        if route.host == public_host:
            continue
        if domain and (bare == domain[1:] or bare.endswith(domain)):
            continue
        yield (
            f"routes[{index}].host: {route.host} is neither public_url's host "
            f"({public_host}) nor under session.cookie_domain"
            + ("" if domain else " (set cookie_domain to share sign-in across subdomains)")
        )


_TYPE_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
}


def format_validation_error(exc: ValidationError, root: str) -> list[str]:
    """One ``path: reason`` line per pydantic error, in our words, never echoing values."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        path = _join_loc(root, error["loc"])
        reason = _reason(error)
        if reason.startswith("@"):
            # A model-level check about one field ("@public_paths: ...") reports at that field.
            field, _, reason = reason[1:].partition(": ")
            path = f"{path}{field}" if field.startswith("[") else f"{path}.{field}"
        lines.append(f"{path}: {reason}")
    return list(dict.fromkeys(lines))


def _join_loc(root: str, loc: tuple[int | str, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("<"):
            continue  # a union tag such as <policy-inline>, not a key the user wrote
        elif part.endswith("_") and part[:-1] in ("any", "all", "not"):
            path += "." + part[:-1]
        else:
            path += ("." if path else "") + part
    return path


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = re.findall(r"'([^']*)'", expected)
        if not options:  # Literal[True] (``authenticated: true``) has no quoted options
            return "must be " + expected.lower()
        return "must be one of " + ", ".join(options)
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return error["msg"].replace("Input should be", "must be")  # "must be >= 1"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "must be a policy name or an inline policy"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    message: str = error["msg"]
    return message.replace("Input should be", "must be").replace("Value error, ", "")
