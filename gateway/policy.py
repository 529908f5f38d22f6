"""Access policies: the YAML rule language, parsed into a typed AST, and its evaluation.

A policy has ``allow`` and ``deny`` rule lists and optional ``require_scopes``. A rule is
a mapping of criteria that must all hold; a list of rules matches when any rule does.
Deny wins; no matching allow means deny. ``evaluate`` is pure: the caller passes the
identity, the request facts and the time.

Every decision carries machine-readable reasons so callers can tell apart "sign in",
"forbidden (by which rule)", "re-consent for these scopes" and "grant this org to the app".
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from gateway.errors import PathError
from gateway.identity import ROLE_ORDER, Identity, Org, role_at_least
from gateway.routing import normalize_path, path_under

Role = Literal["read", "contributor", "write", "admin"]

TOKEN_ROLE_REACH: dict[str, str | None] = {"read": "read", "write": "admin", "finegrained": "read"}
"""The highest org role an HF access token can act with, by its whoami role (folded).

A read token never acts as a writer, whatever its owner's role. A write token carries its
owner's full rights. A fine-grained token's per-org permissions are not read by the
gateway, so it counts as read only (fail safe); OAuth tokens sent as bearer report
``fineGrained`` too. A role the gateway does not know reaches no role at all."""


def _as_str_tuple(value: Any) -> Any:
    """Accept one string or a list of strings (``user: alice`` or ``user: [alice, bob]``)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ValueError("must be a string or a list of strings")
    return value


def _non_empty(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError("must not be empty")
    if any(not v.strip() for v in values):
        raise ValueError("must not contain empty strings")
    return values


class OneOrMany:
    """JSON Schema marker for a list that also accepts one item (``user: alice``).

    Without it the schema says "array" only, and editors flag the documented one-item
    forms (``user: alice``, ``allow: {org: acme}``, ``secret: ${GATEWAY_SECRET}``).
    """

    @staticmethod
    def __get_pydantic_json_schema__(
        schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        array = handler(schema)
        return {"anyOf": [array["items"], array]}


StrList = Annotated[tuple[str, ...], BeforeValidator(_as_str_tuple), OneOrMany()]

_FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

HTTP_METHODS: tuple[str, ...] = (
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
)  # fmt: skip
"""Methods a ``method`` criterion may list (RFC 9110 and WebDAV); anything else is a typo."""
TOKEN_ROLES: tuple[str, ...] = ("read", "write", "fineGrained", "any")
"""What ``token_role`` may list: whoami-v2's token roles, and ``any`` for all three."""
HF_SCOPES: tuple[str, ...] = (
    "openid", "profile", "email", "read-billing", "read-memberships", "read-repos",
    "gated-repos", "contribute-repos", "write-repos", "manage-repos", "read-collections",
    "write-collections", "inference-api", "read-endpoints", "write-endpoints", "jobs",
    "webhooks", "write-discussions", "read-mcp", "read-network-security",
    "write-network-security",
)  # fmt: skip
"""Hugging Face OAuth scopes known today (../shared/HF-OAUTH.md §1.3). A scope close to one
of them but not one is refused as a typo; others pass (HF adds scopes)."""
_HF_NAME = re.compile(r"[A-Za-z0-9._-]{1,96}")
"""HF user and org names: ASCII letters, digits, '.', '_' and '-' (no '@', no spaces)."""
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _nearest(value: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """ "; did you mean X?" for the closest option, or "" when none is close."""
    options = list(options)
    folded = {o.lower(): o for o in options}
    close = difflib.get_close_matches(value.lower(), list(folded), n=1, cutoff=cutoff)
    return f"; did you mean {folded[close[0]]}?" if close else ""


def _hf_kind(info: ValidationInfo) -> bool:
    """Whether names follow Hugging Face's rules: unless the loader says the provider is a
    generic OIDC one (context ``{"provider_kind": "oidc"}``), whose names can be anything."""
    context = info.context if isinstance(info.context, dict) else {}
    return bool(context.get("provider_kind", "huggingface") == "huggingface")


def _check_hf_names(values: tuple[str, ...], what: str) -> None:
    for value in values:
        if _HF_NAME.fullmatch(value):
            continue
        if "@" in value and what == "user":
            raise ValueError(
                f"{value!r} is not a Hugging Face username (they cannot contain '@'); "
                f"to match an email address use email: [{value}]"
            )
        suggestion = re.sub(r"[^A-Za-z0-9._-]", "", value)[:96]
        hint = f"; did you mean {suggestion}?" if suggestion else ""
        raise ValueError(
            f"{value!r} is not a Hugging Face {what} name (letters, digits, '.', '_', '-' "
            f"only, at most 96){hint}"
        )


def _check_domain(value: str) -> None:
    bare = value[2:] if value.startswith("*.") else value[1:] if value.startswith(".") else value
    labels = bare.split(".")
    if bare and all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return
    if "@" in value:
        hint = f"; did you mean {value.rpartition('@')[2]}?" if value.rpartition("@")[2] else ""
        raise ValueError(f"{value!r}: a domain has no '@' (write the part after it){hint}")
    cleaned = ".".join(
        label for label in re.sub(r"[^A-Za-z0-9.-]", "", bare).strip(".").split(".") if label
    )
    hint = f"; did you mean {cleaned}?" if cleaned else ""
    raise ValueError(
        f"{value!r} is not a domain (labels of ASCII letters, digits and '-'; "
        f"'*.' in front for subdomains; punycode for IDNs){hint}"
    )


def check_email(value: str) -> str:
    """An email address a verified HF email can equal: one '@', no spaces, a domain."""
    local, at, domain = value.partition("@")
    if not at or not local or "@" in domain or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an email address (name@domain)")
    if domain.startswith(("*.", ".")):
        raise ValueError(f"{value!r}: an email address has no wildcard; use email_domain")
    _check_domain(domain)
    return value


def check_scopes(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if any(c.isspace() for c in value):
            parts = ", ".join(value.split())
            raise ValueError(f"{value!r}: one scope per list item; did you mean [{parts}]?")
        if value not in HF_SCOPES:
            hint = _nearest(value, HF_SCOPES, cutoff=0.8)
            if hint:
                raise ValueError(f"unknown scope {value!r}{hint}")
    return values


def check_rule_path(text: str) -> str:
    """A ``path`` value the normalised request path can meet: it starts with '/', is already
    normal (no '//', '.', '..', '%2F', ';'), and ``**`` stands alone as a segment."""
    if not text.startswith("/"):
        raise ValueError(f"{text!r}: a path starts with '/'; did you mean /{text.lstrip('/')}?")
    plain = text.replace("*", "x")
    try:
        normal = normalize_path(plain).match
    except PathError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if ";" in text or normal.rstrip("/") != plain.rstrip("/"):
        wanted = normal.replace("x", "*") if "*" in text else normal
        raise ValueError(
            f"{text!r} is not a normalised path and can never match; did you mean {wanted}?"
        )
    for segment in text.split("/"):
        if "**" in segment and segment != "**":
            raise ValueError(f"{text!r}: '**' must be a whole segment (/a/**/b)")
    return text


def check_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR or a single address; host bits set are refused with the network meant."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"{text!r} is not an IP address or CIDR (192.0.2.0/24, 2001:db8::/32)"
            ) from None
        raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from None


def _glob(pattern: str) -> re.Pattern[str]:
    """``*``: any characters inside one segment; a ``**`` segment: any number of segments."""
    parts: list[str] = []
    for segment in pattern.strip("/").split("/"):
        if segment == "**":
            parts.append("(?:/[^/]+)*")
        else:
            parts.append("/" + "[^/]*".join(re.escape(p) for p in segment.split("*")))
    trailing = "/?" if not pattern.endswith("/") else "/"
    return re.compile("".join(parts) + trailing)


def _path_matches(
    path: str, patterns: tuple[tuple[str, re.Pattern[str] | None], ...], fold: bool
) -> bool:
    compared = path.lower() if fold else path
    for text, glob in patterns:
        if glob is None:
            if path_under(compared, text.lower() if fold else text):
                return True
        elif (re.compile(glob.pattern, re.IGNORECASE) if fold else glob).fullmatch(compared):
            return True
    return False


def _methods_schema(schema: dict[str, Any]) -> None:
    """Closed values in the JSON schema: methods in either letter case."""
    schema["anyOf"] = [
        {"type": "string", "enum": [*HTTP_METHODS, *(m.lower() for m in HTTP_METHODS)]},
        {"type": "array", "items": {"enum": [*HTTP_METHODS, *(m.lower() for m in HTTP_METHODS)]}},
    ]


def _token_roles_schema(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"type": "string", "enum": list(TOKEN_ROLES)},
        {"type": "array", "items": {"enum": list(TOKEN_ROLES)}},
    ]


class Rule(BaseModel):
    """One rule: every criterion given must hold."""

    model_config = _FROZEN

    authenticated: Literal[True] | None = Field(
        default=None, description="true: any signed-in user (the only value)."
    )
    user: StrList | None = Field(
        default=None,
        description="HF usernames, any of which matches (A-Z compared case-insensitively).",
    )
    user_id: StrList | None = Field(
        default=None, description="HF user ids (sub, stable across renames), compared exactly."
    )
    org: StrList | None = Field(
        default=None,
        description="Org slugs: the user is a member whose membership counts (no pending SSO/MFA).",
    )
    org_id: StrList | None = Field(
        default=None, description="Org ids (sub), compared exactly; survives org renames."
    )
    min_role: Role | None = Field(
        default=None,
        description="With org or org_id: the role in one of those orgs is at least this; an HF "
        "access token must reach it too unless the rule has token_role.",
    )
    scope: StrList | None = Field(
        default=None, description="OAuth scopes, every one of which must have been granted."
    )
    email: StrList | None = Field(
        default=None,
        description="Email addresses, any of which the user's verified email equals "
        "(A-Z compared case-insensitively).",
    )
    email_domain: StrList | None = Field(
        default=None,
        description="Domains of the user's verified email: example.com exactly, *.example.com "
        "its subdomains.",
    )
    email_verified: bool | None = Field(
        default=None, description="The provider says the email is (true) or is not verified."
    )
    pro: bool | None = Field(default=None, description="The user has (true) or has not HF Pro.")
    method: StrList | None = Field(
        default=None,
        description="HTTP methods, any of which is the request's (case-insensitive).",
        json_schema_extra=_methods_schema,
    )
    path: StrList | None = Field(
        default=None,
        description="Normalised request paths: /a/b matches it and below (segment "
        "boundaries); with * (one segment) or ** (any depth) a glob of the whole path.",
    )
    source_ip: StrList | None = Field(
        default=None,
        description="CIDRs or addresses, one of which holds the client's address (the peer, "
        "or X-Forwarded-For from server.trusted_proxies).",
    )
    token_role: StrList | None = Field(
        default=None,
        description="HF access token roles (read, write, fineGrained; any: all three); never "
        "matches a browser session. With it, min_role judges the membership alone.",
        json_schema_extra=_token_roles_schema,
    )
    any_: tuple[Rule, ...] | None = Field(
        default=None, alias="any", description="Rules, at least one of which matches."
    )
    all_: tuple[Rule, ...] | None = Field(
        default=None, alias="all", description="Rules, every one of which matches."
    )
    not_: Rule | None = Field(default=None, alias="not", description="A rule that must not match.")

    # Field validators (not the model check below) so a mistake is reported at its key:
    # "allow[0].user: must not be empty" rather than "allow[0]: must not be empty".
    @field_validator(
        "user",
        "user_id",
        "org",
        "org_id",
        "scope",
        "email",
        "email_domain",
        "method",
        "path",
        "source_ip",
        "token_role",
    )
    @classmethod
    def _lists(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _non_empty(value)

    @field_validator("user", "org")
    @classmethod
    def _hf_names(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is not None and _hf_kind(info):
            _check_hf_names(value, "user" if info.field_name == "user" else "org")
        return value

    @field_validator("scope")
    @classmethod
    def _scopes(cls, value: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        return check_scopes(value) if value is not None and _hf_kind(info) else value

    @field_validator("email")
    @classmethod
    def _emails(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(check_email(v) for v in value)

    @field_validator("email_domain")
    @classmethod
    def _domains(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for domain in value or ():
            _check_domain(domain)
        return value

    @field_validator("method")
    @classmethod
    def _methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for method in value or ():
            if method.upper() not in HTTP_METHODS:
                raise ValueError(f"unknown method {method!r}{_nearest(method, HTTP_METHODS)}")
        return value

    @field_validator("token_role")
    @classmethod
    def _token_roles(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        known = {_fold(r) for r in TOKEN_ROLES}
        for role in value or ():
            if _fold(role) not in known:
                raise ValueError(
                    f"unknown token role {role!r}{_nearest(role, TOKEN_ROLES)} "
                    f"(one of {', '.join(TOKEN_ROLES)})"
                )
        return value

    @field_validator("path")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for text in value or ():
            check_rule_path(text)
        return value

    @field_validator("source_ip")
    @classmethod
    def _networks(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for text in value or ():
            check_network(text)
        return value

    @field_validator("any_", "all_")
    @classmethod
    def _combinators(cls, value: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        if value is not None and not value:
            raise ValueError("must list at least one rule")
        return value

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.min_role is not None and self.org is None and self.org_id is None:
            raise ValueError("min_role needs org or org_id in the same rule")
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a rule needs at least one criterion")
        return self

    # The rule's lists as the sets matching compares against, built once per rule rather
    # than on every request.

    @cached_property
    def users_folded(self) -> frozenset[str]:
        return _folded(self.user or ())

    @cached_property
    def orgs_folded(self) -> frozenset[str]:
        return _folded(self.org or ())

    @cached_property
    def org_id_set(self) -> frozenset[str]:
        return frozenset(self.org_id or ())

    @cached_property
    def methods_upper(self) -> frozenset[str]:
        return frozenset(m.upper() for m in self.method or ())

    @cached_property
    def token_roles_folded(self) -> frozenset[str]:
        return _folded(self.token_role or ())

    @cached_property
    def emails_folded(self) -> frozenset[str]:
        return _folded(self.email or ())

    @cached_property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(check_network(text) for text in self.source_ip or ())

    @cached_property
    def path_patterns(self) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
        return tuple((p, _glob(p) if "*" in p else None) for p in self.path or ())


def _as_rule_list(value: Any) -> Any:
    """``allow: {org: acme}`` is shorthand for a one-rule list."""
    if isinstance(value, dict):
        return [value]
    return value


RuleList = Annotated[tuple[Rule, ...], BeforeValidator(_as_rule_list), OneOrMany()]


class Policy(BaseModel):
    """A named or inline policy."""

    model_config = _FROZEN

    allow: RuleList = Field(
        default=(),
        description="Rules, any of which allows the request (unless a deny rule matches). "
        "Required, at least one.",
    )
    deny: RuleList = Field(
        default=(), description="Rules, any of which denies the request; checked first."
    )
    require_scopes: StrList = Field(
        default=(),
        description="OAuth scopes every allowed request needs; missing ones are offered by "
        "re-consent.",
    )
    public: bool = Field(
        default=False,
        description="Anyone may pass, signed in or not (the built-in 'public' policy).",
    )

    @field_validator("require_scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if any(not v.strip() for v in value):
            raise ValueError("must not contain empty strings")
        return check_scopes(value) if _hf_kind(info) else value

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if self.public and (self.allow or self.deny or self.require_scopes):
            raise ValueError("a public policy takes no allow, deny or require_scopes")
        if not self.public and not self.allow:
            raise ValueError(
                "allow: at least one rule is required "
                "(use the built-in policy 'authenticated' for any signed-in user)"
            )
        return self


AUTHENTICATED = Policy(allow=(Rule(authenticated=True),))
PUBLIC = Policy(public=True)
BUILTIN_POLICIES: dict[str, Policy] = {"authenticated": AUTHENTICATED, "public": PUBLIC}


class ReasonCode(StrEnum):
    PUBLIC = "public"
    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"
    DENIED = "denied"
    NO_MATCHING_ALLOW = "no_matching_allow"
    RULE_FAILED = "rule_failed"
    MISSING_SCOPES = "missing_scopes"
    ORG_NOT_GRANTED = "org_not_granted"
    ORG_RESTRICTED = "org_restricted"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a decision came out as it did.

    ``rule`` is the rule path (``allow[0]``, ``deny[1].any[0]``) or "" for the policy as a
    whole; ``values`` carries machine-readable detail (missing scopes, org ids).
    """

    code: ReasonCode
    rule: str = ""
    detail: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]

    @property
    def unauthenticated(self) -> bool:
        return any(r.code is ReasonCode.UNAUTHENTICATED for r in self.reasons)

    @property
    def missing_scopes(self) -> frozenset[str]:
        return frozenset(
            v for r in self.reasons if r.code is ReasonCode.MISSING_SCOPES for v in r.values
        )

    @property
    def ungranted_org_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for r in self.reasons:
            if r.code is ReasonCode.ORG_NOT_GRANTED:
                seen.update(dict.fromkeys(r.values))
        return tuple(seen)

    @property
    def fixable_by_consent(self) -> bool:
        """A new authorization (more scopes, or an org granted) could turn this into allow."""
        return not self.allowed and bool(self.missing_scopes or self.ungranted_org_ids)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a policy may know about the request, already normalised."""

    method: str
    path: str
    host: str = ""
    client_ip: str = ""
    """The client's address (peer, or X-Forwarded-For from trusted proxies); "" unknown."""
    fold: bool = False
    """The path is compared ignoring letter case (an upstream that reads it so)."""


# A failed criterion: its path, what failed, and what a re-consent could fix.
@dataclass(frozen=True, slots=True)
class _Failure:
    path: str
    detail: str
    missing_scopes: tuple[str, ...] = ()
    ungranted_orgs: tuple[str, ...] = ()
    restricted_orgs: tuple[str, ...] = ()

    @property
    def consent_fixable(self) -> bool:
        return bool(self.missing_scopes or self.ungranted_orgs)


def evaluate(
    policy: Policy, identity: Identity | None, request: RequestFacts, now: datetime
) -> Decision:
    """Judge one request. Pure: no I/O, and ``now`` is given rather than read.

    ``now`` is part of the contract so time-dependent criteria never need a clock here.
    ``AccessControl.decide_for`` remembers decisions by identity and request facts: a
    criterion that reads ``now`` must make that memo time-aware.
    """
    del now  # no criterion depends on time yet; kept so callers never change
    if policy.public:
        return Decision(True, (Reason(ReasonCode.PUBLIC),))
    if identity is None:
        return Decision(False, (Reason(ReasonCode.UNAUTHENTICATED, detail="sign in required"),))
    ctx = _Context(identity, request)
    deny_ctx = replace(ctx, broad=True)
    for index, rule in enumerate(policy.deny):
        path = f"deny[{index}]"
        if not _match(rule, deny_ctx, path):
            return Decision(False, (Reason(ReasonCode.DENIED, path, "matched a deny rule"),))

    reasons: list[Reason] = []
    allowed_by = None
    all_failures: list[tuple[str, list[_Failure]]] = []
    for index, rule in enumerate(policy.allow):
        path = f"allow[{index}]"
        failures = _match(rule, ctx, path)
        if not failures:
            allowed_by = path
            break
        all_failures.append((path, failures))

    if allowed_by is None:
        reasons.append(Reason(ReasonCode.NO_MATCHING_ALLOW, detail="no allow rule matched"))
        for _, failures in all_failures:
            reasons.extend(Reason(ReasonCode.RULE_FAILED, f.path, f.detail) for f in failures)
        reasons.extend(_consent_reasons(all_failures))
    missing = tuple(s for s in policy.require_scopes if s not in identity.scopes)
    if missing:
        reasons.append(
            Reason(
                ReasonCode.MISSING_SCOPES,
                "require_scopes",
                "missing scopes: " + ", ".join(missing),
                missing,
            )
        )
    if allowed_by is not None and not missing:
        return Decision(True, (Reason(ReasonCode.ALLOWED, allowed_by, "matched an allow rule"),))
    return Decision(False, tuple(reasons))


def _consent_reasons(all_failures: Iterable[tuple[str, list[_Failure]]]) -> list[Reason]:
    """Reasons a re-authorization could fix: only from rules whose every failure is fixable."""
    reasons: list[Reason] = []
    for path, failures in all_failures:
        for failure in failures:
            if failure.restricted_orgs:
                reasons.append(
                    Reason(
                        ReasonCode.ORG_RESTRICTED,
                        failure.path,
                        failure.detail,
                        failure.restricted_orgs,
                    )
                )
        if not all(f.consent_fixable for f in failures):
            continue
        scopes = tuple(dict.fromkeys(s for f in failures for s in f.missing_scopes))
        orgs = tuple(dict.fromkeys(o for f in failures for o in f.ungranted_orgs))
        if scopes:
            reasons.append(
                Reason(
                    ReasonCode.MISSING_SCOPES, path, "missing scopes: " + ", ".join(scopes), scopes
                )
            )
        if orgs:
            reasons.append(
                Reason(
                    ReasonCode.ORG_NOT_GRANTED,
                    path,
                    "organization not granted to this app: " + ", ".join(orgs),
                    orgs,
                )
            )
    return reasons


@dataclass(frozen=True, slots=True)
class _Context:
    """What rules are matched against.

    ``broad`` makes org criteria see every membership, including ones that do not count
    (SSO/MFA pending, no_access). Deny rules are matched broadly and ``not`` flips it, so a
    membership that cannot grant access can never dodge a restriction either.
    """

    identity: Identity
    request: RequestFacts
    broad: bool = False


def _match(rule: Rule, ctx: _Context, path: str) -> list[_Failure]:
    """Return the failed criteria of ``rule``; an empty list means the rule matched."""
    failures: list[_Failure] = []
    ident = ctx.identity
    if rule.user is not None and _fold(ident.username) not in rule.users_folded:
        failures.append(_Failure(f"{path}.user", f"user {ident.username} is not listed"))
    if rule.user_id is not None and ident.sub not in rule.user_id:
        failures.append(_Failure(f"{path}.user_id", f"user id {ident.sub} is not listed"))
    # A token caller's min_role must also be within what the token can do, unless the rule
    # names the token roles it accepts (token_role). Deny rules (broad) see the membership
    # role alone, so a weak token can never dodge a restriction.
    capped = not ctx.broad and ident.token_role is not None and rule.token_role is None
    if rule.org is not None:
        folded = rule.orgs_folded
        failures.extend(
            _org_failures(
                ctx,
                lambda o: _fold(o.slug) in folded,
                rule.org,
                rule.min_role,
                f"{path}.org",
                capped=capped,
            )
        )
    if rule.org_id is not None:
        ids = rule.org_id_set
        failures.extend(
            _org_failures(
                ctx,
                lambda o: o.sub in ids,
                rule.org_id,
                rule.min_role,
                f"{path}.org_id",
                capped=capped,
            )
        )
    if rule.scope is not None:
        missing = tuple(s for s in rule.scope if s not in ident.scopes)
        if missing:
            failures.append(
                _Failure(f"{path}.scope", "missing scopes: " + ", ".join(missing), missing)
            )
    if rule.email_domain is not None and not email_in_domains(
        ident.email, ident.email_verified, rule.email_domain
    ):
        failures.append(
            _Failure(f"{path}.email_domain", "email is not a verified address in these domains")
        )
    if rule.email_verified is not None and ident.email_verified != rule.email_verified:
        failures.append(
            _Failure(f"{path}.email_verified", f"email_verified is not {rule.email_verified}")
        )
    if rule.email is not None and not (
        ident.email_verified and ident.email and _fold(ident.email) in rule.emails_folded
    ):
        failures.append(_Failure(f"{path}.email", "email is not a verified address listed"))
    if rule.path is not None and not _path_matches(
        ctx.request.path, rule.path_patterns, ctx.request.fold
    ):
        failures.append(_Failure(f"{path}.path", f"path {ctx.request.path} is not listed"))
    if rule.source_ip is not None and not _ip_in(ctx.request.client_ip, rule.networks):
        failures.append(
            _Failure(
                f"{path}.source_ip",
                f"client address {ctx.request.client_ip or 'unknown'} is not in these networks",
            )
        )
    if rule.pro is not None and ident.is_pro != rule.pro:
        failures.append(_Failure(f"{path}.pro", f"pro is not {rule.pro}"))
    if rule.method is not None and ctx.request.method.upper() not in rule.methods_upper:
        failures.append(_Failure(f"{path}.method", f"method {ctx.request.method} is not listed"))
    if rule.token_role is not None and (
        ident.token_role is None
        or (
            _fold(ident.token_role) not in rule.token_roles_folded
            and not (
                "any" in rule.token_roles_folded and _fold(ident.token_role) in TOKEN_ROLE_REACH
            )
        )
    ):
        failures.append(
            _Failure(f"{path}.token_role", f"token role {ident.token_role or 'none'} is not listed")
        )
    if rule.any_ is not None:
        failures.extend(_match_any(rule.any_, ctx, f"{path}.any"))
    if rule.all_ is not None:
        for index, sub in enumerate(rule.all_):
            failures.extend(_match(sub, ctx, f"{path}.all[{index}]"))
    if rule.not_ is not None and not _match(
        rule.not_, replace(ctx, broad=not ctx.broad), f"{path}.not"
    ):
        failures.append(_Failure(f"{path}.not", "the negated rule matched"))
    return failures


def _match_any(rules: Sequence[Rule], ctx: _Context, path: str) -> list[_Failure]:
    collected: list[_Failure] = []
    for index, sub in enumerate(rules):
        failures = _match(sub, ctx, f"{path}[{index}]")
        if not failures:
            return []
        collected.extend(failures)
    return collected


def _org_failures(
    ctx: _Context,
    selects: Any,
    wanted: tuple[str, ...],
    min_role: str | None,
    path: str,
    *,
    capped: bool = False,
) -> list[_Failure]:
    """One failure (or none) for an org / org_id criterion with an optional min_role.

    ``capped``: the caller is an HF access token whose role must reach ``min_role`` too.
    """
    members: list[Org] = [org for org in ctx.identity.orgs if selects(org)]
    counting = members if ctx.broad else [org for org in members if org.counts]
    label = ", ".join(wanted)
    if min_role is None:
        if counting:
            return []
    else:
        if any(role_at_least(org.role, min_role) for org in counting):
            if not capped:
                return []
            token_role = ctx.identity.token_role or ""
            reach = TOKEN_ROLE_REACH.get(_fold(token_role))
            if reach is not None and role_at_least(reach, min_role):
                return []
            return [
                _Failure(
                    path,
                    f"a {token_role} token acts as {reach or 'no role'} at most, below {min_role}",
                )
            ]
        ungranted = tuple(org.sub for org in counting if not org.granted)
        if ungranted:
            return [
                _Failure(
                    path,
                    f"role in {label} unknown: organization not granted to this app",
                    ungranted_orgs=ungranted,
                )
            ]
        if counting:
            roles = ", ".join(f"{org.slug}={org.role}" for org in counting)
            return [_Failure(path, f"role below {min_role} ({roles})")]
    restricted = tuple(org.sub for org in members if org.security_restrictions)
    if not restricted and members:
        return [_Failure(path, f"member of {label} without access (role {members[0].role})")]
    if restricted:
        pending = sorted({r for org in members for r in org.security_restrictions})
        return [
            _Failure(
                path,
                f"membership of {label} needs {', '.join(pending)} to be completed",
                restricted_orgs=restricted,
            )
        ]
    return [_Failure(path, f"not a member of {label}")]


def _ip_in(text: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether ``text`` is an address inside one of ``networks``; unreadable: no (fail closed).
    An IPv4-mapped IPv6 address (::ffff:192.0.2.1) counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _fold(value: str) -> str:
    """Lower-case A-Z only, as DNS and HF names compare.

    Not str.casefold(): it maps other characters onto ASCII letters ("ſ" -> "s", the
    Kelvin sign "\u212a" -> "k"), so a look-alike user, org or email domain could pass
    for a listed one.
    """
    return value.translate(_ASCII_LOWER)


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(_fold(v) for v in values)


def email_in_domains(email: str | None, verified: bool, domains: Iterable[str]) -> bool:
    """True for a verified address with exactly one ``@`` whose domain is listed.

    ``example.com`` matches that domain only; ``*.example.com`` or ``.example.com``
    match its subdomains on label boundaries (never ``evilexample.com``).
    """
    if not email or not verified or email.count("@") != 1:
        return False
    local, domain = email.split("@")
    domain = _fold(domain)
    if not local or not domain or domain.endswith(".") or any(c.isspace() for c in email):
        return False
    for wanted in domains:
        wanted = _fold(wanted)
        if wanted.startswith(("*.", ".")):
            suffix = wanted[wanted.index(".") :]
            if domain.endswith(suffix) and len(domain) > len(suffix):
                return True
        elif domain == wanted:
            return True
    return False


__all__ = [
    "AUTHENTICATED",
    "BUILTIN_POLICIES",
    "PUBLIC",
    "ROLE_ORDER",
    "Decision",
    "Policy",
    "Reason",
    "ReasonCode",
    "RequestFacts",
    "Rule",
    "evaluate",
]
