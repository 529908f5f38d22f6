"""Hugging Face specifics on top of generic OIDC.

- ``orgIds=`` on the authorize request asks the user to grant those orgs to the app;
- orgs, roles and isPro come from ``/oauth/userinfo`` (HF's ID token has none);
  ``roleInOrg`` is present only for orgs granted to the app (or with read-memberships);
- when userinfo has no ``orgs`` at all, ``/api/whoami-v2`` supplies them (where the
  slug is ``name``, not ``preferred_username``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from gateway.errors import TokenRejected
from gateway.identity import Identity, Org
from gateway.providers.base import TokenSet
from gateway.providers.oidc import OIDCProvider, _standard_identity

_LEGACY_RESTRICTIONS = (("pendingSSO", "sso"), ("missingMFA", "mfa"))
HF_USER_TOKEN_PREFIX = "hf_"  # noqa: S105 - a token prefix, not a secret
REFUSED_PREFIXES = ("hf_jwt_",)
"""Trusted-publisher tokens are scoped to one repository, never a person's identity."""


def whoami_identity(whoami: Mapping[str, Any], api_url: str) -> Identity:
    """An Identity from whoami-v2: slug = name, display name = fullname, avatar resolved
    against the API origin; the token's role (read, write, fineGrained) as token_role.
    whoami lists no OAuth scopes, so a token identity has none."""
    auth = whoami.get("auth") or {}
    access = auth.get("accessToken") or {} if isinstance(auth, dict) else {}
    role = access.get("role") if isinstance(access, dict) else None
    email = whoami.get("email")
    avatar = whoami.get("avatarUrl")
    return Identity(
        sub=str(whoami["id"]),
        username=str(whoami["name"]),
        name=str(whoami.get("fullname") or ""),
        email=email if isinstance(email, str) and email else None,
        email_verified=whoami.get("emailVerified") is True,
        picture=urljoin(api_url + "/", avatar) if isinstance(avatar, str) and avatar else None,
        is_pro=whoami.get("isPro") is True,
        orgs=tuple(whoami_orgs(whoami)),
        scopes=frozenset(),
        token_role=role if isinstance(role, str) and role else None,
    )


class HuggingFaceProvider(OIDCProvider):
    def extra_authorize_params(self, org_ids: Sequence[str]) -> list[tuple[str, str]]:
        wanted = list(dict.fromkeys((*self._config.org_ids, *org_ids)))
        return [("orgIds", ",".join(wanted))] if wanted else []

    async def identity_from_claims(self, info: Mapping[str, Any], tokens: TokenSet) -> Identity:
        raw_orgs = info.get("orgs")
        if isinstance(raw_orgs, list):
            orgs = tuple(userinfo_orgs(raw_orgs))
        else:
            orgs = tuple(whoami_orgs(await self.whoami(tokens.access_token)))
        return _standard_identity(info, tokens, orgs, is_pro=info.get("isPro") is True)

    async def identity_for_token(self, token: str) -> Identity:
        """The user behind a Hugging Face token (personal ``hf_...`` or OAuth
        ``hf_oauth_...``), read from whoami-v2. Org tokens, apps and anything that is not
        an HF user token are refused."""
        if not token.startswith(HF_USER_TOKEN_PREFIX) or token.startswith(REFUSED_PREFIXES):
            raise TokenRejected("not a Hugging Face user access token")
        whoami = await self.whoami(token)
        if whoami.get("type") != "user" or not whoami.get("id") or not whoami.get("name"):
            raise TokenRejected("only tokens of Hugging Face users are accepted")
        return whoami_identity(whoami, self._config.api_url)

    async def whoami(self, token: str) -> dict[str, Any]:
        url = self._config.api_url.rstrip("/") + "/api/whoami-v2"
        return await self._get_json(url, "whoami-v2", bearer=token, reject_401=True)


def userinfo_orgs(entries: Iterable[Any]) -> Iterable[Org]:
    """Orgs from userinfo ``orgs[]``: slug = preferred_username, role = roleInOrg."""
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("sub"):
            continue
        yield Org(
            sub=str(entry["sub"]),
            slug=str(entry.get("preferred_username") or entry.get("name") or entry["sub"]),
            name=str(entry.get("name") or ""),
            role=_role(entry.get("roleInOrg")),
            security_restrictions=_restrictions(entry),
            plan=_plan(entry),
        )


def whoami_orgs(whoami: Mapping[str, Any]) -> Iterable[Org]:
    """Orgs from whoami-v2 ``orgs[]``: slug = name, display name = fullname."""
    for entry in whoami.get("orgs") or ():
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        yield Org(
            sub=str(entry["id"]),
            slug=str(entry.get("name") or entry["id"]),
            name=str(entry.get("fullname") or ""),
            role=_role(entry.get("roleInOrg")),
            security_restrictions=_restrictions(entry),
            plan=_plan(entry),
        )


def _role(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _restrictions(entry: Mapping[str, Any]) -> tuple[str, ...]:
    found = [str(r) for r in entry.get("securityRestrictions") or () if r]
    found += [name for flag, name in _LEGACY_RESTRICTIONS if entry.get(flag) is True]
    return tuple(dict.fromkeys(found))


def _plan(entry: Mapping[str, Any]) -> str | None:
    plan = entry.get("plan")
    if isinstance(plan, str) and plan:
        return plan
    enterprise = entry.get("isEnterprise")
    if enterprise is True:
        return "enterprise"
    return enterprise if isinstance(enterprise, str) and enterprise else None
