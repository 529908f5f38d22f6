"""The email, path and source_ip criteria: each holding beside its failing twin, and the
decision memo keeping client addresses apart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from gateway.access import AccessControl
from gateway.config import parse_config
from gateway.identity import Identity
from gateway.policy import Policy, RequestFacts, evaluate
from gateway.routing import normalize_path
from tests.unit.conftest import identity, minimal_raw_config

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _allowed(
    policy: str, who: Identity, path: str = "/", client_ip: str = "", fold: bool = False
) -> bool:
    facts = RequestFacts("GET", path, client_ip=client_ip, fold=fold)
    return evaluate(Policy.model_validate(yaml.safe_load(policy)), who, facts, NOW).allowed


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        pytest.param(identity("a", email="Pat@Partner.example"), True, id="other case"),
        pytest.param(
            identity("a", email="pat@partner.example", email_verified=False), False, id="unverified"
        ),
        pytest.param(identity("a", email=None), False, id="no email"),
        pytest.param(identity("a", email="pat@partner.example.evil"), False, id="longer domain"),
        pytest.param(identity("a", email="xpat@partner.example"), False, id="longer local part"),
    ],
)
def test_email_is_an_exact_verified_address(who: Identity, allowed: bool) -> None:
    assert _allowed("allow: [{email: pat@partner.example}]", identity("a")) is False
    assert _allowed("allow: [{email: pat@partner.example}]", who) is allowed


@pytest.mark.parametrize(
    ("pattern", "path", "allowed"),
    [
        ("/wiki/admin", "/wiki/admin", True),
        ("/wiki/admin", "/wiki/admin/x", True),
        ("/wiki/admin/", "/wiki/admin", True),
        ("/wiki/admin", "/wiki/administer", False),
        ("/wiki/admin", "/wiki", False),
        ("/api/*/jobs", "/api/v1/jobs", True),
        ("/api/*/jobs", "/api/v1/jobs/", True),
        ("/api/*/jobs", "/api/v1/v2/jobs", False),
        ("/api/*/jobs", "/api/v1/jobs/7", False),
        ("/files/**/raw", "/files/raw", True),
        ("/files/**/raw", "/files/a/b/raw", True),
        ("/files/**/raw", "/files/a/raw/x", False),
        ("/api/*/jobs/**", "/api/v1/jobs/7/log", True),
        ("/api/*/jobs/**", "/api/jobs", False),
        ("/*.json", "/a.json", True),
        ("/*.json", "/a.jsonx", False),
        ("/", "/anything", True),
    ],
)
def test_path_prefixes_and_globs(pattern: str, path: str, allowed: bool) -> None:
    assert _allowed(f"allow: [{{path: '{pattern}'}}]", identity("a"), path) is allowed


def test_a_folded_reading_compares_paths_ignoring_case() -> None:
    """Where an upstream reads /Wiki/ADMIN as /wiki/admin, a not-path rule still bites."""
    policy = "allow: [{not: {path: /wiki/admin}}]"
    assert _allowed(policy, identity("a"), "/Wiki/ADMIN", fold=False)
    assert not _allowed(policy, identity("a"), "/Wiki/ADMIN", fold=True)
    assert not _allowed("allow: [{path: '/w/*/x'}]", identity("a"), "/W/a/X", fold=False)
    assert _allowed("allow: [{path: '/w/*/x'}]", identity("a"), "/W/a/X", fold=True)


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("192.0.2.7", True),
        ("::ffff:192.0.2.7", True),
        ("2001:db8::1", True),
        ("198.51.100.1", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_source_ip_needs_a_readable_address_in_a_listed_network(
    client_ip: str, allowed: bool
) -> None:
    policy = "allow: [{source_ip: [192.0.2.0/24, '2001:db8::/32']}]"
    assert _allowed(policy, identity("a"), client_ip=client_ip) is allowed


def test_the_memo_keeps_client_addresses_apart() -> None:
    raw = minimal_raw_config(
        routes=[
            {
                "name": "app",
                "upstream": "http://127.0.0.1:3000",
                "policy": {"allow": [{"source_ip": "192.0.2.0/24"}]},
            }
        ]
    )
    control = AccessControl(parse_config(raw))
    routed = control.routed("tools.example.com", normalize_path("/x"))
    assert routed is not None
    alice = identity("alice")
    inside = control.decide_for("s:1", routed, "GET", alice, NOW, "h", "192.0.2.1")
    outside = control.decide_for("s:1", routed, "GET", alice, NOW, "h", "198.51.100.1")
    assert (inside.decision.allowed, outside.decision.allowed) == (True, False)
    again = control.decide_for("s:1", routed, "GET", alice, NOW, "h", "192.0.2.1")
    assert again is inside


@pytest.mark.parametrize(
    ("policy", "entries"),
    [
        pytest.param({"allow": [{"authenticated": True}]}, 1, id="no source_ip: one entry"),
        pytest.param(
            {"allow": [{"any": [{"user": "bob"}, {"not": {"source_ip": "192.0.2.0/24"}}]}]},
            3,
            id="source_ip under not: one per address",
        ),
    ],
)
def test_only_routes_that_read_the_address_are_remembered_per_address(
    policy: dict[str, object], entries: int
) -> None:
    """A policy without source_ip decides alike for every address, so one memo entry serves
    them all; one that reads it (even nested) keeps an entry per address."""
    raw = minimal_raw_config(
        routes=[{"name": "app", "upstream": "http://127.0.0.1:3000", "policy": policy}]
    )
    control = AccessControl(parse_config(raw))
    routed = control.routed("tools.example.com", normalize_path("/x"))
    assert routed is not None
    alice = identity("alice")
    for address in ("192.0.2.1", "198.51.100.1", "203.0.113.9"):
        control.decide_for("s:1", routed, "GET", alice, NOW, "h", address)
    assert len(control._memo) == entries
