"""The configuration's sections as frozen pydantic models (DESIGN.md §4). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from gateway.config.branding import BrandingConfig
from gateway.config.cimd import AUTO_CLIENT_ID, CIMD_PATH, cimd_client_id
from gateway.config.values import (
    HEADER_FIELDS,
    HEADER_TOKEN,
    HOSTNAME,
    MODEL_CONFIG,
    ROUTE_NAME,
    Duration,
    SecretTuple,
    StrTuple,
    check_header_name,
    check_header_value,
    check_http_url,
    check_listen,
    template_fields,
)
from gateway.errors import PathError
from gateway.headers import FRAMING, HOP_BY_HOP, HeaderEdits, canonical, route_header_problem
from gateway.policy import BUILTIN_POLICIES, Policy
from gateway.routing import normalize_path, parse_origin_pattern, path_under


class ServerConfig(BaseModel):
    model_config = MODEL_CONFIG

    listen: str = Field(
        default="0.0.0.0:8080",  # noqa: S104 - a gateway in a container listens on all interfaces
        description="host:port the gateway listens on (IPv6 as [::]:8080)",
    )
    public_url: str = Field(
        description="External origin; callback = {public_url}/_gateway/callback"
    )
    trusted_proxies: StrTuple = Field(
        default=(),
        description="IPs or CIDRs of proxies whose X-Forwarded-For, X-Forwarded-Proto and "
        "X-Request-Id are believed, and that may ask /_gateway/auth; none by default",
    )
    metrics_listen: str | None = Field(
        default="127.0.0.1:9090",
        description="host:port of the separate Prometheus listener (GET /metrics); null turns it "
        "off",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes sharing the port (SO_REUSEPORT); more than 1 needs session.store "
        "redis and identity.assertion.signing_key_file",
    )
    allowed_redirect_hosts: StrTuple = Field(
        default=(),
        description="Host patterns (host or *.domain), besides public_url's host and the route "
        "hosts, that a post-login or post-logout rd= may send the browser to",
    )
    request_head_timeout: Duration = Field(
        default=10,
        description="A client connection that has begun a request must finish sending its "
        "head (request line and headers) within this time, or it is closed (slowloris)",
    )
    drain_delay: Duration = Field(
        default=5,
        le=3600,
        description="On SIGTERM, /_gateway/readyz answers 503 at once while the listener "
        "keeps accepting for this long (so a load balancer stops sending traffic before the "
        "port closes); 0 closes it at once",
    )
    shutdown_timeout: Duration = Field(
        default=10,
        le=3600,
        description="After the listener closed, how long requests in flight may take to "
        "finish before they are cut; websockets are closed with 1001 at its start",
    )
    watch_config: bool = Field(
        default=True,
        description="Reload when the config file or a policy file changes (polled every "
        "second); SIGHUP reloads either way",
    )
    mode: Literal["standard", "spaces"] = Field(
        default="standard",
        description="spaces: a Hugging Face Docker Space with hf_oauth: true; when not "
        "written, on if SPACE_HOST and OAUTH_CLIENT_ID are set. It fills the provider, "
        "public_url, listen 0.0.0.0:7860, frame_ancestors and SameSite=None cookies from "
        "the Space's variables where the file leaves them out (docs/deploy/spaces.md)",
    )
    frame_ancestors: StrTuple = Field(
        default=(),
        description="Origins whose pages may show the gateway's own pages in a frame (CSP "
        "frame-ancestors); none (the default) forbids framing. Spaces mode: "
        "https://huggingface.co",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_listen(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str | None) -> str | None:
        return None if value is None else check_listen(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = check_http_url(value)
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
        return _no_duplicates(value, _network)

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not HOSTNAME.match(parts.hostname or "")
                or parts.path
                or parts.query
                or parts.fragment
                or "*" in origin
            ):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port]")
        return _no_duplicates(tuple(o.lower().rstrip("/") for o in value))

    @field_validator("allowed_redirect_hosts")
    @classmethod
    def _redirect_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(tuple(_check_host_pattern(h) for h in value))

    @cached_property
    def public_scheme(self) -> str:
        return urlsplit(self.public_url).scheme

    @cached_property
    def public_host(self) -> str:
        """public_url's host, parsed once (it is compared on the request path)."""
        return urlsplit(self.public_url).hostname or ""


class ProviderConfig(BaseModel):
    model_config = MODEL_CONFIG

    kind: Literal["huggingface", "oidc"] = Field(
        default="huggingface",
        description="huggingface adds Hugging Face specifics (orgIds, orgs and roles, whoami-v2);"
        " oidc is a generic OpenID Connect provider",
    )
    issuer: str = Field(
        default="https://huggingface.co",
        description="The provider's issuer: discovery at {issuer}/.well-known/openid-"
        "configuration, and the ID token's iss",
    )
    client_id: str = Field(
        default=AUTO_CLIENT_ID,
        min_length=1,
        description="The OAuth app's client id; auto (the default): no registered app, the "
        "gateway serves its own Client ID Metadata Document at "
        "{public_url}/.well-known/oauth-cimd and uses that URL (Hugging Face only, no "
        "client_secret; docs/cimd.md)",
    )
    client_secret: SecretStr | None = Field(
        default=None,
        description="The OAuth app's secret (HTTP Basic); leave it out for a public PKCE-only "
        "app. Or client_secret_file",
    )
    client_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="With client_id auto: the app's name on Hugging Face's consent screen "
        "(default: public_url's host)",
    )
    client_logo_uri: str | None = Field(
        default=None,
        description="With client_id auto: an https URL of the app's logo for the consent screen",
    )
    scopes: StrTuple = Field(
        default=("openid", "profile", "email", "read-memberships"),
        description="Scopes asked at every sign-in; must include openid. One string is a space-"
        "separated list",
    )
    org_ids: StrTuple = Field(
        default=(),
        description="Org ids (the org's sub, not its name) sent as orgIds= so Hugging Face's "
        "consent screen asks for them",
    )
    api_url: str = Field(
        default="https://huggingface.co",
        description="Base URL of the Hub API (/api/whoami-v2), for bearer tokens and when "
        "userinfo has no orgs",
    )
    groups_claim: str = Field(
        default="groups",
        description="kind oidc only: the ID token / userinfo claim (a list of strings) read as "
        "orgs",
    )
    bearer_tokens: bool = Field(
        default=True,
        description="Accept the provider's access tokens as Authorization: Bearer (HF: "
        "personal and OAuth tokens, checked with whoami-v2 and cached for a minute)",
    )
    device_client_id: str | None = Field(
        default=None,
        description="Client id of a public HF OAuth app (no secret) that allows the device "
        "flow, offered to `hf-gateway login` at /_gateway/device (docs/clients.md)",
    )

    @field_validator("issuer", "api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("client_logo_uri")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(check_http_url(value)).scheme != "https":
            raise ValueError("must be an https URL (the consent page is on https)")
        return value

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        # One string is a space-separated list, as OAuth writes it (Spaces: OAUTH_SCOPES).
        return value.split() if isinstance(value, str) else value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include openid (the gateway verifies an ID token)")
        bad = [s for s in value if not s or any(c.isspace() for c in s)]
        if bad:
            raise ValueError(f"invalid scope {bad[0]!r}")
        return _no_duplicates(value, str)

    @model_validator(mode="after")
    def _cimd_is_public(self) -> ProviderConfig:
        if self.client_id != AUTO_CLIENT_ID and not self.client_id.endswith(CIMD_PATH):
            return self
        if self.client_secret is not None:
            # HF's CIMD clients authenticate with PKCE alone (token_endpoint_auth_method none).
            raise ValueError(
                "@client_secret: a CIMD client id (client_id auto) is a public client: "
                "remove client_secret, or set client_id to the id of your registered app"
            )
        if self.kind != "huggingface" and self.client_id == AUTO_CLIENT_ID:
            raise ValueError(
                "@client_id: auto (a Client ID Metadata Document) is Hugging Face's; "
                "kind oidc needs the client_id your provider registered"
            )
        return self


class SentinelConfig(BaseModel):
    model_config = MODEL_CONFIG

    master: str = Field(min_length=1, description="The name Sentinel knows the master by")
    nodes: StrTuple = Field(min_length=1, description="The Sentinels, as host:port (at least one)")
    password: SecretStr | None = Field(
        default=None, description="Password for the Sentinels and the master"
    )

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_listen(v) for v in value)


class SessionConfig(BaseModel):
    model_config = MODEL_CONFIG

    store: Literal["redis", "memory"] = Field(
        default="memory", description="Where sessions live: memory (one process) or redis"
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://, rediss:// (TLS) or unix:// URL with credentials and database; with"
        " redis_cluster, one cluster node. Or redis_url_file",
    )
    redis_sentinel: SentinelConfig | None = Field(
        default=None,
        description="Reach the Redis master through Sentinel (master, nodes, password) instead of"
        " redis_url",
    )
    redis_cluster: bool = Field(
        default=False, description="redis_url names one node of a Redis Cluster"
    )
    redis_prefix: str = Field(
        default="hfgw:",
        description="Prefix of every Redis key the gateway writes (non-empty, no whitespace)",
    )
    redis_wait_replicas: int | None = Field(
        default=None,
        ge=0,
        le=16,
        description="Replicas that must have a session write (sign-in, sign-out, token "
        "rotation, revocation, login markers) before it counts as done; a write they do not "
        "acknowledge in time fails (503). Default: 1 with redis_sentinel, else 0",
    )
    redis_wait_timeout_ms: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Milliseconds a write waits for redis_wait_replicas replicas (WAIT)",
    )
    secret: SecretTuple = Field(description=">= 32 bytes; a list rotates: the first signs")
    cookie_name: str = Field(
        default="hf_gateway",
        description="Base name of the session cookie (the gateway adds __Host- on https without "
        "cookie_domain)",
    )
    cookie_domain: str | None = Field(
        default=None,
        description="Share the session cookie across subdomains (example.com or .example.com); "
        "default: public_url's host only",
    )
    cookie_samesite: Literal["lax", "strict", "none"] = Field(
        default="lax",
        description="The session cookie's SameSite; none needs an https public_url (or localhost)",
    )
    idle_timeout: Duration = Field(
        default=8 * 3600, description="A session ends after this long without a request"
    )
    max_lifetime: Duration = Field(
        default=7 * 86400,
        description="A session ends this long after sign-in whatever happens (also the cookie's "
        "Max-Age)",
    )
    revalidate_after: Duration = Field(
        default=300,
        description="How often the user's orgs and roles are re-read from the provider; 0 on "
        "every request",
    )
    warm_cache: bool = Field(
        default=True,
        description="Keep sessions read in the last second in memory (redis store only); "
        "every replica drops them at once on logout or change (Redis pub/sub)",
    )
    warm_cache_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        le=16 * 1024 * 1024 * 1024,
        description="Memory budget of each process's warm cache, in bytes (estimated per "
        "entry: about 4 times the stored record); past it the oldest entries go first, and "
        "a record over 1/256 of it (at least 64 KiB) is never cached",
    )

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
        if not HEADER_TOKEN.match(value) or value.startswith("__"):
            raise ValueError("must be a cookie name token (letters, digits, - and _)")
        return value

    @field_validator("cookie_domain")
    @classmethod
    def _cookie_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bare = value.lower().lstrip(".")
        if not HOSTNAME.match(bare) or "." not in bare:
            raise ValueError("must be a domain such as .example.com")
        return "." + bare

    @field_validator("redis_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a non-empty string without spaces")
        return value

    @model_validator(mode="after")
    def _wait_replicas_without_cluster(self) -> SessionConfig:
        if self.redis_cluster and self.redis_wait_replicas:
            raise ValueError(
                "@redis_wait_replicas: not supported with redis_cluster (each shard fails over "
                "on its own; set min-replicas-to-write on the cluster's masters instead): use 0"
            )
        return self

    @property
    def wait_replicas(self) -> int:
        """Replicas each session write waits for: redis_wait_replicas, else 1 with Sentinel."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinel is not None else 0


class AssertionConfig(BaseModel):
    model_config = MODEL_CONFIG

    header: str = Field(
        default="X-Gateway-Assertion",
        description="The request header carrying the signed assertion JWT",
    )
    ttl: Duration = Field(
        default=60, description="The assertion JWT's lifetime (exp - iat), 1s to 1h"
    )
    signing_key_file: str | None = Field(
        default=None,
        description="PEM file with the private key(s) that sign the assertion (EC P-256 or RSA >="
        " 2048; the first signs, all are published); default: a key generated at "
        "start (one process only)",
    )

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        check_header_name(value)
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
    model_config = MODEL_CONFIG

    headers: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_IDENTITY_HEADERS),
        description="Identity headers set on every forwarded request: header name -> template "
        "with {field}s (sub, username, name, email, orgs, org_roles, picture, route);"
        " giving it replaces the default set",
    )
    assertion: AssertionConfig = Field(
        default_factory=AssertionConfig,
        description="The signed assertion JWT sent upstream (header, lifetime, signing key)",
    )
    pass_access_token: bool = Field(
        default=False,
        description="Send the user's provider access token upstream as X-Forwarded-Access-Token "
        "(routes may override)",
    )
    strip_headers: StrTuple = Field(
        default=(),
        description="More client headers to remove before forwarding, besides the gateway's "
        "own and the identity headers of common gateways; a trailing * strips a family "
        "(X-Corp-User-*)",
    )

    @field_validator("strip_headers")
    @classmethod
    def _strip_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, str] = {}
        for name in value:
            bare = name[:-1] if name.endswith("*") else name
            if "*" in bare or not bare:
                raise ValueError(
                    f"{name!r}: * only ends a family (X-Corp-*), it matches nothing elsewhere"
                )
            check_header_name(bare)
            key = canonical(name)
            if key in seen:
                raise ValueError(f"{name} is listed twice (also as {seen[key]}): remove one")
            seen[key] = name
            if key in HOP_BY_HOP or key in FRAMING:
                raise ValueError(f"{name} is hop-by-hop and never forwarded anyway: remove it")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for name, template in value.items():
            check_header_name(name)
            key = name.lower().replace("_", "-")  # how the gateway compares header names
            if key in HOP_BY_HOP or key in FRAMING or key == "proxy-connection":
                raise ValueError(
                    f"{name} describes the connection or the body, not a user: "
                    "use a name such as X-Forwarded-User"
                )
            if key == "x-request-id" or key.startswith("sec-websocket-"):
                raise ValueError(
                    f"{name} is the gateway's own (request id, websocket handshake): "
                    "use a name such as X-Forwarded-User"
                )
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
    model_config = MODEL_CONFIG

    name: str = Field(
        description="The route's name: 1-63 letters, digits, '.', '_' or '-', unique; the "
        "assertion's aud and the {route} field",
    )
    host: str | None = Field(
        default=None,
        description="Host name or *.domain pattern this route serves; default: any host",
    )
    path: str = Field(
        default="/", description="Path prefix this route serves, on segment boundaries"
    )
    upstream: str = Field(
        description="Where requests go: http(s)://host[:port][/base] or unix:/absolute/path.sock"
    )
    strip_prefix: bool = Field(
        default=False,
        description="Remove path from the request path before forwarding (/grafana/d/x goes up as"
        " /d/x)",
    )
    preserve_host: bool = Field(
        default=True,
        description="Forward the client's Host header; false sends the upstream's own host",
    )
    policy: PolicyRef = Field(
        description="Who may use the route: a name from policies, authenticated, public, or an "
        "inline policy",
    )
    public_paths: StrTuple = Field(
        default=(),
        description="Paths under this route that need no sign-in (compared before strip_prefix)",
    )
    websockets: bool = Field(default=True, description="Allow websocket upgrades (otherwise 403)")
    allowed_origins: StrTuple = Field(
        default=(),
        description="Other origins (scheme://host[:port], host may be *.domain) whose pages "
        "may send unsafe requests and websocket upgrades with the session to this route",
    )
    case_insensitive: bool = Field(
        default=False,
        description="The upstream ignores letter case in paths (Express, ASP.NET, IIS): this "
        "route's path and public_paths then match ignoring case too",
    )
    connect_timeout: Duration = Field(
        default=5,
        description="Time allowed to open a connection to the upstream (504 when exceeded)",
    )
    read_timeout: Duration = Field(
        default=60,
        description="Longest silence on the upstream connection before a 504 or a cut connection;"
        " 0 never times out",
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        le=65536,
        description="HTTP connections this route may hold to its upstream (busy and idle); "
        "websocket tunnels are not counted",
    )
    pool_timeout: Duration = Field(
        default=5,
        description="How long a request waits for a free upstream connection before a "
        "503 with Retry-After",
    )
    keepalive_timeout: Duration = Field(
        default=4,
        description="Idle upstream connections are closed after this; 0 never reuses one. "
        "Keep it below the upstream's own keep-alive (uvicorn and Node close after 5 s)",
    )
    pass_access_token: bool | None = Field(
        default=None,
        description="Overrides identity.pass_access_token for this route (null: inherit)",
    )
    cors_preflight: bool = Field(
        default=False,
        description="Let CORS preflights (OPTIONS with Origin and "
        "Access-Control-Request-Method) through to the upstream without credentials; "
        "the upstream answers them",
    )
    optional_sign_in: bool = Field(
        default=False,
        description="On public routes and public_paths, identify a caller who is signed "
        "in and forward the identity headers; nobody is asked to sign in",
    )
    set_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Static request headers set on every request forwarded to the upstream",
    )
    remove_headers: StrTuple = Field(
        default=(), description="Request headers removed before forwarding to the upstream"
    )

    @field_validator("set_headers")
    @classmethod
    def _set_headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for name, header_value in value.items():
            reason = route_header_problem(name, "set")
            if not HEADER_TOKEN.match(name):
                raise ValueError(str(reason))
            if reason is None and canonical(name) in seen:
                reason = f"{name} is listed twice (also as {seen[canonical(name)]}): remove one"
            if reason is None:
                try:
                    check_header_value(header_value)
                except ValueError as exc:
                    reason = str(exc)
            if reason is not None:
                raise ValueError(f"@{name}: {reason}")
            seen[canonical(name)] = name
        return value

    @field_validator("remove_headers")
    @classmethod
    def _remove_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, str] = {}
        for index, name in enumerate(value):
            reason = route_header_problem(name, "remove")
            if reason is None and canonical(name) in seen:
                reason = f"{name} is listed twice (also as {seen[canonical(name)]}): remove one"
            if reason is not None:
                raise ValueError(f"@[{index}]: {reason}")
            seen[canonical(name)] = name
        return value

    @model_validator(mode="after")
    def _set_or_remove(self) -> RouteConfig:
        removed = [canonical(n) for n in self.remove_headers]
        for name in self.set_headers:
            key = canonical(name)
            if key in removed or any(p.endswith("*") and key.startswith(p[:-1]) for p in removed):
                raise ValueError(
                    f"@remove_headers: {name} is also in set_headers (a set header replaces "
                    "the client's anyway): remove it from one of the two"
                )
        return self

    @cached_property
    def header_edits(self) -> HeaderEdits | None:
        """set_headers / remove_headers ready to apply; None when the route has neither."""
        if not self.set_headers and not self.remove_headers:
            return None
        return HeaderEdits.from_config(self.set_headers, self.remove_headers)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ROUTE_NAME.match(value):
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

    @field_validator("allowed_origins")
    @classmethod
    def _allowed_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if parse_origin_pattern(origin) is None:
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] without a path, "
                    "e.g. https://notebooks.example.com"
                )
        return _no_duplicates(value, lambda o: o.lower().rstrip("/"))

    @field_validator("public_paths")
    @classmethod
    def _public_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_config_path(v) for v in value)

    @model_validator(mode="after")
    def _public_paths_distinct(self) -> RouteConfig:
        fold = str.lower if self.case_insensitive else str
        for index, public in enumerate(self.public_paths):
            for earlier in self.public_paths[:index]:
                if path_under(fold(public), fold(earlier)):
                    same = fold(public).rstrip("/") == fold(earlier).rstrip("/")
                    raise ValueError(
                        f"@public_paths[{index}]: {public} "
                        + ("is listed twice" if same else f"is already public under {earlier}")
                        + ": remove this entry"
                    )
        return self

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


def _no_duplicates(values: tuple[str, ...], key: Any = str.lower) -> tuple[str, ...]:
    """Refuse an entry listed twice (compared by ``key``): the second can never add anything."""
    seen: dict[Any, str] = {}
    for value in values:
        found = seen.get(key(value))
        if found is not None:
            same = "" if found == value else f" (also as {found})"
            raise ValueError(f"{value} is listed twice{same}: remove one")
        seen[key(value)] = value
    return values


def _network(cidr: str) -> Any:
    return ipaddress.ip_network(cidr, strict=False)


def _check_host_pattern(value: str) -> str:
    host = value.lower()
    bare = host[2:] if host.startswith("*.") else host
    if not HOSTNAME.match(bare):
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


class LoggingConfig(BaseModel):
    """How the gateway writes its log (docs/logs.md)."""

    model_config = MODEL_CONFIG

    format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: for a terminal"
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The lowest level written; HF_GATEWAY_LOG_LEVEL overrides it"
    )
    access: bool = Field(
        default=True, description="One access line per request (logger gateway.access)"
    )
    audit: bool = Field(
        default=True,
        description="One audit line per access decision: who, which route, allow or deny, "
        "the reason codes and the rule that decided (logger gateway.audit)",
    )
    fault_window: Duration = Field(
        default=10,
        ge=1,
        le=3600,
        description="A fault repeated within this window (the store down, the provider "
        "unreachable) is logged once, then as one line with its count per window",
    )


class GatewayConfig(BaseModel):
    """The whole, validated configuration. Build it with parse_config or load_config."""

    model_config = MODEL_CONFIG

    server: ServerConfig = Field(
        description="The listener, the public origin, trusted proxies and workers"
    )
    provider: ProviderConfig = Field(
        description="The OAuth / OIDC provider (Hugging Face by default) and the app's credentials"
    )
    session: SessionConfig = Field(
        description="The session store, the secret, the cookie and session lifetimes"
    )
    identity: IdentityConfig = Field(
        default_factory=IdentityConfig,
        description="The identity headers and the signed assertion JWT sent upstream",
    )
    policy_files: StrTuple = Field(
        default=(),
        description="Globs (relative to this file) of files holding more policies: mappings",
    )
    policies: dict[str, Policy] = Field(
        default_factory=dict, description="Named policies that routes refer to by name"
    )
    routes: tuple[RouteConfig, ...] = Field(
        min_length=1,
        description="Which host and path go to which upstream, under which policy (at least one)",
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="How the gateway writes its log"
    )
    branding: BrandingConfig = Field(
        default_factory=BrandingConfig,
        description="What the gateway's own pages say and look like",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_auto_client_id(cls, data: Any) -> Any:
        """client_id auto becomes the document's URL, so the provider (and a reload's
        comparison of provider sections) sees the id Hugging Face is sent."""
        if not isinstance(data, Mapping):
            return data
        provider, server = data.get("provider"), data.get("server")
        if isinstance(provider, Mapping):
            provider = ProviderConfig.model_validate(provider)
        if isinstance(server, Mapping):
            server = ServerConfig.model_validate(server)
        if not isinstance(provider, ProviderConfig) or not isinstance(server, ServerConfig):
            return data
        if provider.client_id == AUTO_CLIENT_ID:
            resolved = cimd_client_id(server.public_url)
            provider = provider.model_copy(update={"client_id": resolved})
        return {**data, "provider": provider, "server": server}

    @property
    def cimd_url(self) -> str | None:
        """The Client ID Metadata Document's URL when the gateway is its own registered
        app (client_id auto), else None."""
        url = cimd_client_id(self.server.public_url)
        return url if self.provider.client_id == url else None

    def policy_for(self, route: RouteConfig) -> Policy:
        """The policy object a route uses (named, built-in or inline)."""
        if isinstance(route.policy, Policy):
            return route.policy
        return self.policies.get(route.policy) or BUILTIN_POLICIES[route.policy]

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data with every secret masked."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The dialect pydantic writes (``$defs``, ``prefixItems``), declared for editors."""


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the YAML file, for editors (``hf-gateway schema``)."""
    schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        **GatewayConfig.model_json_schema(by_alias=True),
        "title": "hf-gateway configuration",
    }
    _add_secret_file_keys(schema)
    return schema


SECRET_FILE_KEYS: dict[str, tuple[str, ...]] = {
    "ProviderConfig": ("client_secret",),
    "SessionConfig": ("secret", "redis_url"),
}
"""Keys that also accept ``<key>_file`` (read by load_config before validation)."""


def _add_secret_file_keys(schema: dict[str, Any]) -> None:
    """Teach editors the ``*_file`` variants, which the models never see: load_config has
    already replaced them by the file's content."""
    for model, keys in SECRET_FILE_KEYS.items():
        definition = schema["$defs"][model]
        for key in keys:
            definition["properties"][f"{key}_file"] = {
                "type": "string" if key != "secret" else ["string", "array"],
                "description": f"a file holding {key} (instead of {key} itself)",
            }
            required = definition.get("required", [])
            if key in required:
                required.remove(key)
