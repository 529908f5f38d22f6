"""Policies: inline YAML in, a Decision with machine-readable reasons out.

Every table row states whether the request is allowed and the exact reasons
(``code rule-path``), so each restriction is shown both holding and failing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity import ROLE_ORDER, Identity, role_at_least
from gateway.policy import (
    BUILTIN_POLICIES,
    Decision,
    Policy,
    Reason,
    ReasonCode,
    RequestFacts,
    Rule,
    evaluate,
)
from tests.unit.conftest import identity, org

NOW = datetime(2025, 1, 1, tzinfo=UTC)

ALICE = identity("alice")
ACME_READ = identity("alice", orgs=[org("acme", "read")])
ACME_WRITE = identity("alice", orgs=[org("acme", "write")])
ACME_UNGRANTED = identity("alice", orgs=[org("acme")])
ACME_SSO = identity("alice", orgs=[org("acme", "admin", restrictions=["sso"])])


def _policy(text: str) -> Policy:
    return Policy.model_validate(yaml.safe_load(text))


def _decide(text: str, who: Identity | None, method: str = "GET") -> Decision:
    return evaluate(_policy(text), who, RequestFacts(method=method, path="/"), NOW)


def _reasons(decision: Decision) -> list[str]:
    return [f"{r.code.value} {r.rule}".rstrip() for r in decision.reasons]


def _row(
    policy: str,
    who: Identity | None,
    allowed: bool,
    reasons: list[str],
    *,
    id: str,
    method: str = "GET",
) -> Any:
    return pytest.param(policy, who, method, allowed, reasons, id=id)


NO_MATCH = "no_matching_allow"

CRITERIA = [
    # --- authenticated
    _row("allow: [{authenticated: true}]", ALICE, True, ["allowed allow[0]"], id="authenticated"),
    _row("allow: [{authenticated: true}]", None, False, ["unauthenticated"], id="anonymous"),
    # --- user: listed names, ignoring case
    _row("allow: [{user: [bob, alice]}]", ALICE, True, ["allowed allow[0]"], id="user listed"),
    _row("allow: [{user: ALICE}]", ALICE, True, ["allowed allow[0]"], id="user in other case"),
    _row(
        "allow: [{user: alice}]",
        identity("Alice"),
        True,
        ["allowed allow[0]"],
        id="username in other case",
    ),
    _row(
        "allow: [{user: bob}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].user"],
        id="user not listed",
    ),
    _row(
        "allow: [{user: alice}]",
        identity("alice2"),
        False,
        [NO_MATCH, "rule_failed allow[0].user"],
        id="user name prefix is not the user",
    ),
    _row(
        "allow: [{user: sam}]",
        identity("\u017fam"),
        False,
        [NO_MATCH, "rule_failed allow[0].user"],
        id="non-ASCII look-alike of a listed user",
    ),
    # --- user_id: exact
    _row("allow: [{user_id: user-id-alice}]", ALICE, True, ["allowed allow[0]"], id="user_id"),
    _row(
        "allow: [{user_id: USER-ID-ALICE}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].user_id"],
        id="user_id is case-sensitive",
    ),
    _row(
        "allow: [{user_id: user-id-alice}]",
        identity("alice", sub="someone-else"),
        False,
        [NO_MATCH, "rule_failed allow[0].user_id"],
        id="same username, other user_id",
    ),
    # --- org: slug, ignoring case; only orgs without security restrictions count
    _row("allow: [{org: acme}]", ACME_READ, True, ["allowed allow[0]"], id="org member"),
    _row("allow: [{org: ACME}]", ACME_READ, True, ["allowed allow[0]"], id="org in other case"),
    _row(
        "allow: [{org: acme}]",
        identity("alice", orgs=[org("Acme", "read")]),
        True,
        ["allowed allow[0]"],
        id="org slug in other case",
    ),
    _row(
        "allow: [{org: [beta, acme]}]", ACME_READ, True, ["allowed allow[0]"], id="one of two orgs"
    ),
    _row(
        "allow: [{org: acme}]",
        ACME_UNGRANTED,
        True,
        ["allowed allow[0]"],
        id="org not granted still counts without min_role",
    ),
    _row(
        "allow: [{org: acme}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].org"],
        id="not an org member",
    ),
    _row(
        "allow: [{org: acme}]",
        identity("alice", orgs=[org("acme-labs", "admin")]),
        False,
        [NO_MATCH, "rule_failed allow[0].org"],
        id="org slug prefix is not the org",
    ),
    _row(
        "allow: [{org: acme}]",
        identity("alice", orgs=[org("acme", "admin", restrictions=["sso", "mfa"])]),
        False,
        [NO_MATCH, "rule_failed allow[0].org", "org_restricted allow[0].org"],
        id="org with security restrictions does not count",
    ),
    # --- org_id: exact sub
    _row("allow: [{org_id: org-id-acme}]", ACME_READ, True, ["allowed allow[0]"], id="org_id"),
    _row(
        "allow: [{org_id: org-id-acme}]",
        identity("alice", orgs=[org("renamed", "read", sub="org-id-acme")]),
        True,
        ["allowed allow[0]"],
        id="org_id survives a slug rename",
    ),
    _row(
        "allow: [{org_id: ORG-ID-ACME}]",
        ACME_READ,
        False,
        [NO_MATCH, "rule_failed allow[0].org_id"],
        id="org_id is case-sensitive",
    ),
    _row(
        "allow: [{org_id: org-id-acme}]",
        identity("alice", orgs=[org("acme", "read", sub="org-id-other")]),
        False,
        [NO_MATCH, "rule_failed allow[0].org_id"],
        id="same slug, other org_id",
    ),
    _row(
        "allow: [{org_id: org-id-acme}]",
        ACME_SSO,
        False,
        [NO_MATCH, "rule_failed allow[0].org_id", "org_restricted allow[0].org_id"],
        id="org_id with security restrictions does not count",
    ),
    # --- min_role
    _row(
        "allow: [{org: acme, min_role: write}]",
        ACME_WRITE,
        True,
        ["allowed allow[0]"],
        id="role meets min_role",
    ),
    _row(
        "allow: [{org: acme, min_role: write}]",
        ACME_READ,
        False,
        [NO_MATCH, "rule_failed allow[0].org"],
        id="role below min_role",
    ),
    _row(
        "allow: [{org: acme, min_role: read}]",
        identity("alice", orgs=[org("acme", "no_access")]),
        False,
        [NO_MATCH, "rule_failed allow[0].org"],
        id="unknown role no_access never satisfies",
    ),
    _row(
        "allow: [{org: [acme, beta], min_role: admin}]",
        identity("alice", orgs=[org("acme", "read"), org("beta", "admin")]),
        True,
        ["allowed allow[0]"],
        id="role in any listed org",
    ),
    _row(
        "allow: [{org: acme, min_role: admin}]",
        identity("alice", orgs=[org("acme", "read"), org("beta", "admin")]),
        False,
        [NO_MATCH, "rule_failed allow[0].org"],
        id="role in an unlisted org does not count",
    ),
    _row(
        "allow: [{org_id: org-id-acme, min_role: contributor}]",
        identity("alice", orgs=[org("acme", "contributor")]),
        True,
        ["allowed allow[0]"],
        id="min_role with org_id",
    ),
    _row(
        "allow: [{org: acme, min_role: read}]",
        ACME_UNGRANTED,
        False,
        [NO_MATCH, "rule_failed allow[0].org", "org_not_granted allow[0]"],
        id="org listed without role reports not granted",
    ),
    _row(
        "allow: [{org: acme, min_role: read}]",
        ACME_SSO,
        False,
        [NO_MATCH, "rule_failed allow[0].org", "org_restricted allow[0].org"],
        id="admin of a restricted org does not count",
    ),
    # --- scope
    _row(
        "allow: [{scope: read-repos}]",
        identity("alice", scopes=["openid", "read-repos"]),
        True,
        ["allowed allow[0]"],
        id="scope granted",
    ),
    _row(
        "allow: [{scope: [read-repos, write-repos]}]",
        identity("alice", scopes=["openid", "read-repos"]),
        False,
        [NO_MATCH, "rule_failed allow[0].scope", "missing_scopes allow[0]"],
        id="scope missing",
    ),
    # --- email_domain: exactly one @, label boundaries, verified, ASCII case-folded
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="alice@example.com"),
        True,
        ["allowed allow[0]"],
        id="email in domain",
    ),
    _row(
        "allow: [{email_domain: Example.COM}]",
        identity("alice", email="ALICE@EXAMPLE.com"),
        True,
        ["allowed allow[0]"],
        id="email domain in other case",
    ),
    _row(
        "allow: [{email_domain: [other.org, example.com]}]",
        identity("alice", email="alice@example.com"),
        True,
        ["allowed allow[0]"],
        id="email in one of two domains",
    ),
    _row(
        "allow: [{email_domain: company.com}]",
        identity("alice", email="a@evil.com@company.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email with two @",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="x@evilexample.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email domain suffix without label boundary",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="x@example.com.evil.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email domain with the allowed domain as a prefix",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="x@sub.example.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="subdomain needs a wildcard",
    ),
    _row(
        "allow: [{email_domain: '*.example.com'}]",
        identity("alice", email="x@sub.example.com"),
        True,
        ["allowed allow[0]"],
        id="wildcard domain matches a subdomain",
    ),
    _row(
        "allow: [{email_domain: '.example.com'}]",
        identity("alice", email="x@a.b.example.com"),
        True,
        ["allowed allow[0]"],
        id="dot domain matches a deeper subdomain",
    ),
    _row(
        "allow: [{email_domain: '*.example.com'}]",
        identity("alice", email="x@example.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="wildcard domain does not match the bare domain",
    ),
    _row(
        "allow: [{email_domain: '*.example.com'}]",
        identity("alice", email="x@evilexample.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="wildcard domain on label boundaries",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="alice@example.com", email_verified=False),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="unverified email",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email=None),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="no email",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="@example.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email without local part",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="alice@example.com."),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email domain with trailing dot",
    ),
    _row(
        "allow: [{email_domain: example.com}]",
        identity("alice", email="alice @example.com"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="email with whitespace",
    ),
    _row(
        "allow: [{email_domain: kelvin.example}]",
        identity("alice", email="alice@\u212aelvin.example"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_domain"],
        id="non-ASCII look-alike of a listed domain",
    ),
    # --- email_verified
    _row(
        "allow: [{email_verified: true}]",
        identity("alice", email="a@x.org"),
        True,
        ["allowed allow[0]"],
        id="email verified",
    ),
    _row(
        "allow: [{email_verified: true}]",
        identity("alice", email="a@x.org", email_verified=False),
        False,
        [NO_MATCH, "rule_failed allow[0].email_verified"],
        id="email not verified",
    ),
    _row(
        "allow: [{email_verified: false}]",
        identity("alice", email="a@x.org", email_verified=False),
        True,
        ["allowed allow[0]"],
        id="email_verified false matches unverified",
    ),
    _row(
        "allow: [{email_verified: false}]",
        identity("alice", email="a@x.org"),
        False,
        [NO_MATCH, "rule_failed allow[0].email_verified"],
        id="email_verified false refuses verified",
    ),
    # --- pro
    _row("allow: [{pro: true}]", identity("alice", pro=True), True, ["allowed allow[0]"], id="pro"),
    _row(
        "allow: [{pro: true}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].pro"],
        id="not pro",
    ),
    _row("allow: [{pro: false}]", ALICE, True, ["allowed allow[0]"], id="pro false, not pro"),
    _row(
        "allow: [{pro: false}]",
        identity("alice", pro=True),
        False,
        [NO_MATCH, "rule_failed allow[0].pro"],
        id="pro false, pro",
    ),
    # --- method
    _row("allow: [{method: [GET, HEAD]}]", ALICE, True, ["allowed allow[0]"], id="method listed"),
    _row(
        "allow: [{method: get}]", ALICE, True, ["allowed allow[0]"], id="method in lower case rule"
    ),
    _row(
        "allow: [{method: POST}]",
        ALICE,
        True,
        ["allowed allow[0]"],
        id="request method in lower case",
        method="post",
    ),
    _row(
        "allow: [{method: [GET, HEAD]}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].method"],
        id="method not listed",
        method="POST",
    ),
    # --- token_role (HF personal access tokens only)
    _row(
        "allow: [{token_role: write}]",
        identity("alice", token_role="write"),
        True,
        ["allowed allow[0]"],
        id="token role",
    ),
    _row(
        "allow: [{token_role: fineGrained}]",
        identity("alice", token_role="finegrained"),
        True,
        ["allowed allow[0]"],
        id="token role ignoring case",
    ),
    _row(
        "allow: [{token_role: write}]",
        identity("alice", token_role="read"),
        False,
        [NO_MATCH, "rule_failed allow[0].token_role"],
        id="token role not listed",
    ),
    _row(
        "allow: [{token_role: [read, write]}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].token_role"],
        id="session has no token role",
    ),
    # --- several criteria in one rule must all hold
    _row(
        "allow: [{org: acme, pro: true}]",
        identity("alice", pro=True, orgs=[org("acme", "read")]),
        True,
        ["allowed allow[0]"],
        id="all criteria hold",
    ),
    _row(
        "allow: [{org: acme, pro: true, user: bob}]",
        ACME_READ,
        False,
        [NO_MATCH, "rule_failed allow[0].user", "rule_failed allow[0].pro"],
        id="every failed criterion is reported",
    ),
]


@pytest.mark.parametrize(("policy", "who", "method", "allowed", "reasons"), CRITERIA)
def test_each_criterion_allows_and_denies(
    policy: str, who: Identity | None, method: str, allowed: bool, reasons: list[str]
) -> None:
    """Each criterion passes when it holds and names itself when it fails."""
    decision = _decide(policy, who, method)
    assert decision.allowed is allowed
    assert _reasons(decision) == reasons


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        pytest.param(
            role,
            minimum,
            ROLE_ORDER.index(role) >= ROLE_ORDER.index(minimum),
            id=f"{role} vs {minimum}",
        )
        for role in ROLE_ORDER
        for minimum in ROLE_ORDER
    ]
    + [
        pytest.param("no_access", "read", False, id="no_access vs read"),
        pytest.param("owner", "read", False, id="unknown future role vs read"),
        pytest.param("WRITE", "read", False, id="role names are exact"),
    ],
)
def test_min_role_follows_read_contributor_write_admin(
    role: str, minimum: str, allowed: bool
) -> None:
    """read < contributor < write < admin; unknown roles satisfy nothing."""
    who = identity("alice", orgs=[org("acme", role)])
    decision = _decide(f"allow: [{{org: acme, min_role: {minimum}}}]", who)
    assert decision.allowed is allowed
    assert role_at_least(role, minimum) is allowed


def test_role_at_least_refuses_a_missing_role() -> None:
    """An org without a role (not granted to the app) meets no minimum."""
    assert role_at_least(None, "read") is False


COMBINATORS = [
    _row(
        "allow: [{any: [{user: bob}, {org: acme}]}]",
        ACME_READ,
        True,
        ["allowed allow[0]"],
        id="any: second rule holds",
    ),
    _row(
        "allow: [{any: [{user: bob}, {org: acme}]}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].any[0].user", "rule_failed allow[0].any[1].org"],
        id="any: no rule holds",
    ),
    _row(
        "allow: [{all: [{org: acme}, {pro: true}]}]",
        identity("alice", pro=True, orgs=[org("acme", "read")]),
        True,
        ["allowed allow[0]"],
        id="all: every rule holds",
    ),
    _row(
        "allow: [{all: [{org: acme}, {pro: true}]}]",
        ACME_READ,
        False,
        [NO_MATCH, "rule_failed allow[0].all[1].pro"],
        id="all: one rule fails",
    ),
    _row(
        "allow: [{authenticated: true, not: {user: mallory}}]",
        ALICE,
        True,
        ["allowed allow[0]"],
        id="not: negated rule fails",
    ),
    _row(
        "allow: [{authenticated: true, not: {user: mallory}}]",
        identity("mallory"),
        False,
        [NO_MATCH, "rule_failed allow[0].not"],
        id="not: negated rule holds",
    ),
    _row(
        "allow: [{not: {not: {org: acme}}}]",
        ACME_READ,
        True,
        ["allowed allow[0]"],
        id="double negation",
    ),
    _row(
        """
        allow:
          - all:
              - any: [{org: acme, min_role: write}, {user: alice}]
              - not: {any: [{pro: false}, {email_domain: evil.com}]}
        """,
        identity("alice", pro=True),
        True,
        ["allowed allow[0]"],
        id="nested: all of any and not",
    ),
    _row(
        """
        allow:
          - all:
              - any: [{org: acme, min_role: write}, {user: bob}]
              - not: {any: [{pro: false}, {email_domain: evil.com}]}
        """,
        ALICE,
        False,
        [
            NO_MATCH,
            "rule_failed allow[0].all[0].any[0].org",
            "rule_failed allow[0].all[0].any[1].user",
            "rule_failed allow[0].all[1].not",
        ],
        id="nested: every failing branch is reported",
    ),
    _row(
        "allow: [{user: bob}, {org: acme}]",
        ACME_READ,
        True,
        ["allowed allow[1]"],
        id="second allow rule",
    ),
    _row(
        "allow: [{user: bob}, {org: acme}]",
        ALICE,
        False,
        [NO_MATCH, "rule_failed allow[0].user", "rule_failed allow[1].org"],
        id="no allow rule",
    ),
    _row("allow: {user: alice}", ALICE, True, ["allowed allow[0]"], id="one rule without a list"),
]


@pytest.mark.parametrize(("policy", "who", "method", "allowed", "reasons"), COMBINATORS)
def test_combinators_any_all_and_not(
    policy: str, who: Identity | None, method: str, allowed: bool, reasons: list[str]
) -> None:
    """any needs one rule, all needs every rule, not inverts; failures carry their path."""
    decision = _decide(policy, who, method)
    assert decision.allowed is allowed
    assert _reasons(decision) == reasons


DENY = [
    _row(
        "{allow: [{user: alice}], deny: [{user: alice}]}",
        ALICE,
        False,
        ["denied deny[0]"],
        id="deny wins over allow",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{user: mallory}, {org: contractors}]}",
        identity("alice", orgs=[org("contractors", "read")]),
        False,
        ["denied deny[1]"],
        id="second deny rule",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{user: mallory}]}",
        ALICE,
        True,
        ["allowed allow[0]"],
        id="deny rule that does not match",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{not: {org: acme}}]}",
        ALICE,
        False,
        ["denied deny[0]"],
        id="deny everyone outside an org",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{not: {org: acme}}]}",
        ACME_READ,
        True,
        ["allowed allow[0]"],
        id="deny everyone outside an org, member",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{all: [{method: POST}, {pro: false}]}]}",
        ALICE,
        False,
        ["denied deny[0]"],
        id="deny writes from non-pro users",
        method="POST",
    ),
    _row(
        "{allow: [{authenticated: true}], deny: [{all: [{method: POST}, {pro: false}]}]}",
        ALICE,
        True,
        ["allowed allow[0]"],
        id="deny writes from non-pro users, read",
    ),
    _row(
        "{allow: [{user: bob}], deny: [{user: alice}], require_scopes: [x]}",
        ALICE,
        False,
        ["denied deny[0]"],
        id="deny reported alone",
    ),
]


@pytest.mark.parametrize(("policy", "who", "method", "allowed", "reasons"), DENY)
def test_deny_rules_win(
    policy: str, who: Identity | None, method: str, allowed: bool, reasons: list[str]
) -> None:
    """A matching deny rule decides, whatever the allow rules say."""
    decision = _decide(policy, who, method)
    assert decision.allowed is allowed
    assert _reasons(decision) == reasons


def test_require_scopes_lists_exactly_the_missing_scopes() -> None:
    """An allowed user without the required scopes is denied, fixably, naming the scopes."""
    who = identity("alice", scopes=["openid", "read-repos"])
    decision = _decide(
        "{allow: [{user: alice}], require_scopes: [read-repos, write-repos, inference-api]}", who
    )
    assert decision.allowed is False
    assert decision.reasons == (
        Reason(
            ReasonCode.MISSING_SCOPES,
            "require_scopes",
            "missing scopes: write-repos, inference-api",
            ("write-repos", "inference-api"),
        ),
    )
    assert decision.missing_scopes == {"write-repos", "inference-api"}
    assert decision.fixable_by_consent is True


def test_require_scopes_met_allows() -> None:
    """With every required scope granted, the allow rule decides."""
    who = identity("alice", scopes=["openid", "read-repos"])
    decision = _decide("{allow: [{user: alice}], require_scopes: read-repos}", who)
    assert decision.allowed is True
    assert _reasons(decision) == ["allowed allow[0]"]


def test_require_scopes_are_reported_next_to_a_failed_allow() -> None:
    """Both why no rule matched and which scopes are missing are given."""
    decision = _decide("{allow: [{user: bob}], require_scopes: [read-repos]}", ALICE)
    assert _reasons(decision) == [
        NO_MATCH,
        "rule_failed allow[0].user",
        "missing_scopes require_scopes",
    ]
    assert decision.fixable_by_consent is True


def test_an_ungranted_org_is_reported_with_its_id_for_re_consent() -> None:
    """The org id tells the login flow which org to ask the user to grant (orgIds=)."""
    decision = _decide("allow: [{org: acme, min_role: write}]", ACME_UNGRANTED)
    reason = decision.reasons[-1]
    assert reason.code is ReasonCode.ORG_NOT_GRANTED
    assert reason.values == ("org-id-acme",)
    assert decision.ungranted_org_ids == ("org-id-acme",)
    assert decision.fixable_by_consent is True


def test_an_ungranted_org_is_not_reported_when_the_rule_fails_for_other_reasons() -> None:
    """Granting the org would not help bob's rule, so no re-consent is offered."""
    decision = _decide("allow: [{user: bob, org: acme, min_role: write}]", ACME_UNGRANTED)
    assert _reasons(decision) == [NO_MATCH, "rule_failed allow[0].user", "rule_failed allow[0].org"]
    assert decision.ungranted_org_ids == ()
    assert decision.fixable_by_consent is False


def test_a_missing_rule_scope_is_not_offered_when_the_rule_fails_otherwise() -> None:
    """Consent only helps when every failure of a rule is about consent."""
    decision = _decide("allow: [{scope: read-repos, pro: true}]", ALICE)
    assert _reasons(decision) == [
        NO_MATCH,
        "rule_failed allow[0].scope",
        "rule_failed allow[0].pro",
    ]
    assert decision.missing_scopes == frozenset()
    assert decision.fixable_by_consent is False


def test_a_restricted_org_is_reported_with_its_id() -> None:
    """org_restricted carries the org ids whose SSO/MFA requirements are unmet."""
    decision = _decide("allow: [{org: acme}]", ACME_SSO)
    assert decision.reasons[-1].values == ("org-id-acme",)
    assert "sso" in decision.reasons[-1].detail
    assert decision.fixable_by_consent is False


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("allow: [{authenticated: true}]", id="authenticated"),
        pytest.param("allow: [{not: {user: mallory}}]", id="everyone but mallory"),
        pytest.param("allow: [{pro: false}]", id="non-pro users"),
        pytest.param("{allow: [{user: a}], require_scopes: [x]}", id="with required scopes"),
        pytest.param("{allow: [{user: a}], deny: [{not: {user: a}}]}", id="with deny rules"),
    ],
)
def test_anonymous_requests_are_unauthenticated(policy: str) -> None:
    """Without an identity the answer is "sign in", whatever the rules."""
    decision = _decide(policy, None)
    assert decision.allowed is False
    assert decision.reasons == (Reason(ReasonCode.UNAUTHENTICATED, detail="sign in required"),)
    assert decision.unauthenticated is True
    assert decision.fixable_by_consent is False


@pytest.mark.parametrize(
    "who", [pytest.param(None, id="anonymous"), pytest.param(ALICE, id="signed in")]
)
def test_the_public_policy_allows_everyone(who: Identity | None) -> None:
    """public lets anonymous and signed-in users through with reason `public`."""
    decision = evaluate(BUILTIN_POLICIES["public"], who, RequestFacts("GET", "/"), NOW)
    assert decision.allowed is True
    assert _reasons(decision) == ["public"]
    assert _decide("public: true", who).allowed is True


def test_the_authenticated_policy_allows_any_signed_in_user() -> None:
    """The built-in authenticated policy needs nothing but a sign-in."""
    decision = evaluate(BUILTIN_POLICIES["authenticated"], ALICE, RequestFacts("GET", "/"), NOW)
    assert (decision.allowed, _reasons(decision)) == (True, ["allowed allow[0]"])


DECISION_PROPERTIES = [
    pytest.param(
        Decision(True, (Reason(ReasonCode.ALLOWED, "allow[0]"),)),
        False,
        frozenset(),
        (),
        False,
        id="allowed",
    ),
    pytest.param(
        Decision(False, (Reason(ReasonCode.UNAUTHENTICATED),)),
        True,
        frozenset(),
        (),
        False,
        id="unauthenticated",
    ),
    pytest.param(
        Decision(False, (Reason(ReasonCode.DENIED, "deny[0]"),)),
        False,
        frozenset(),
        (),
        False,
        id="denied",
    ),
    pytest.param(
        Decision(
            False,
            (
                Reason(ReasonCode.MISSING_SCOPES, "allow[0]", values=("a", "b")),
                Reason(ReasonCode.MISSING_SCOPES, "require_scopes", values=("b", "c")),
            ),
        ),
        False,
        frozenset({"a", "b", "c"}),
        (),
        True,
        id="missing scopes from several reasons",
    ),
    pytest.param(
        Decision(
            False,
            (
                Reason(ReasonCode.ORG_NOT_GRANTED, "allow[0]", values=("o1", "o2")),
                Reason(ReasonCode.ORG_NOT_GRANTED, "allow[1]", values=("o2", "o3")),
            ),
        ),
        False,
        frozenset(),
        ("o1", "o2", "o3"),
        True,
        id="ungranted orgs in order without repeats",
    ),
    pytest.param(
        Decision(True, (Reason(ReasonCode.MISSING_SCOPES, values=("a",)),)),
        False,
        frozenset({"a"}),
        (),
        False,
        id="an allowed decision needs no consent",
    ),
]


@pytest.mark.parametrize(
    ("decision", "unauthenticated", "missing", "ungranted", "fixable"), DECISION_PROPERTIES
)
def test_decision_properties_summarise_the_reasons(
    decision: Decision,
    unauthenticated: bool,
    missing: frozenset[str],
    ungranted: tuple[str, ...],
    fixable: bool,
) -> None:
    """The web layer reads sign-in, scopes, orgs and consent straight off a Decision."""
    assert decision.unauthenticated is unauthenticated
    assert decision.missing_scopes == missing
    assert decision.ungranted_org_ids == ungranted
    assert decision.fixable_by_consent is fixable


def test_rules_are_frozen_and_read_one_string_as_a_list() -> None:
    """`user: alice` and `user: [alice]` are the same rule, and rules cannot change."""
    assert Rule.model_validate({"user": "alice"}) == Rule.model_validate({"user": ["alice"]})
    rule = Rule.model_validate({"user": "alice"})
    with pytest.raises(ValueError, match="frozen"):
        rule.user = ("mallory",)


# --------------------------------------------------------------------------- properties

_USERS = st.sampled_from(["alice", "bob", "mallory"])
_ORGS = st.sampled_from(["acme", "beta"])
_SCOPES = st.sampled_from(["openid", "read-repos", "write-repos"])
_ROLES = st.sampled_from([*ROLE_ORDER, None, "no_access"])


def _names(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(values, min_size=1, max_size=2, unique=True)


_CRITERION: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({"authenticated": True}),
    st.builds(lambda v: {"user": v}, _names(_USERS)),
    st.builds(lambda v: {"user_id": [f"user-id-{u}" for u in v]}, _names(_USERS)),
    st.builds(lambda v: {"org": v}, _names(_ORGS)),
    st.builds(lambda v, r: {"org": v, "min_role": r}, _names(_ORGS), st.sampled_from(ROLE_ORDER)),
    st.builds(
        lambda v, r: {"org_id": [f"org-id-{o}" for o in v], "min_role": r},
        _names(_ORGS),
        st.sampled_from(ROLE_ORDER),
    ),
    st.builds(lambda v: {"scope": v}, _names(_SCOPES)),
    st.builds(lambda v: {"email_domain": v}, _names(st.sampled_from(["example.com", "*.x.org"]))),
    st.builds(lambda v: {"email_verified": v}, st.booleans()),
    st.builds(lambda v: {"pro": v}, st.booleans()),
    st.builds(lambda v: {"method": v}, _names(st.sampled_from(["GET", "POST"]))),
    st.builds(lambda v: {"token_role": v}, _names(st.sampled_from(["read", "write"]))),
)
_RULE: st.SearchStrategy[dict[str, Any]] = st.recursive(
    _CRITERION,
    lambda inner: st.one_of(
        st.builds(lambda rules: {"any": rules}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda rules: {"all": rules}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda rule: {"not": rule}, inner),
        st.builds(lambda a, b: {**a, **b}, _CRITERION, inner),
    ),
    max_leaves=5,
)
_POLICY = st.builds(
    lambda allow, deny, scopes: Policy.model_validate(
        {"allow": allow, "deny": deny, "require_scopes": scopes}
    ),
    st.lists(_RULE, min_size=1, max_size=3),
    st.lists(_RULE, max_size=2),
    st.lists(_SCOPES, max_size=2, unique=True),
)
_IDENTITY = st.builds(
    lambda name, memberships, scopes, email, verified, pro, token_role: identity(
        name,
        orgs=[org(slug, role, restrictions=r) for slug, role, r in memberships],
        scopes=scopes,
        email=email,
        email_verified=verified,
        pro=pro,
        token_role=token_role,
    ),
    _USERS,
    st.lists(
        st.tuples(_ORGS, _ROLES, st.sampled_from([(), ("sso",)])),
        max_size=2,
        unique_by=lambda m: m[0],
    ),
    st.sets(_SCOPES),
    st.sampled_from([None, "a@example.com", "a@sub.x.org", "a@evilexample.com"]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, "read", "write"]),
)
_FACTS = st.builds(RequestFacts, method=st.sampled_from(["GET", "POST"]), path=st.just("/"))


@settings(max_examples=200, deadline=None, database=None)
@given(policy=_POLICY, extra=_RULE, who=_IDENTITY, facts=_FACTS)
def test_adding_a_deny_rule_never_turns_a_deny_into_an_allow(
    policy: Policy, extra: dict[str, Any], who: Identity, facts: RequestFacts
) -> None:
    """More deny rules can only take access away; a matching one always denies."""
    stricter = policy.model_copy(update={"deny": (*policy.deny, Rule.model_validate(extra))})
    before = evaluate(policy, who, facts, NOW)
    after = evaluate(stricter, who, facts, NOW)
    if not before.allowed:
        assert not after.allowed
    extra_matches = evaluate(Policy.model_validate({"allow": [extra]}), who, facts, NOW).allowed
    if extra_matches:
        assert not after.allowed
        assert after.reasons[0].code is ReasonCode.DENIED


@settings(max_examples=200, deadline=None, database=None)
@given(policy=_POLICY, facts=_FACTS)
def test_anonymous_is_always_unauthenticated_unless_public(
    policy: Policy, facts: RequestFacts
) -> None:
    """No rule can let an anonymous request through; only `public: true` does."""
    decision = evaluate(policy, None, facts, NOW)
    assert decision.allowed is False
    assert decision.unauthenticated is True
    public = evaluate(Policy(public=True), None, facts, NOW)
    assert public.allowed is True
    assert public.unauthenticated is False
