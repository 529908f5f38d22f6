"""The fake provider's state: its world, live credentials, site sessions and consents.

:class:`ProviderState` is all the request handlers depend on (through ``STATE_KEY``).
``FakeHF`` extends it with the app and server; the mutation helpers and observation
counters tests use are defined here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.devtools.fake_hf_claims import id_token_claims, tamper_claims
from gateway.devtools.fake_hf_fixture import FixtureError, validate_world
from gateway.devtools.fake_hf_jwt import SigningKeys
from gateway.devtools.fake_hf_model import FakeClient, FakeOrg, FakeSettings, FakeUser
from gateway.devtools.fake_hf_tokens import AccessToken, Grant, TokenStore

log = logging.getLogger("gateway.devtools.fake_hf")

SITE_COOKIE = "token"
"""Name of huggingface.co's site-session cookie (HF-OAUTH.md §3)."""


@dataclass(frozen=True)
class Consent:
    """What a user has approved for one app so far."""

    scopes: frozenset[str]
    org_subs: frozenset[str]

    def covers(self, scopes: Iterable[str], org_subs: Iterable[str]) -> bool:
        """True when a new request asks for nothing beyond this consent."""
        return self.scopes.issuperset(scopes) and self.org_subs.issuperset(org_subs)


@dataclass(frozen=True)
class SiteSession:
    """A signed-in browser on the fake huggingface.co."""

    username: str
    login_time: int


class ProviderState:
    """Users, orgs, apps, settings and everything issued or remembered at runtime."""

    def __init__(
        self,
        users: Iterable[FakeUser],
        orgs: Iterable[FakeOrg],
        clients: Iterable[FakeClient],
        settings: FakeSettings | None,
        issuer: str | None,
        clock: Callable[[], float],
    ) -> None:
        users, orgs, clients = list(users), list(orgs), list(clients)
        if problems := validate_world(users, orgs, clients):
            raise FixtureError(problems)
        self.users: dict[str, FakeUser] = {u.username: u for u in users}
        self.orgs: dict[str, FakeOrg] = {o.slug: o for o in orgs}
        self.clients: dict[str, FakeClient] = {c.client_id: c for c in clients}
        self.settings: FakeSettings = settings or FakeSettings()
        self.issuer: str = (issuer or "").rstrip("/")
        self.clock = clock
        self.tokens = TokenStore(clock)
        self.keys = SigningKeys()
        self.consents: dict[tuple[str, str], Consent] = {}
        self.site_sessions: dict[str, SiteSession] = {}
        self.token_requests: list[dict[str, Any]] = []
        self.authorize_requests: list[dict[str, Any]] = []
        self.cimd_fetches: list[str] = []
        self.userinfo_calls = 0
        self.whoami_calls = 0

    # ------------------------------------------------------------------ lookups

    def issuer_for(self, request: web.BaseRequest) -> str:
        """``issuer`` if set, else the origin the request came to (no trailing slash)."""
        return self.issuer or str(request.url.origin())

    def now(self) -> int:
        """The clock in whole seconds (JWT times)."""
        return int(self.clock())

    def memberships(self, user: FakeUser) -> list[FakeOrg]:
        """The orgs ``user`` belongs to (any role, ``no_access`` included), fixture order."""
        return [org for slug, org in self.orgs.items() if slug in user.roles]

    def member_org_subs(self, user: FakeUser) -> frozenset[str]:
        """The ``sub`` of every org ``user`` belongs to."""
        return frozenset(org.sub for org in self.memberships(user))

    def personal_token(self, token: str) -> tuple[FakeUser, str] | None:
        """The owner and role of a personal access token, if it exists."""
        for user in self.users.values():
            if (role := user.access_tokens.get(token)) is not None:
                return user, role
        return None

    def oauth_token(self, token: str) -> tuple[FakeUser, AccessToken] | None:
        """The owner and record of a live OAuth access token."""
        record = self.tokens.access(token)
        user = self.users.get(record.grant.username) if record else None
        if record is None or user is None:
            return None
        return user, record

    def id_token(self, grant: Grant, issuer: str) -> str:
        """A signed ID token for ``grant``, with any defect ``settings.id_token_tamper`` names."""
        now = self.now()
        claims = id_token_claims(self.users[grant.username], grant, issuer, now)
        tamper = self.settings.id_token_tamper
        claims = tamper_claims(claims, tamper, now)
        return self.keys.sign(
            claims, with_kid=self.settings.id_token_kid, forge=tamper == "signature"
        )

    # ------------------------------------------------------------ site sessions

    def site_session(self, cookie: str | None) -> SiteSession | None:
        """The signed-in account behind a ``token`` cookie value, if still valid."""
        session = self.site_sessions.get(cookie) if cookie else None
        if session is None or session.username not in self.users:
            return None
        return session

    def start_site_session(self, username: str) -> tuple[str, SiteSession]:
        """Sign ``username`` in; return the new cookie value and session."""
        value = secrets.token_urlsafe(32)
        session = SiteSession(username, login_time=self.now())
        self.site_sessions[value] = session
        return value, session

    def consent(self, username: str, client_id: str) -> Consent | None:
        """What ``username`` has approved for ``client_id``."""
        return self.consents.get((username, client_id))

    def remember_consent(
        self, username: str, client_id: str, scopes: Iterable[str], org_subs: Iterable[str]
    ) -> None:
        """Record an explicit approval: scopes accumulate, the org choice replaces the old one."""
        old = self.consents.get((username, client_id))
        all_scopes = frozenset(scopes) | (old.scopes if old else frozenset())
        self.consents[(username, client_id)] = Consent(all_scopes, frozenset(org_subs))

    # ------------------------------------------------------- mutation helpers

    def set_role(self, username: str, org_slug: str, role: str | None) -> None:
        """Make ``username`` a member of ``org_slug`` with ``role``; None ends the membership.

        Takes effect on the next userinfo/whoami call; existing grants keep their org list.
        Raises KeyError for an unknown user or org.
        """
        user = self.users[username]
        if org_slug not in self.orgs:
            raise KeyError(org_slug)
        if role is None:
            user.roles.pop(org_slug, None)
            user.security_restrictions.pop(org_slug, None)
        else:
            user.roles[org_slug] = role

    def revoke_user_tokens(self, username: str) -> None:
        """Invalidate the user's OAuth codes, access and refresh tokens (as revoking the
        app in settings would). Personal access tokens are left alone."""
        self.tokens.revoke_user(username)
        log.info("revoked OAuth tokens of %s", username)

    def forget_consent(self, username: str) -> None:
        """Forget every app approval of ``username``: the consent page shows again."""
        for key in [k for k in self.consents if k[0] == username]:
            del self.consents[key]

    def sign_out(self, username: str) -> None:
        """End every site session of ``username`` (their ``token`` cookies stop working)."""
        for value in [v for v, s in self.site_sessions.items() if s.username == username]:
            del self.site_sessions[value]


STATE_KEY = web.AppKey("fake_hf_state", ProviderState)
"""Where the fake's app keeps its state; handlers read it from ``request.app``."""
