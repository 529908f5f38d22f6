"""docs/configuration.md's key reference is generated from the models
(scripts/config_reference.py), so `make test` fails as soon as it drifts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.config import config_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "config_reference.py"
DOC = ROOT / "docs" / "configuration.md"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_the_key_reference_in_configuration_md_is_current() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr


def test_the_reference_lists_every_key_of_every_section() -> None:
    printed = _run().stdout
    schema = config_json_schema()
    for name, definition in schema["$defs"].items():
        for key in definition.get("properties", {}):
            assert f"{key}` |" in printed, f"{name}.{key} is not in the reference"
    assert "| `routes[].set_headers` | mapping of string | `{}` |" in printed
    assert "| `session.idle_timeout` | duration | `8h` |" in printed
    assert "Spaces: `OAUTH_CLIENT_ID`" in printed
    assert "or `secret_file`" in printed


def test_a_stale_reference_is_detected() -> None:
    """The twin: the same comparison --check makes, on a doc with an edited row."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    doc = DOC.read_text(encoding="utf-8")
    body = config_reference.reference()
    assert config_reference.replaced(doc, body) == doc
    stale = doc.replace(
        "| `session.idle_timeout` | duration | `8h` |",
        "| `session.idle_timeout` | duration | `9h` |",
    )
    assert stale != doc
    assert config_reference.replaced(stale, body) == doc
