"""The key reference of docs/configuration.md, generated from the configuration models.

Reads ``config_json_schema()`` (what ``hf-gateway schema`` prints): every key of every
section, its type, default and description, plus the environment forms the loader knows
(Spaces-mode variables from gateway/config/spaces.py, ``*_file`` variants from
SECRET_FILE_KEYS, ``HF_GATEWAY_LOG_LEVEL``), and writes it between the
``<!-- config-reference -->`` markers:

    .venv/bin/python scripts/config_reference.py          # print the reference
    .venv/bin/python scripts/config_reference.py --write  # update docs/configuration.md
    .venv/bin/python scripts/config_reference.py --check  # exit 1 if the doc is stale

A key without a description is an error. ``make docs`` writes it; a unit test checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402

from gateway.config import models  # noqa: E402
from gateway.config.branding import BrandingConfig  # noqa: E402
from gateway.config.models import SECRET_FILE_KEYS, config_json_schema  # noqa: E402
from gateway.config.spaces import _PROVIDER_VARIABLES  # noqa: E402
from gateway.policy import Policy, Rule  # noqa: E402

DOC = ROOT / "docs" / "configuration.md"
START, END = "<!-- config-reference -->", "<!-- /config-reference -->"
DURATION_PATTERN = r"^\d+[smhd]$"

SECTIONS: list[tuple[str, str, str]] = [
    ("(top level)", "", "top level"),
    ("ServerConfig", "server.", "`server`"),
    ("ProviderConfig", "provider.", "`provider`"),
    ("SessionConfig", "session.", "`session`"),
    ("SentinelConfig", "session.redis_sentinel.", "`session.redis_sentinel`"),
    ("IdentityConfig", "identity.", "`identity`"),
    ("AssertionConfig", "identity.assertion.", "`identity.assertion`"),
    ("Policy", "policies.NAME.", "`policies.NAME` (and an inline `routes[].policy`)"),
    ("Rule", "", "a rule (in `allow`, `deny`, `any`, `all`, `not`)"),
    ("RouteConfig", "routes[].", "`routes[]`"),
    ("LoggingConfig", "logging.", "`logging`"),
    ("BrandingConfig", "branding.", "`branding`"),
]
"""Each model's table, in the order of the page: the path its keys are written under, and
the table's title."""
MODELS: dict[str, type[BaseModel]] = {
    "(top level)": models.GatewayConfig,
    "ServerConfig": models.ServerConfig,
    "ProviderConfig": models.ProviderConfig,
    "SessionConfig": models.SessionConfig,
    "SentinelConfig": models.SentinelConfig,
    "IdentityConfig": models.IdentityConfig,
    "AssertionConfig": models.AssertionConfig,
    "Policy": Policy,
    "Rule": Rule,
    "RouteConfig": models.RouteConfig,
    "LoggingConfig": models.LoggingConfig,
    "BrandingConfig": BrandingConfig,
}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def env_forms() -> dict[str, str]:
    """Key path -> how the environment can provide it, besides ``${VAR}`` in the value."""
    forms: dict[str, list[str]] = {
        "server.public_url": ["Spaces: `https://` + `SPACE_HOST`"],
        "session.secret": ["Spaces: derived from `OAUTH_CLIENT_SECRET`"],
        "logging.level": ["`HF_GATEWAY_LOG_LEVEL` overrides it"],
    }
    for key, variable in _PROVIDER_VARIABLES:
        forms.setdefault(f"provider.{key}", []).append(f"Spaces: `{variable}`")
    sections = {"ProviderConfig": "provider", "SessionConfig": "session"}
    for model, keys in SECRET_FILE_KEYS.items():
        for key in keys:
            forms.setdefault(f"{sections[model]}.{key}", []).append(f"or `{key}_file`")
    return {path: "; ".join(parts) for path, parts in forms.items()}


def type_of(prop: dict[str, Any]) -> str:
    """The property's type in words, from its schema."""
    if "$ref" in prop:
        return _ref_name(prop["$ref"])
    if "enum" in prop:
        return " | ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    options = prop.get("anyOf") or prop.get("oneOf")
    if options:
        if any(o.get("pattern") == DURATION_PATTERN for o in options):
            return "duration"
        kinds = [type_of(o) for o in options]
        if len(kinds) == 2 and kinds[1] == f"list of {kinds[0]}":
            return f"{kinds[0]} or {kinds[1]}"
        return " or ".join(dict.fromkeys(kinds))
    kind = prop.get("type")
    if isinstance(kind, list):
        return " or ".join("list" if k == "array" else k for k in kind)
    if kind == "array":
        items = prop.get("items", {})
        return f"list of {type_of(items)}" if items else "list"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"mapping of {type_of(values)}" if isinstance(values, dict) else "mapping"
    if kind == "string" and prop.get("format") == "password":
        return "secret"
    return {"integer": "integer", "boolean": "boolean", "string": "string", "null": "null"}.get(
        str(kind), str(kind)
    )


def _ref_name(ref: str) -> str:
    name = ref.rsplit("/", 1)[-1]
    return {"Rule": "rule", "Policy": "policy", "RouteConfig": "route"}.get(name, "mapping")


def default_of(model: type[BaseModel], key: str, kind: str) -> str:
    """The default as written in YAML, read from the model itself (default factories too)."""
    field = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
    if field is None:
        return "none"  # a *_file key, read by the loader only
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if value is None:
        return "none"
    if kind == "duration" and isinstance(value, int):
        unit = next((u for u, size in _UNITS if value and value % size == 0), "s")
        size = dict(_UNITS).get(unit, 1)
        return f"`{value // size}{unit}`"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(
    schema: dict[str, Any], model: str, prefix: str, title: str, forms: dict[str, str]
) -> list[str]:
    definition = schema if model == "(top level)" else schema["$defs"][model]
    lines = [
        f"### {title}",
        "",
        "| key | type | default | environment | description |",
        "|---|---|---|---|---|",
    ]
    for key, prop in definition["properties"].items():
        path = f"{prefix}{key}"
        description = prop.get("description")
        if not description:
            raise SystemExit(f"{model}.{key}: no description (add description= to its Field)")
        kind = type_of(prop)
        cells = (
            f"`{path}`",
            kind,
            default_of(MODELS[model], key, kind),
            forms.get(path, ""),
            description,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def reference() -> str:
    schema = config_json_schema()
    forms = env_forms()
    listed = {model for model, _, _ in SECTIONS}
    unlisted = sorted(set(schema["$defs"]) - listed)
    if unlisted:
        raise SystemExit(f"scripts/config_reference.py: add {', '.join(unlisted)} to SECTIONS")
    lines = [
        "Generated by `scripts/config_reference.py` from the configuration models; do not edit",
        "by hand. Any string value may also be written `${VAR}` or `${VAR:-default}`",
        "([§2](#2-environment-variables-var-var-default-)); *environment* lists the other ways",
        "a key is filled from the environment. A *duration* is `30s`, `5m`, `8h`, `7d` or",
        "integer seconds; a list of one item may be written as that item alone.",
        "",
    ]
    for model, prefix, title in SECTIONS:
        lines.extend(table(schema, model, prefix, title, forms))
    return "\n".join(lines).rstrip("\n") + "\n"


def replaced(doc: str, body: str) -> str:
    head, start, rest = doc.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{DOC}: the {START} ... {END} markers are missing")
    return f"{head}{START}\n{body}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="update docs/configuration.md")
    group.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    args = parser.parse_args(argv)
    body = reference()
    if not args.write and not args.check:
        sys.stdout.write(body)
        return 0
    doc = DOC.read_text(encoding="utf-8")
    wanted = replaced(doc, body)
    if args.check:
        if wanted != doc:
            print(
                "docs/configuration.md: the key reference is stale; run "
                "`.venv/bin/python scripts/config_reference.py --write`",
                file=sys.stderr,
            )
            return 1
        return 0
    if wanted != doc:
        DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
