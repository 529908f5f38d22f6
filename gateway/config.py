"""Configuration: YAML in, a frozen, validated GatewayConfig out.

``load_config(path)`` is the only function that touches the outside world: it reads the
YAML file, the environment (``${VAR}``, ``${VAR:-default}``), ``policy_files`` and the
``*_file`` secrets. ``parse_config(raw)`` is pure and checks everything, reporting every
problem at once as ``path.to.key: reason`` in a single ConfigError.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from gateway.errors import ConfigError, PathError
from gateway.policy import BUILTIN_POLICIES, OneOrMany, Policy
from gateway.routing import normalize_path, path_under

# --------------------------------------------------------------------------- value types

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢" (which int() accepts).
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """``30s``, ``5m``, ``8h``, ``7d`` or a non-negative integer of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 5m, 8h, 7d or a number of seconds")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit():  # "²".isdigit() is True too
            return int(value)
        found = _DURATION.match(value)
        if found:
            return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    raise ValueError("must be a duration like 30s, 5m, 8h, 7d or a number of seconds")


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+[smhd]$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": "30s, 5m, 8h, 7d or integer seconds",
        }
    ),
]


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        # Otherwise pydantic says "must be a list", hiding that one string is fine too.
        raise ValueError("must be a string or a list of strings")
    return value


StrTuple = Annotated[tuple[str, ...], BeforeValidator(_one_or_many), OneOrMany()]
SecretTuple = Annotated[tuple[SecretStr, ...], BeforeValidator(_one_or_many), OneOrMany()]

_MODEL = ConfigDict(frozen=True, extra="forbid")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

HEADER_FIELDS = ("sub", "username", "name", "email", "orgs", "picture", "route")
"""Identity fields header templates may use."""

# Headers an identity template must never set: they would break HTTP or the gateway itself.
_UNSETTABLE_HEADERS = frozenset(
    h.lower()
    for h in (
        "Host",
        "Cookie",
        "Set-Cookie",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Authorization",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "Forwarded",
        "X-Real-IP",
    )
)


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, for example 0.0.0.0:8080")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http:// or https:// URL, not {value!r}")
    return value.rstrip("/")


def _check_header_name(name: str) -> None:
    if not _TOKEN.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    if name.lower() in _UNSETTABLE_HEADERS:
        raise ValueError(f"{name} cannot be set by the gateway")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names used by a header template (raises ValueError if malformed)."""
    fields = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{field}}}: format specs and conversions are not supported")
        fields.append(field)
    return fields


# --------------------------------------------------------------------------- models


class ServerConfig(BaseModel):
    model_config = _MODEL

    listen: str = "0.0.0.0:8080"  # noqa: S104 - a gateway in a container listens on all interfaces
    public_url: str = Field(
        description="External origin; callback = {public_url}/_gateway/callback"
    )
    trusted_proxies: StrTuple = ()
    metrics_listen: str | None = "127.0.0.1:9090"
    workers: int = Field(default=1, ge=1, le=64)
    allowed_redirect_hosts: StrTuple = ()

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _check_listen(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str | None) -> str | None:
        return None if value is None else _check_listen(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = _check_http_url(value)
        parts = urlsplit(value)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be an origin without a path, query or fragment")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR") from None
        return value

    @field_validator("allowed_redirect_hosts")
    @classmethod
    def _redirect_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_host_pattern(h) for h in value)

    @property
    def public_scheme(self) -> str:
        return urlsplit(self.public_url).scheme

    @property
    def public_host(self) -> str:
        return urlsplit(self.public_url).hostname or ""


class ProviderConfig(BaseModel):
    model_config = _MODEL

    kind: Literal["huggingface", "oidc"] = "huggingface"
    issuer: str = "https://huggingface.co"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    scopes: StrTuple = ("openid", "profile", "email", "read-memberships")
    org_ids: StrTuple = ()
    api_url: str = "https://huggingface.co"
    groups_claim: str = "groups"

    @field_validator("issuer", "api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include openid (the gateway verifies an ID token)")
        bad = [s for s in value if not s or any(c.isspace() for c in s)]
        if bad:
            raise ValueError(f"invalid scope {bad[0]!r}")
        return value


class SentinelConfig(BaseModel):
    model_config = _MODEL

    master: str = Field(min_length=1)
    nodes: StrTuple = Field(min_length=1)
    password: SecretStr | None = None

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_listen(v) for v in value)


class SessionConfig(BaseModel):
    model_config = _MODEL

    store: Literal["redis", "memory"] = "memory"
    redis_url: SecretStr | None = None
    redis_sentinel: SentinelConfig | None = None
    redis_cluster: bool = False
    redis_prefix: str = "hfgw:"
    secret: SecretTuple = Field(description=">= 32 bytes; a list rotates: the first signs")
    cookie_name: str = "hf_gateway"
    cookie_domain: str | None = None
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    idle_timeout: Duration = 8 * 3600
    max_lifetime: Duration = 7 * 86400
    revalidate_after: Duration = 300

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if not value:
            raise ValueError("at least one secret is required")
        for secret in value:
            size = len(secret.get_secret_value().encode())
            if size < 32:
                raise ValueError(f"must be at least 32 bytes (one is {size})")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("cookie_name")
    @classmethod
    def _cookie_name(cls, value: str) -> str:
        if not _TOKEN.match(value) or value.startswith("__"):
            raise ValueError("must be a cookie name token (letters, digits, - and _)")
        return value

    @field_validator("cookie_domain")
    @classmethod
    def _cookie_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bare = value.lower().lstrip(".")
        if not _HOSTNAME.match(bare) or "." not in bare:
            raise ValueError("must be a domain such as .example.com")
        return "." + bare

    @field_validator("redis_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a non-empty string without spaces")
        return value


class AssertionConfig(BaseModel):
    model_config = _MODEL

    header: str = "X-Gateway-Assertion"
    ttl: Duration = 60
    signing_key_file: str | None = None

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        _check_header_name(value)
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: int) -> int:
        if not 1 <= value <= 3600:
            raise ValueError("must be between 1s and 1h")
        return value


DEFAULT_IDENTITY_HEADERS: dict[str, str] = {
    "X-Forwarded-User": "{username}",
    "X-Forwarded-User-Id": "{sub}",
    "X-Forwarded-Email": "{email}",
    "X-Forwarded-Name": "{name}",
    "X-Forwarded-Groups": "{orgs}",
}


class IdentityConfig(BaseModel):
    model_config = _MODEL

    headers: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_IDENTITY_HEADERS))
    assertion: AssertionConfig = Field(default_factory=AssertionConfig)
    pass_access_token: bool = False

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for name, template in value.items():
            _check_header_name(name)
            key = name.lower().replace("_", "-")  # how the gateway compares header names
            if key in seen:
                raise ValueError(f"{name} is listed twice (also as {seen[key]})")
            seen[key] = name
            try:
                fields = template_fields(template)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            unknown = [f for f in fields if f not in HEADER_FIELDS]
            if unknown:
                raise ValueError(
                    f"{name}: unknown field {{{unknown[0]}}}; use one of {', '.join(HEADER_FIELDS)}"
                )
        return value

    @model_validator(mode="after")
    def _distinct_from_assertion(self) -> IdentityConfig:
        reserved = {
            self.assertion.header.lower().replace("_", "-"): "identity.assertion.header",
            "x-forwarded-access-token": "pass_access_token",
        }
        for name in self.headers:
            owner = reserved.get(name.lower().replace("_", "-"))
            if owner:
                raise ValueError(f"@headers: {name} is already set by {owner}")
        return self


def _policy_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<policy-name>"
    # None (neither a name nor a mapping) makes pydantic report union_tag_not_found,
    # which reads "must be a policy name or an inline policy" rather than "must be a mapping".
    return "<policy-inline>" if isinstance(value, Mapping) else None


PolicyRef = Annotated[
    Annotated[str, Tag("<policy-name>")] | Annotated[Policy, Tag("<policy-inline>")],
    Discriminator(_policy_kind),
]


class RouteConfig(BaseModel):
    model_config = _MODEL

    name: str
    host: str | None = None
    path: str = "/"
    upstream: str
    strip_prefix: bool = False
    preserve_host: bool = True
    policy: PolicyRef
    public_paths: StrTuple = ()
    websockets: bool = True
    connect_timeout: Duration = 5
    read_timeout: Duration = 60
    pass_access_token: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ROUTE_NAME.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host_pattern(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_config_path(value)

    @field_validator("public_paths")
    @classmethod
    def _public_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_config_path(v) for v in value)

    @model_validator(mode="after")
    def _public_paths_inside(self) -> RouteConfig:
        for public in self.public_paths:
            if not path_under(public, self.path):
                raise ValueError(
                    f"@public_paths: {public} is outside the route's path {self.path} "
                    "and could never match"
                )
        return self

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        if value.startswith("unix:"):
            if not value[len("unix:") :].startswith("/"):
                raise ValueError("a unix socket upstream must be unix:/absolute/path.sock")
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"upstream {value!r} has no http:// or https:// scheme")
        if not parts.hostname:
            raise ValueError(f"upstream {value!r} has no host")
        if parts.query or parts.fragment:
            raise ValueError("upstream must not have a query or fragment")
        return value.rstrip("/")


def _check_host_pattern(value: str) -> str:
    host = value.lower()
    bare = host[2:] if host.startswith("*.") else host
    if not _HOSTNAME.match(bare):
        raise ValueError(f"{value!r} is not a host name or *.domain pattern (no port, no scheme)")
    return host


def _check_config_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'")
    try:
        normal = normalize_path(value)
    except PathError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    return normal.match


class GatewayConfig(BaseModel):
    """The whole, validated configuration. Build it with parse_config or load_config."""

    model_config = _MODEL

    server: ServerConfig
    provider: ProviderConfig
    session: SessionConfig
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    policy_files: StrTuple = ()
    policies: dict[str, Policy] = Field(default_factory=dict)
    routes: tuple[RouteConfig, ...] = Field(min_length=1)

    def policy_for(self, route: RouteConfig) -> Policy:
        """The policy object a route uses (named, built-in or inline)."""
        if isinstance(route.policy, Policy):
            return route.policy
        return self.policies.get(route.policy) or BUILTIN_POLICIES[route.policy]

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data with every secret masked."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the YAML file, for editors (``hf-gateway schema``)."""
    schema = GatewayConfig.model_json_schema(by_alias=True)
    schema["title"] = "hf-gateway configuration"
    return schema


# --------------------------------------------------------------------------- parsing

_SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "provider": ProviderConfig,
    "session": SessionConfig,
    "identity": IdentityConfig,
}
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
        if key in raw or key != "identity":
            sections[key] = _validate(model, raw.get(key), key, problems)
    sources = policy_sources or {}
    policies = _parse_policies(raw.get("policies"), sources, problems)
    routes = _parse_routes(raw.get("routes"), problems)
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


def _parse_policies(raw: Any, sources: Mapping[str, str], problems: list[str]) -> dict[str, Policy]:
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
        policy = _validate(Policy, value, f"policies.{name}", problems, prefix=where)
        if policy is not None:
            policies[str(name)] = policy
    return policies


def _parse_routes(raw: Any, problems: list[str]) -> list[RouteConfig]:
    if raw is None or (isinstance(raw, list) and not raw):
        problems.append("routes: at least one route is required")
        return []
    if not isinstance(raw, list):
        problems.append("routes: must be a list of routes")
        return []
    routes = [_validate(RouteConfig, item, f"routes[{i}]", problems) for i, item in enumerate(raw)]
    return [r for r in routes if r is not None]


def _validate(
    model: type[M], value: Any, path: str, problems: list[str], prefix: str = ""
) -> M | None:
    if value is None:
        problems.append(f"{prefix}{path}: is required")
        return None
    try:
        return model.model_validate(value)
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
    if server is not None and identity is not None:
        if server.workers > 1 and identity.assertion.signing_key_file is None:
            yield (
                "identity.assertion.signing_key_file: workers > 1 needs a shared signing key "
                "(each process would otherwise sign with a key of its own)"
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
    if session.cookie_samesite == "none" and server.public_scheme != "https":
        yield "session.cookie_samesite: none needs an https public_url (browsers require Secure)"


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


# --------------------------------------------------------------------------- error text

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
            path = f"{path}.{field}"
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


# --------------------------------------------------------------------------- loading (I/O)

_VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
_SECRET_FILE_KEYS = {
    "provider": ("client_secret",),
    "session": ("secret", "redis_url"),
}


def interpolate(value: Any, environ: Mapping[str, str], path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string value; ``$$`` is a dollar.

    Pure: the environment is passed in. A variable that is not set (and has no default)
    is reported as a problem naming the variable and the key.
    """
    if isinstance(value, str):
        return _interpolate_str(value, environ, path, problems)
    if isinstance(value, Mapping):
        return {
            k: interpolate(v, environ, _child(path, str(k)), problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _interpolate_str(text: str, environ: Mapping[str, str], path: str, problems: list[str]) -> str:
    def replace(found: re.Match[str]) -> str:
        if found.group(1) == "$":
            return "$"
        name, default = found.group(2), found.group(3)
        current = environ.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return current

    if "$" not in text:
        return text
    return _VAR.sub(replace, text)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a configuration file; the only place config touches files and env."""
    env = os.environ if environ is None else environ
    config_path = Path(path)
    problems: list[str] = []
    raw = _read_yaml(config_path, problems)
    if raw is None:
        raise ConfigError(problems)
    if not isinstance(raw, dict):
        raise ConfigError([f"{config_path}: must be a mapping of sections (server, provider, ...)"])
    raw = interpolate(raw, env, "", problems)
    base = config_path.parent
    sources = _merge_policy_files(raw, base, env, problems)
    _read_secret_files(raw, base, problems)
    _resolve_key_file(raw, base, problems)
    try:
        config = parse_config(raw, policy_sources=sources)
    except ConfigError as exc:
        # A key already reported (a missing variable, an unreadable file) would only
        # collect follow-on complaints about the empty value left in its place.
        labels = set(sources.values())
        problems.extend(p for p in exc.problems if not _follow_on(p, problems, labels))
    if problems:
        raise ConfigError(problems)
    return config


def _follow_on(problem: str, earlier: list[str], labels: set[str]) -> bool:
    """True when ``problem`` is about a key that one of ``earlier`` already reported.

    Keys are compared without the reason; a policy file's label (``policies/a.yaml``)
    is part of the key. An earlier problem also covers its key without list indices
    (``session.secret[0]`` covers ``session.secret``) and, when a ``*_file`` could not be
    read, the key the file stands for (``session.secret_file`` covers ``session.secret``).
    """

    def key(text: str) -> str:
        head, _, rest = text.partition(": ")
        return f"{head}: {rest.partition(': ')[0]}" if head in labels else head

    covered: set[str] = set()
    for text in earlier:
        found = key(text)
        covered.update((found, re.sub(r"(\[\d+\])+$", "", found)))
        if ": cannot read " in text and found.endswith("_file"):
            covered.add(found.removesuffix("_file"))
    return key(problem) in covered


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: is not UTF-8 text")
        return None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, yaml.reader.ReaderError):  # NUL and other unreadable characters
            problem = f"{exc.reason} (#x{exc.character:04x} at character {exc.position + 1})"
        problems.append(f"{path}: {problem}{where}")
        return None


def _merge_policy_files(
    raw: dict[str, Any], base: Path, environ: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Merge ``policies:`` from each policy file into raw; returns policy name -> source."""
    patterns = raw.get("policy_files") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        problems.append("policy_files: must be a list of globs")
        return {}
    inline = raw.get("policies")
    merged: dict[str, Any] = dict(inline) if isinstance(inline, Mapping) else {}
    sources = dict.fromkeys(merged, "the main config file")
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            problems.append(f"policy_files[{index}]: must be a string")
            continue
        matches = sorted(glob.glob(str(base / pattern), recursive=True))
        if not matches:
            problems.append(f"policy_files[{index}]: {pattern!r} matches no file")
        for file in matches:
            _merge_one_policy_file(Path(file), base, environ, merged, sources, problems)
    if merged or inline is not None:
        raw["policies"] = merged
    return {name: src for name, src in sources.items() if src != "the main config file"}


def _merge_one_policy_file(
    file: Path,
    base: Path,
    environ: Mapping[str, str],
    merged: dict[str, Any],
    sources: dict[str, str],
    problems: list[str],
) -> None:
    label = str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
    content = _read_yaml(file, problems)
    if content is None:
        return
    if not isinstance(content, dict) or set(content) - {"policies"}:
        problems.append(f"{label}: a policy file holds only a 'policies:' mapping")
        return
    policies = content.get("policies") or {}
    if not isinstance(policies, dict):
        problems.append(f"{label}: policies: must be a mapping")
        return
    found: list[str] = []
    policies = interpolate(policies, environ, "policies", found)
    problems.extend(f"{label}: {p}" for p in found)  # name the file the variable is in
    for name, value in policies.items():
        if name in sources:
            problems.append(f"{label}: policies.{name}: already defined in {sources[name]}")
            continue
        merged[name] = value
        sources[name] = label


def _read_secret_files(raw: dict[str, Any], base: Path, problems: list[str]) -> None:
    for section, keys in _SECRET_FILE_KEYS.items():
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        for key in keys:
            file_key = f"{key}_file"
            if file_key not in values:
                continue
            if key in values:
                problems.append(f"{section}.{file_key}: set either {key} or {file_key}, not both")
                continue
            names = values.pop(file_key)
            many = isinstance(names, list)
            read = [
                _read_secret(base, n, f"{section}.{file_key}", problems)
                for n in (names if many else [names])
            ]
            values[key] = read if many else read[0]


def _read_secret(base: Path, name: Any, path: str, problems: list[str]) -> str:
    if not isinstance(name, str):
        problems.append(f"{path}: must be a file path")
        return ""
    try:
        return (base / name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read {name}: {getattr(exc, 'strerror', None) or exc}")
        return ""


def _resolve_key_file(raw: dict[str, Any], base: Path, problems: list[str]) -> None:
    identity = raw.get("identity")
    assertion = identity.get("assertion") if isinstance(identity, dict) else None
    if not isinstance(assertion, dict) or not isinstance(assertion.get("signing_key_file"), str):
        return
    key_path = (base / assertion["signing_key_file"]).resolve()
    if not key_path.is_file():
        problems.append(f"identity.assertion.signing_key_file: {key_path} does not exist")
    assertion["signing_key_file"] = str(key_path)


__all__ = [
    "AssertionConfig",
    "GatewayConfig",
    "IdentityConfig",
    "ProviderConfig",
    "RouteConfig",
    "ServerConfig",
    "SessionConfig",
    "config_json_schema",
    "interpolate",
    "load_config",
    "parse_config",
    "parse_duration",
]
