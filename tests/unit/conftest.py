"""Small factories shared by the unit tests: configs as plain data, identities, orgs.

These are plain functions rather than fixtures so table tests can build their rows at
collection time (``pytest.param(identity(orgs=[org("acme", "write")]), ...)``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from gateway.identity import Identity, Org

SECRET = "unit-test-session-secret-0123456789abcdef"
"""A session secret long enough (>= 32 bytes) to be valid."""

_MINIMAL: dict[str, Any] = {
    "server": {"public_url": "https://tools.example.com"},
    "provider": {"client_id": "test-client", "client_secret": "test-client-secret"},
    "session": {"secret": SECRET},
    "routes": [{"name": "app", "upstream": "http://127.0.0.1:3000", "policy": "authenticated"}],
}


def minimal_raw_config(**overrides: Any) -> dict[str, Any]:
    """The smallest valid configuration as loaded YAML, with top-level keys overridden.

    A mapping given for a section that has a default (server, provider, session) is
    merged into it; anything else (routes, policies, identity, ...) replaces the key.
    """
    raw = copy.deepcopy(_MINIMAL)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(copy.deepcopy(value))
        else:
            raw[key] = copy.deepcopy(value)
    return raw


def write_yaml(path: Path, data: Any) -> Path:
    """Write ``data`` as YAML to ``path`` (creating parent folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def org(
    slug: str,
    role: str | None = None,
    *,
    sub: str | None = None,
    restrictions: Iterable[str] = (),
) -> Org:
    """An org membership; ``role=None`` means the org was not granted to the app."""
    return Org(
        sub=sub or f"org-id-{slug}",
        slug=slug,
        name=slug.title(),
        role=role,
        security_restrictions=tuple(restrictions),
    )


def identity(
    username: str = "alice",
    *,
    sub: str | None = None,
    orgs: Iterable[Org] = (),
    scopes: Iterable[str] = ("openid", "profile", "email", "read-memberships"),
    email: str | None = None,
    email_verified: bool = True,
    pro: bool = False,
    token_role: str | None = None,
) -> Identity:
    """A signed-in user; the defaults are an ordinary member of nothing."""
    return Identity(
        sub=sub or f"user-id-{username}",
        username=username,
        name=username.title(),
        email=email,
        email_verified=email_verified,
        is_pro=pro,
        orgs=tuple(orgs),
        scopes=frozenset(scopes),
        token_role=token_role,
    )
