"""What the fake says about a user: ID-token claims, userinfo and whoami-v2 bodies.

Shapes follow HF-OAUTH.md §4.3 (ID token), §5 (userinfo) and §6 (whoami-v2). Note the
naming flip: userinfo calls the org slug ``preferred_username`` and the display name
``name``; whoami calls the slug ``name`` and the display name ``fullname``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.devtools.fake_hf_jwt import ID_TOKEN_LIFETIME
from gateway.devtools.fake_hf_model import TAMPER_MODES, FakeOrg, FakeUser
from gateway.devtools.fake_hf_tokens import AccessToken, Grant

JSON = dict[str, Any]

PAT_CREATED_AT = "2025-01-01T00:00:00.000Z"
"""``createdAt`` reported for every fixture personal access token."""


def avatar_path(sub: str) -> str:
    """The site-relative avatar URL of a user or org (whoami's ``avatarUrl``)."""
    return f"/avatars/{hashlib.sha256(sub.encode()).hexdigest()[:32]}.svg"


def iso8601(timestamp: float) -> str:
    """``2025-01-01T00:00:00.000Z`` style, as the Hub API writes dates."""
    text = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# ------------------------------------------------------------------------ ID token


def id_token_claims(user: FakeUser, grant: Grant, issuer: str, now: int) -> JSON:
    """The §4.3 claim set: identity, ``nonce`` when sent, profile and email by scope."""
    claims: JSON = {
        "iss": issuer,
        "aud": grant.client_id,
        "sub": user.sub,
        "auth_time": grant.auth_time,
        "iat": now,
        "exp": now + ID_TOKEN_LIFETIME,
    }
    if grant.nonce is not None:
        claims["nonce"] = grant.nonce
    if grant.has("profile"):
        claims.update(_profile_claims(user, issuer))
    if grant.has("email"):
        claims.update(email=user.email, email_verified=user.email_verified)
    return claims


def tamper_claims(claims: JSON, mode: str | None, now: int) -> JSON:
    """Apply an ``id_token_tamper`` defect that lives in the claims (all but ``signature``)."""
    if mode is not None and mode not in TAMPER_MODES:
        raise ValueError(f"id_token_tamper {mode!r} is not one of {sorted(TAMPER_MODES)}")
    changed = dict(claims)
    if mode == "nonce":
        changed["nonce"] = f"not-{claims.get('nonce', 'the-nonce')}"
    elif mode == "aud":
        changed["aud"] = f"not-{claims['aud']}"
    elif mode == "iss":
        changed["iss"] = f"{claims['iss']}.evil.example"
    elif mode == "expired":
        changed.update(iat=now - 2 * ID_TOKEN_LIFETIME, exp=now - ID_TOKEN_LIFETIME)
    return changed


def _profile_claims(user: FakeUser, issuer: str) -> JSON:
    return {
        "name": user.name,
        "preferred_username": user.username,
        "profile": f"{issuer}/{user.username}",
        "picture": issuer + avatar_path(user.sub),
        "website": user.website,
    }


# ------------------------------------------------------------------------ userinfo


def userinfo_body(
    user: FakeUser, orgs: Iterable[FakeOrg], grant: Grant, issuer: str, *, omit_orgs: bool
) -> JSON:
    """The §5 userinfo document, gated by the grant's scopes."""
    profile = _profile_claims(user, issuer) if grant.has("profile") else {}
    body: JSON = {"sub": user.sub}
    body.update({k: profile[k] for k in ("name", "preferred_username") if k in profile})
    if grant.has("email"):
        body.update(email_verified=user.email_verified, email=user.email)
    body["isPro"] = user.is_pro
    body.update({k: profile[k] for k in ("picture", "profile", "website") if k in profile})
    if grant.has("read-billing"):
        body["canPay"] = user.can_pay
    if not omit_orgs:
        body["orgs"] = [_userinfo_org(user, org, grant, issuer) for org in orgs]
    return body


def _userinfo_org(user: FakeUser, org: FakeOrg, grant: Grant, issuer: str) -> JSON:
    granted = org.sub in grant.org_subs
    entry: JSON = {
        "sub": org.sub,
        "name": org.name,
        "preferred_username": org.slug,
        "picture": issuer + avatar_path(org.sub),
    }
    if org.plan is not None:
        entry["plan"] = org.plan
    if granted or grant.has("read-memberships"):
        entry["roleInOrg"] = user.roles[org.slug]
    if granted and grant.has("read-billing"):
        entry["canPay"] = org.can_pay
    if restrictions := user.security_restrictions.get(org.slug):
        entry["securityRestrictions"] = list(restrictions)
    return entry


# ------------------------------------------------------------------------ whoami-v2


def whoami_body(user: FakeUser, orgs: Iterable[FakeOrg], auth: JSON, grant: Grant | None) -> JSON:
    """The §6 whoami-v2 document. ``grant`` is None for a personal access token, which
    sees every role; an OAuth token sees email and roles as userinfo would."""
    body: JSON = {"type": "user", "id": user.sub, "name": user.username, "fullname": user.name}
    if grant is None or grant.has("email"):
        body.update(email=user.email, emailVerified=user.email_verified)
    body.update(
        canPay=user.can_pay,
        isPro=user.is_pro,
        periodEnd=None,
        avatarUrl=avatar_path(user.sub),
        billingMode="postpaid",
        orgs=[_whoami_org(user, org, grant) for org in orgs],
        auth=auth,
    )
    return body


def _whoami_org(user: FakeUser, org: FakeOrg, grant: Grant | None) -> JSON:
    entry: JSON = {
        "type": "org",
        "id": org.sub,
        "name": org.slug,
        "fullname": org.name,
        "email": None,
        "canPay": org.can_pay,
        "avatarUrl": avatar_path(org.sub),
        "periodEnd": None,
    }
    if org.plan is not None:
        entry["plan"] = org.plan
    if grant is None or org.sub in grant.org_subs or grant.has("read-memberships"):
        entry["roleInOrg"] = user.roles[org.slug]
    if restrictions := user.security_restrictions.get(org.slug):
        entry["securityRestrictions"] = list(restrictions)
    return entry


def pat_auth(user: FakeUser, role: str) -> JSON:
    """whoami's ``auth`` block for a personal access token."""
    access: JSON = {
        "displayName": f"{user.username}-{role}",
        "role": role,
        "createdAt": PAT_CREATED_AT,
    }
    if role == "fineGrained":
        access["fineGrained"] = _fine_grained(gated=True)
    return {"type": "access_token", "accessToken": access}


def oauth_auth(token: AccessToken) -> JSON:
    """whoami's ``auth`` block for an OAuth token: no ``displayName`` (HF-OAUTH.md §6)."""
    access: JSON = {
        "role": "fineGrained",
        "createdAt": iso8601(token.issued_at),
        "fineGrained": _fine_grained(gated=token.grant.has("gated-repos")),
    }
    return {"type": "access_token", "accessToken": access, "expiresAt": iso8601(token.expires_at)}


def _fine_grained(*, gated: bool) -> JSON:
    return {"canReadGatedRepos": gated, "global": [], "scoped": []}
