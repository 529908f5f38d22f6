"""`hf-gateway schema`: a 2020-12 JSON Schema whose every key says what it is for, and
which accepts what parse_config accepts (and flags what it refuses as unknown)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from gateway.config import config_json_schema
from tests.unit.conftest import minimal_raw_config

DURATION_TYPE_TEXT = "30s, 5m, 8h, 7d or integer seconds"
"""What the Duration type says of itself: the type, not what the key is for."""


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of the root and of every definition, as (where, property schema)."""
    for key, value in schema["properties"].items():
        yield key, value
    for name, definition in schema["$defs"].items():
        for key, value in definition.get("properties", {}).items():
            yield f"{name}.{key}", value


def test_the_schema_declares_its_dialect_and_no_id() -> None:
    schema = config_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "$id" not in schema
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_key_has_a_description_of_its_own() -> None:
    """Every property, in every section (the policy and branding ones too), says what it is
    for; a duration's type text alone does not count."""
    undescribed = [
        where
        for where, prop in _properties(config_json_schema())
        if not prop.get("description") or prop["description"] == DURATION_TYPE_TEXT
    ]
    assert undescribed == []


def test_the_walk_sees_every_section() -> None:
    """The check above cannot pass by walking nothing."""
    seen = {where.split(".")[0] for where, _ in _properties(config_json_schema())}
    assert {"ServerConfig", "SessionConfig", "RouteConfig", "Policy", "Rule"} <= seen
    assert sum(1 for _ in _properties(config_json_schema())) > 100


def test_a_valid_configuration_validates_against_the_schema() -> None:
    raw = minimal_raw_config(
        routes=[
            {
                "name": "app",
                "upstream": "http://127.0.0.1:3000",
                "policy": "authenticated",
                "set_headers": {"X-Team": "ml"},
                "remove_headers": "X-Debug",
            }
        ]
    )
    jsonschema.Draft202012Validator(config_json_schema()).validate(raw)


@pytest.mark.parametrize(
    "typo",
    [
        pytest.param({"server": {"listn": "0.0.0.0:8080"}}, id="server key"),
        pytest.param(
            {"routes": [{"name": "a", "upstream": "http://x", "polcy": "public"}]}, id="route key"
        ),
    ],
)
def test_a_misspelt_key_fails_the_schema(typo: dict[str, Any]) -> None:
    raw = minimal_raw_config(**typo)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(config_json_schema()).validate(raw)
