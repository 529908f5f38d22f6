"""Fixture files for the fake provider: YAML in, checked users, orgs and apps out.

Every problem is collected and reported at once as ``path: reason``, like the
gateway's own config errors. See ``demo_users.yaml`` for the format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from gateway.devtools.fake_hf_model import TOKEN_ROLES, FakeClient, FakeOrg, FakeSettings, FakeUser

_HEX24 = re.compile(r"[0-9a-f]{24}")


class FixtureError(ValueError):
    """A fixture is inconsistent; ``problems`` lists each one as ``path: reason``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid fake-HF fixture:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Fixture:
    """Everything a fixture file describes."""

    users: list[FakeUser]
    orgs: list[FakeOrg]
    clients: list[FakeClient]
    settings: FakeSettings


def validate_world(
    users: Iterable[FakeUser], orgs: Iterable[FakeOrg], clients: Iterable[FakeClient]
) -> list[str]:
    """Every consistency problem (ids, duplicates, dangling org slugs, token prefixes)."""
    problems: list[str] = []
    org_slugs = _unique("orgs", ((o.slug, o.sub) for o in orgs), problems)
    _unique("users", ((u.username, u.sub) for u in users), problems)
    _unique("clients", ((c.client_id, c.client_id) for c in clients), problems)
    tokens: set[str] = set()
    for user in users:
        problems += _user_problems(user, org_slugs, tokens)
    for client in clients:
        if not client.redirect_uris:
            problems.append(f"clients[{client.client_id}].redirect_uris: must not be empty")
    return problems


def _unique(kind: str, items: Iterable[tuple[str, str]], problems: list[str]) -> set[str]:
    """Check names and ids are unique (ids are 24-hex except for clients); return names."""
    names: set[str] = set()
    ids: set[str] = set()
    for name, ident in items:
        if name in names:
            problems.append(f"{kind}[{name}]: duplicate name")
        if kind != "clients" and not _HEX24.fullmatch(ident):
            problems.append(f"{kind}[{name}].sub: {ident!r} is not 24 lowercase hex digits")
        if kind != "clients" and ident in ids:
            problems.append(f"{kind}[{name}].sub: duplicate id {ident}")
        names.add(name)
        ids.add(ident)
    return names


def _user_problems(user: FakeUser, org_slugs: set[str], tokens: set[str]) -> list[str]:
    where = f"users[{user.username}]"
    problems = [
        f"{where}.{key}: unknown org {slug!r}"
        for key, slugs in (
            ("roles", user.roles),
            ("security_restrictions", user.security_restrictions),
        )
        for slug in slugs
        if slug not in org_slugs
    ]
    for token, role in user.access_tokens.items():
        if not token.startswith("hf_") or token.startswith("hf_oauth_"):
            problems.append(
                f"{where}.access_tokens: {token[:6]}... must start with hf_ (not hf_oauth_)"
            )
        if role not in TOKEN_ROLES:
            problems.append(
                f"{where}.access_tokens: role {role!r} is not one of {sorted(TOKEN_ROLES)}"
            )
        if token in tokens:
            problems.append(f"{where}.access_tokens: {token[:6]}... is used by two users")
        tokens.add(token)
    return problems


def load_fixture(path: str | Path) -> Fixture:
    """Read and check a YAML fixture (see ``demo_users.yaml`` for the format)."""
    with open(path, encoding="utf-8") as f:
        return parse_fixture(yaml.safe_load(f))


def parse_fixture(raw: object) -> Fixture:
    """Build a :class:`Fixture` from parsed YAML; :class:`FixtureError` lists every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise FixtureError(["(top level): must be a mapping with users, orgs and clients"])
    _check_keys(raw, {"users", "orgs", "clients", "settings"}, "(top level)", problems)
    orgs = _build_list(raw.get("orgs", []), "orgs", FakeOrg, _ORG_FIELDS, problems)
    users = _build_list(raw.get("users", []), "users", FakeUser, _USER_FIELDS, problems)
    clients = _build_list(raw.get("clients", []), "clients", FakeClient, _CLIENT_FIELDS, problems)
    settings = _build(
        raw.get("settings") or {}, "settings", FakeSettings, _SETTINGS_FIELDS, problems
    )
    if not problems:
        problems += validate_world(users, orgs, clients)
    if problems or settings is None:
        raise FixtureError(problems)
    return Fixture(users, orgs, clients, settings)


Check = Callable[[object], bool]
T = TypeVar("T")


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_opt_str(v: object) -> bool:
    return v is None or isinstance(v, str)


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_opt_int(v: object) -> bool:
    return v is None or _is_int(v)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_opt_str_list(v: object) -> bool:
    return v is None or _is_str_list(v)


def _is_str_map(v: object) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def _is_str_list_map(v: object) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_str_list(x) for k, x in v.items())


def _is_dict(v: object) -> bool:
    return isinstance(v, dict)


_ORG_FIELDS: dict[str, Check] = {
    "sub": _is_str,
    "slug": _is_str,
    "name": _is_str,
    "plan": _is_opt_str,
    "can_pay": _is_bool,
}
_USER_FIELDS: dict[str, Check] = {
    "sub": _is_str,
    "username": _is_str,
    "name": _is_str,
    "email": _is_str,
    "email_verified": _is_bool,
    "is_pro": _is_bool,
    "roles": _is_str_map,
    "security_restrictions": _is_str_list_map,
    "access_tokens": _is_str_map,
    "website": _is_str,
    "can_pay": _is_bool,
}
_CLIENT_FIELDS: dict[str, Check] = {
    "client_id": _is_str,
    "client_secret": _is_opt_str,
    "redirect_uris": _is_str_list,
    "scopes": _is_opt_str_list,
    "name": _is_opt_str,
}
_SETTINGS_FIELDS: dict[str, Check] = {
    f.name: (
        _is_dict
        if f.name == "discovery_overrides"
        else {"bool": _is_bool, "int": _is_int, "int | None": _is_opt_int}.get(
            str(f.type), _is_opt_str
        )
    )
    for f in fields(FakeSettings)
}


def _build_list(
    raw: object, where: str, cls: type[T], spec: dict[str, Check], problems: list[str]
) -> list[T]:
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list")
        return []
    built = (_build(item, f"{where}[{i}]", cls, spec, problems) for i, item in enumerate(raw))
    return [item for item in built if item is not None]


def _build(
    raw: object, where: str, cls: type[T], spec: dict[str, Check], problems: list[str]
) -> T | None:
    """Type-check one mapping against ``spec`` and build ``cls`` from it."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    before = len(problems)
    _check_keys(raw, set(spec), where, problems)
    required = {f.name for f in fields(cast(Any, cls)) if _is_required(f)}
    problems += [f"{where}.{name}: required" for name in sorted(required - set(raw))]
    problems += [
        f"{where}.{key}: wrong type {type(value).__name__}"
        for key, value in raw.items()
        if key in spec and not spec[key](value)
    ]
    if len(problems) > before:
        return None
    return cls(**dict(raw))


def _is_required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _check_keys(raw: Mapping[Any, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    problems += [f"{where}.{key}: unknown key" for key in raw if key not in allowed]
