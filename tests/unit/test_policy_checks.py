"""Rules that can never match are refused, at their key, with the nearest valid value;
each refused value sits beside a valid one that is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.policy import Policy
from tests.unit.conftest import minimal_raw_config, write_yaml


def _problems(rule: dict[str, Any]) -> list[str]:
    raw = minimal_raw_config(
        routes=[{"name": "app", "upstream": "http://127.0.0.1:3000", "policy": {"allow": [rule]}}]
    )
    try:
        parse_config(raw)
    except ConfigError as exc:
        return list(exc.problems)
    return []


REFUSED = [
    ({"token_role": ["wrtie"]}, "token_role: unknown token role 'wrtie'; did you mean write?"),
    ({"method": ["GTE"]}, "method: unknown method 'GTE'; did you mean GET?"),
    ({"email_domain": "@acme.test"}, "did you mean acme.test?"),
    ({"email_domain": "acme .test"}, "is not a domain"),
    ({"user": "alice@example.com"}, "to match an email address use email: [alice@example.com]"),
    ({"user": "al ice"}, "did you mean alice?"),
    ({"org": "acme/research"}, "did you mean acmeresearch?"),
    ({"scope": "read-repo"}, "unknown scope 'read-repo'; did you mean read-repos?"),
    ({"scope": "read-repos write-repos"}, "did you mean [read-repos, write-repos]?"),
    ({"email": "alice"}, "is not an email address"),
    ({"email": "a@b@acme.test"}, "is not an email address"),
    ({"path": "admin"}, "did you mean /admin?"),
    ({"path": "/a/../admin"}, "did you mean /admin?"),
    ({"path": "/a//b"}, "did you mean /a/b?"),
    ({"path": "/a/x**/b"}, "'**' must be a whole segment"),
    ({"source_ip": "10.0.0.1/8"}, "did you mean 10.0.0.0/8?"),
    ({"source_ip": "10.0.0.300"}, "is not an IP address or CIDR"),
]

ACCEPTED = [
    {"token_role": ["write", "fineGrained", "finegrained", "any"]},
    {"method": ["GET", "post", "PROPFIND"]},
    {"email_domain": ["acme.test", "*.acme.test", ".acme.test", "xn--bcher-kva.example"]},
    {"user": ["alice", "Bob_2", "c.d-e"]},
    {"org": ["acme", "hf-tools"]},
    {"scope": ["read-repos", "a-scope-hf-may-add"]},
    {"email": ["alice@example.com", "Bob@Example.COM"]},
    {"path": ["/admin", "/admin/", "/api/*/jobs", "/files/**/raw", "/"]},
    {"source_ip": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]},
]


@pytest.mark.parametrize(("rule", "words"), REFUSED, ids=[str(r) for r, _ in REFUSED])
def test_a_dead_value_is_refused_at_its_key_with_a_hint(rule: dict[str, Any], words: str) -> None:
    problems = _problems(rule)
    key = next(iter(rule))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"routes[0].policy.allow[0].{key}: "), problems
    assert words in problems[0]


@pytest.mark.parametrize("rule", ACCEPTED, ids=[str(r) for r in ACCEPTED])
def test_valid_values_are_accepted(rule: dict[str, Any]) -> None:
    assert _problems(rule) == []


def test_require_scopes_are_checked_too() -> None:
    with pytest.raises(ValidationError, match="did you mean read-repos"):
        Policy.model_validate({"allow": [{"authenticated": True}], "require_scopes": ["read-repo"]})
    Policy.model_validate({"allow": [{"authenticated": True}], "require_scopes": ["read-repos"]})


def test_a_generic_oidc_provider_may_use_any_names() -> None:
    """With context provider_kind oidc, usernames may be emails and groups have slashes."""
    rule = {"user": "alice@corp.example", "org": "/admins", "scope": "read-repo"}
    context = {"provider_kind": "oidc"}
    Policy.model_validate({"allow": [rule]}, context=context)
    with pytest.raises(ValidationError):
        Policy.model_validate({"allow": [rule]})


def test_check_config_reports_dead_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = {"method": ["GTE"]}
    raw = minimal_raw_config(
        routes=[{"name": "app", "upstream": "http://127.0.0.1:3000", "policy": {"allow": [rule]}}]
    )
    assert main(["check-config", str(write_yaml(tmp_path / "g.yaml", raw))]) == 2
    out, err = capsys.readouterr()
    assert "routes[0].policy.allow[0].method: unknown method 'GTE'; did you mean GET?" in out + err
    raw["routes"][0]["policy"]["allow"] = [{"method": ["GET"]}]
    assert main(["check-config", str(write_yaml(tmp_path / "g.yaml", raw))]) == 0


def test_the_schema_describes_every_rule_key_and_closes_methods_and_token_roles() -> None:
    schema = Policy.model_json_schema()
    rule = schema["$defs"]["Rule"]["properties"]
    assert all(v.get("description") for v in rule.values()), [
        k for k, v in rule.items() if not v.get("description")
    ]
    assert all(v.get("description") for v in schema["properties"].values())
    assert "GET" in rule["method"]["anyOf"][0]["enum"]
    assert rule["token_role"]["anyOf"][1]["items"]["enum"] == [
        "read",
        "write",
        "fineGrained",
        "any",
    ]
