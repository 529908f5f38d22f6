"""Org rules and HF access tokens: a token acts with at most its own role.

A ``min_role`` must be met by the membership role and, for a caller with an HF access
token, by what the token can do (read -> read, write -> admin, fineGrained -> read, an
unknown role -> nothing). A rule that names ``token_role`` judges the membership alone.
Deny rules never apply the cap, so a weak token cannot dodge a restriction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from gateway.identity import Identity
from gateway.policy import Decision, Policy, RequestFacts, evaluate
from tests.unit.conftest import identity, org

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _decide(policy: str, who: Identity, method: str = "GET") -> Decision:
    return evaluate(
        Policy.model_validate(yaml.safe_load(policy)), who, RequestFacts(method, "/"), NOW
    )


def _writer(token_role: str | None, role: str = "write") -> Identity:
    return identity("ci-bot", orgs=[org("acme", role)], token_role=token_role)


WRITERS = "allow: [{org: acme, min_role: write}]"


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        pytest.param(_writer(None), True, id="a browser session of a writer"),
        pytest.param(_writer("write"), True, id="a write token of a writer"),
        pytest.param(_writer("read"), False, id="a read token of a writer"),
        pytest.param(_writer("fineGrained"), False, id="a fine-grained token counts as read"),
        pytest.param(_writer("future-role"), False, id="an unknown token role reaches nothing"),
        pytest.param(_writer("write", role="read"), False, id="a write token of a reader"),
        pytest.param(_writer("write", role="admin"), True, id="a write token of an admin"),
    ],
)
def test_min_role_needs_the_membership_and_the_token(who: Identity, allowed: bool) -> None:
    assert _decide(WRITERS, who).allowed is allowed


def test_a_read_token_is_refused_with_words_naming_the_token() -> None:
    decision = _decide(WRITERS, _writer("read"))
    details = [(r.rule, r.detail) for r in decision.reasons if r.rule]
    assert details == [("allow[0].org", "a read token acts as read at most, below write")]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        pytest.param(_writer("read"), True, id="read token of a writer"),
        pytest.param(_writer("read", role="read"), False, id="read token of a reader"),
        pytest.param(_writer(None), False, id="a session has no token role"),
    ],
)
def test_a_rule_naming_token_roles_judges_the_membership_alone(
    who: Identity, allowed: bool
) -> None:
    policy = "allow: [{org: acme, min_role: write, token_role: any}]"
    assert _decide(policy, who).allowed is allowed


@pytest.mark.parametrize(
    ("token_role", "allowed"),
    [("read", True), ("write", True), ("fineGrained", True), ("future-role", False)],
)
def test_token_role_any_means_a_known_token_role(token_role: str, allowed: bool) -> None:
    policy = "allow: [{token_role: any}]"
    assert _decide(policy, identity("alice", token_role=token_role)).allowed is allowed


@pytest.mark.parametrize(
    ("token_role", "denied"),
    [
        pytest.param("read", True, id="a read token of an admin is still denied"),
        pytest.param(None, True, id="a session of an admin is denied"),
        pytest.param("read", False, id="a writer is not an admin"),
    ],
)
def test_deny_rules_judge_the_membership_not_the_token(
    token_role: str | None, denied: bool, request: pytest.FixtureRequest
) -> None:
    role = "write" if "writer" in request.node.callspec.id else "admin"
    policy = "allow: [{org: acme}]\ndeny: [{org: acme, min_role: admin}]"
    decision = _decide(policy, _writer(token_role, role=role))
    assert decision.allowed is not denied
    assert [r.rule for r in decision.reasons] == (["deny[0]"] if denied else ["allow[0]"])


def test_not_judges_its_rule_broadly_so_a_weak_token_cannot_dodge_it() -> None:
    """``not: {org: acme, min_role: admin}`` excludes admins whatever token they use."""
    policy = "allow: [{org: acme, not: {org: acme, min_role: admin}}]"
    assert not _decide(policy, _writer("read", role="admin")).allowed
    assert _decide(policy, _writer("read", role="write")).allowed


def test_rules_without_min_role_need_membership_only_for_any_token() -> None:
    policy = "allow: [{org: acme}]"
    assert _decide(policy, _writer("read", role="read")).allowed
    assert not _decide(policy, identity("ci-bot", token_role="write")).allowed
