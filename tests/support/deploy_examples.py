"""Reading the deployment examples as Docker Compose and the image would: env files,
compose interpolation, a Dockerfile's final stage. Only what the tests need, written
from the Compose specification's interpolation rules and the Dockerfile reference."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "examples" / "compose"
KUBERNETES_DIR = REPO / "examples" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"

_COMPOSE_VAR = re.compile(
    r"\$(\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\})"
)


class InterpolationError(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty: compose refuses to start."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and ``#`` comments skipped (compose's env-file format)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose interpolation of every string in ``value``."""
    if isinstance(value, str):

        def replace(found: re.Match[str]) -> str:
            if found.group(1) == "$":
                return "$"
            name, op, arg = found.group("name"), found.group("op"), found.group("arg")
            current = environ.get(name)
            if op == ":-":
                return current if current else arg
            if op == "-":
                return arg if current is None else current
            if op in (":?", "?") and (current is None or (op == ":?" and not current)):
                raise InterpolationError(f"{name}: {arg}")
            return current or ""

        return _COMPOSE_VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    return value


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return loaded


def service_environment(
    compose: Mapping[str, Any], service: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """A service's ``environment`` (mapping form) after interpolation."""
    raw = compose["services"][service].get("environment", {})
    assert isinstance(raw, dict), f"{service}: environment must be a mapping here"
    return {str(k): str(v) for k, v in interpolate(raw, environ).items()}


@dataclass
class DockerfileStage:
    """The final stage: its ENV, the COPY instructions from the build context, and the
    exec-form HEALTHCHECK command."""

    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)


def final_stage(path: Path = DOCKERFILE) -> DockerfileStage:
    stage = DockerfileStage()
    for instruction in _instructions(path.read_text(encoding="utf-8")):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = DockerfileStage()
        elif keyword == "ENV":
            for word in shlex.split(rest):
                name, sep, value = word.partition("=")
                assert sep, f"ENV {rest!r}: use the NAME=value form"
                stage.env[name] = value
        elif keyword == "COPY" and "--from=" not in rest:
            *sources, dest = [w for w in shlex.split(rest) if not w.startswith("--")]
            stage.copies.extend((source, dest) for source in sources)
        elif keyword == "HEALTHCHECK":
            stage.healthcheck = json.loads(rest[rest.index("CMD") + 3 :])
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = json.loads(rest)
    return stage


def _instructions(text: str) -> list[str]:
    """Instructions with line continuations joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    return joined


def documented_run_variables(path: Path = DOCKERFILE) -> list[str]:
    """The ``-e NAME`` flags of the ``docker run`` line in the Dockerfile's header comment."""
    header = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    )
    return re.findall(r"-e ([A-Z_][A-Z0-9_]*)", header)
