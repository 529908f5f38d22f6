"""The caller, as a verified assertion describes them, and the shapes HF app code expects.

The assertion (docs/upstreams.md §7) carries sub, preferred_username, name, email, orgs
``[{sub, slug, role}]`` and scope. ``to_oauth_info()`` / ``to_oauth_user_info()`` build
huggingface_hub's ``OAuthInfo`` / ``OAuthUserInfo`` / ``OAuthOrgInfo`` from them and
``to_gradio_profile()`` Gradio's ``gr.OAuthProfile``. Fields the assertion does not carry get
the neutral value documented in docs/client.md ("What cannot be filled in").
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hf_gateway_client.errors import InvalidAssertion
from hf_gateway_client.shapes import (
    OAuthInfo,
    OAuthOrgInfo,
    OAuthProfileLike,
    OAuthUserInfo,
    oauth_types,
    profile_type,
)

ROLE_ORDER = ("read", "contributor", "write", "admin")
"""Hugging Face org roles from least to most privileged (as the gateway ranks them)."""

HUB_URL = "https://huggingface.co"


@dataclass(frozen=True, slots=True)
class GatewayOrg:
    """An org that counts for the caller; ``role`` is None when not granted to the app."""

    sub: str
    slug: str
    role: str | None
    name: str = ""
    """The org's full name ("" from gateways that do not send it; the slug stands in)."""

    @property
    def display_name(self) -> str:
        return self.name or self.slug

    def role_at_least(self, minimum: str) -> bool:
        if minimum not in ROLE_ORDER:
            raise ValueError(f"unknown role {minimum!r}; one of {', '.join(ROLE_ORDER)}")
        return self.role in ROLE_ORDER and ROLE_ORDER.index(self.role) >= ROLE_ORDER.index(minimum)


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """A verified X-Gateway-Assertion. Build it with AssertionVerifier, never by hand."""

    sub: str
    username: str
    name: str
    email: str | None
    orgs: tuple[GatewayOrg, ...]
    scopes: frozenset[str]
    issuer: str
    audience: str
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    token_id: str
    claims: Mapping[str, Any] = field(repr=False)
    """Every claim of the token, for claims a later gateway adds."""

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> GatewayIdentity:
        """Raises InvalidAssertion("claims") for a claim of the wrong type."""
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return cls(
            sub=_text(claims, "sub", required=True),
            username=_text(claims, "preferred_username", required=True),
            name=_text(claims, "name"),
            email=_optional_text(claims, "email"),
            orgs=_orgs(claims.get("orgs", [])),
            scopes=frozenset(_text(claims, "scope").split()),
            issuer=_text(claims, "iss", required=True),
            audience=aud if isinstance(aud, str) else "",
            issued_at=_time(claims, "iat"),
            expires_at=_time(claims, "exp"),
            token_id=_text(claims, "jti"),
            claims=dict(claims),
        )

    def org(self, slug: str) -> GatewayOrg | None:
        """The org with this slug (ignoring case, as the gateway's policies do)."""
        wanted = slug.casefold()
        return next((o for o in self.orgs if o.slug.casefold() == wanted), None)

    def has_role(self, slug: str, minimum: str = "read") -> bool:
        """True when the caller is in org ``slug`` with ``minimum`` or a higher role."""
        org = self.org(slug)
        return org is not None and org.role_at_least(minimum)

    # ----------------------------------------------------------------- HF shapes

    def to_oauth_user_info(self, *, hub_url: str = HUB_URL) -> OAuthUserInfo:
        """huggingface_hub.OAuthUserInfo (the real class when huggingface_hub is installed)."""
        _, user_info, org_info = oauth_types()
        return user_info(
            sub=self.sub,
            name=self.name,
            preferred_username=self.username,
            email_verified=_optional_bool(self.claims, "email_verified"),
            email=self.email,
            picture=_text(self.claims, "picture"),
            profile=f"{hub_url.rstrip('/')}/{self.username}",
            website=_optional_text(self.claims, "website"),
            is_pro=_optional_bool(self.claims, "is_pro") is True,
            can_pay=None,
            orgs=[_org_info(org_info, org) for org in self.orgs],
        )

    def to_oauth_info(
        self,
        access_token: str = "",
        *,
        state: str | None = None,
        hub_url: str = HUB_URL,
    ) -> OAuthInfo:
        """huggingface_hub.OAuthInfo. ``access_token`` is the X-Forwarded-Access-Token the
        gateway sends on routes with ``pass_access_token`` ("" without it); it is good for
        this request, so ``access_token_expires_at`` is the assertion's own expiry."""
        info, _, _ = oauth_types()
        return info(
            access_token=access_token,
            access_token_expires_at=self.expires_at,
            user_info=self.to_oauth_user_info(hub_url=hub_url),
            state=state,
            scope=" ".join(sorted(self.scopes)),
        )

    def to_userinfo(self, *, hub_url: str = HUB_URL) -> dict[str, Any]:
        """The caller as HF's OpenID userinfo JSON (camelCase HF fields, as HF sends them)."""
        return {
            "sub": self.sub,
            "name": self.name,
            "preferred_username": self.username,
            "profile": f"{hub_url.rstrip('/')}/{self.username}",
            "picture": _text(self.claims, "picture"),
            "website": _optional_text(self.claims, "website") or "",
            "email": self.email,
            "email_verified": _optional_bool(self.claims, "email_verified"),
            "isPro": _optional_bool(self.claims, "is_pro") is True,
            "orgs": [
                {
                    "sub": org.sub,
                    "name": org.display_name,
                    "preferred_username": org.slug,
                    "picture": "",
                    "roleInOrg": org.role,
                }
                for org in self.orgs
            ],
        }

    def to_gradio_profile(self, *, hub_url: str = HUB_URL) -> OAuthProfileLike:
        """gr.OAuthProfile (the real class when gradio is installed): a dict of the userinfo
        with ``name``, ``username``, ``profile`` and ``picture`` attributes."""
        return profile_type()(self.to_userinfo(hub_url=hub_url))


def _org_info(cls: type[OAuthOrgInfo], org: GatewayOrg) -> OAuthOrgInfo:
    # Older gateways name orgs by slug only: then the slug stands in for the full name.
    # Only orgs without pending SSO/MFA restrictions reach the token, hence [].
    return cls(
        sub=org.sub,
        name=org.display_name,
        preferred_username=org.slug,
        picture="",
        plan=None,
        can_pay=None,
        role_in_org=org.role,
        security_restrictions=[],
    )


def _bad(name: str, expected: str) -> InvalidAssertion:
    return InvalidAssertion("claims", f"claim {name!r} must be {expected}")


def _text(claims: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = claims.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _bad(name, "a non-empty string" if required else "a string")
    return value


def _optional_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise _bad(name, "a string or null")
    return value


def _optional_bool(claims: Mapping[str, Any], name: str) -> bool | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, bool):
        raise _bad(name, "a boolean or null")
    return value


def _time(claims: Mapping[str, Any], name: str) -> datetime.datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, "a number")
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)


def _orgs(value: Any) -> tuple[GatewayOrg, ...]:
    if not isinstance(value, list):
        raise _bad("orgs", "a list")
    orgs = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise _bad("orgs", "a list of objects")
        role = entry.get("role")
        if role is not None and not isinstance(role, str):
            raise _bad("orgs[].role", "a string or null")
        orgs.append(
            GatewayOrg(
                sub=_text(entry, "sub", required=True),
                slug=_text(entry, "slug", required=True),
                role=role,
                name=_text(entry, "name"),
            )
        )
    return tuple(orgs)
