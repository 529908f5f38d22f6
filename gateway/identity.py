"""Identity: who is making a request, as every other module sees it.

Providers build an Identity from userinfo / whoami; sessions store it; policies judge it;
headers and the assertion JWT publish it. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROLE_ORDER: tuple[str, ...] = ("read", "contributor", "write", "admin")
"""Hugging Face org roles from least to most privileged."""

_ROLE_RANK = {role: rank for rank, role in enumerate(ROLE_ORDER)}
NO_ACCESS = "no_access"
"""HF's role for a member who may not use the org's resources: never counts as a member."""


def role_at_least(role: str | None, minimum: str) -> bool:
    """True when ``role`` is a known role at or above ``minimum``.

    Unknown roles (``no_access``, future values, None) never satisfy a minimum.
    """
    if role is None or role not in _ROLE_RANK:
        return False
    return _ROLE_RANK[role] >= _ROLE_RANK[minimum]


@dataclass(frozen=True, slots=True)
class Org:
    """An organisation the user belongs to.

    ``role`` is None when the org was not granted to the app (HF lists the membership but
    leaves out ``roleInOrg``). An org with unmet ``security_restrictions`` (SSO, MFA, IP,
    token policy) or the role ``no_access`` does not count for any rule that grants access.
    """

    sub: str
    slug: str
    name: str = ""
    role: str | None = None
    security_restrictions: tuple[str, ...] = ()
    plan: str | None = None

    @property
    def counts(self) -> bool:
        """Whether the membership can grant access: no pending restrictions, not no_access."""
        return not self.security_restrictions and self.role != NO_ACCESS

    @property
    def granted(self) -> bool:
        return self.role is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "slug": self.slug,
            "name": self.name,
            "role": self.role,
            "security_restrictions": list(self.security_restrictions),
            "plan": self.plan,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Org:
        return cls(
            sub=str(data["sub"]),
            slug=str(data["slug"]),
            name=str(data.get("name") or ""),
            role=data.get("role"),
            security_restrictions=tuple(data.get("security_restrictions") or ()),
            plan=data.get("plan"),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    """A signed-in user (by session cookie or by a Hugging Face access token).

    ``scopes`` are the OAuth scopes actually granted (the token response's ``scope``),
    ``token_role`` is set only for HF personal access tokens (read, write, fineGrained).
    """

    sub: str
    username: str
    name: str = ""
    email: str | None = None
    email_verified: bool = False
    picture: str | None = None
    is_pro: bool = False
    orgs: tuple[Org, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_role: str | None = None

    @property
    def counting_orgs(self) -> tuple[Org, ...]:
        """Orgs that count for policies and X-Forwarded-Groups."""
        return tuple(org for org in self.orgs if org.counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "username": self.username,
            "name": self.name,
            "email": self.email,
            "email_verified": self.email_verified,
            "picture": self.picture,
            "is_pro": self.is_pro,
            "orgs": [org.to_json() for org in self.orgs],
            "scopes": sorted(self.scopes),
            "token_role": self.token_role,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        return cls(
            sub=str(data["sub"]),
            username=str(data["username"]),
            name=str(data.get("name") or ""),
            email=data.get("email"),
            email_verified=bool(data.get("email_verified", False)),
            picture=data.get("picture"),
            is_pro=bool(data.get("is_pro", False)),
            orgs=tuple(Org.from_json(o) for o in data.get("orgs") or ()),
            scopes=frozenset(data.get("scopes") or ()),
            token_role=data.get("token_role"),
        )
