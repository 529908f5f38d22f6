"""load_config: the one place configuration touches the outside world. It reads the
YAML file, interpolates the environment, merges policy_files and reads ``*_file``
secrets, then hands the mapping to parse_config."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.config.models import SECRET_FILE_KEYS, GatewayConfig
from gateway.config.parse import parse_config
from gateway.config.spaces import apply_spaces_defaults
from gateway.errors import ConfigError

SECRET_FILE_SECTIONS = {
    "provider": SECRET_FILE_KEYS["ProviderConfig"],
    "session": SECRET_FILE_KEYS["SessionConfig"],
}
_VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def interpolate(value: Any, environ: Mapping[str, str], path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string value; ``$$`` is a dollar.

    Pure: the environment is passed in. A variable that is not set (and has no default)
    is reported as a problem naming the variable and the key.
    """
    if isinstance(value, str):
        return _interpolate_str(value, environ, path, problems)
    if isinstance(value, Mapping):
        return {
            k: interpolate(v, environ, _child(path, str(k)), problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _interpolate_str(text: str, environ: Mapping[str, str], path: str, problems: list[str]) -> str:
    def replace(found: re.Match[str]) -> str:
        if found.group(1) == "$":
            return "$"
        name, default = found.group(2), found.group(3)
        current = environ.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return current

    if "$" not in text:
        return text
    return _VAR.sub(replace, text)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a configuration file; the only place config touches files and env."""
    env = os.environ if environ is None else environ
    config_path = Path(path)
    problems: list[str] = []
    raw = _read_yaml(config_path, problems)
    if raw is None:
        raise ConfigError(problems)
    if not isinstance(raw, dict):
        raise ConfigError([f"{config_path}: must be a mapping of sections (server, provider, ...)"])
    raw = interpolate(raw, env, "", problems)
    base = config_path.parent
    sources = _merge_policy_files(raw, base, env, problems)
    _read_secret_files(raw, base, problems)
    apply_spaces_defaults(raw, env, problems)  # after *_file: a secret_file is a secret
    _resolve_key_file(raw, base, problems)
    try:
        config = parse_config(raw, policy_sources=sources)
    except ConfigError as exc:
        # A key already reported (a missing variable, an unreadable file) would only
        # collect follow-on complaints about the empty value left in its place.
        labels = set(sources.values())
        problems.extend(p for p in exc.problems if not _follow_on(p, problems, labels))
    if problems:
        raise ConfigError(problems)
    return config


def _follow_on(problem: str, earlier: list[str], labels: set[str]) -> bool:
    """True when ``problem`` is about a key that one of ``earlier`` already reported.

    Keys are compared without the reason; a policy file's label (``policies/a.yaml``)
    is part of the key. An earlier problem also covers its key without list indices
    (``session.secret[0]`` covers ``session.secret``) and, when a ``*_file`` could not be
    read, the key the file stands for (``session.secret_file`` covers ``session.secret``).
    """

    def key(text: str) -> str:
        head, _, rest = text.partition(": ")
        return f"{head}: {rest.partition(': ')[0]}" if head in labels else head

    covered: set[str] = set()
    for text in earlier:
        found = key(text)
        covered.update((found, re.sub(r"(\[\d+\])+$", "", found)))
        if ": cannot read " in text and found.endswith("_file"):
            covered.add(found.removesuffix("_file"))
    return key(problem) in covered


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: is not UTF-8 text")
        return None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, yaml.reader.ReaderError):  # NUL and other unreadable characters
            problem = f"{exc.reason} (#x{exc.character:04x} at character {exc.position + 1})"
        problems.append(f"{path}: {problem}{where}")
        return None


def _merge_policy_files(
    raw: dict[str, Any], base: Path, environ: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Merge ``policies:`` from each policy file into raw; returns policy name -> source."""
    patterns = raw.get("policy_files") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list):
        problems.append("policy_files: must be a list of globs")
        return {}
    inline = raw.get("policies")
    merged: dict[str, Any] = dict(inline) if isinstance(inline, Mapping) else {}
    sources = dict.fromkeys(merged, "the main config file")
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            problems.append(f"policy_files[{index}]: must be a string")
            continue
        matches = sorted(glob.glob(str(base / pattern), recursive=True))
        if not matches:
            problems.append(f"policy_files[{index}]: {pattern!r} matches no file")
        for file in matches:
            _merge_one_policy_file(Path(file), base, environ, merged, sources, problems)
    if merged or inline is not None:
        raw["policies"] = merged
    return {name: src for name, src in sources.items() if src != "the main config file"}


def _merge_one_policy_file(
    file: Path,
    base: Path,
    environ: Mapping[str, str],
    merged: dict[str, Any],
    sources: dict[str, str],
    problems: list[str],
) -> None:
    label = str(file.relative_to(base)) if file.is_relative_to(base) else str(file)
    content = _read_yaml(file, problems)
    if content is None:
        return
    if not isinstance(content, dict) or set(content) - {"policies"}:
        problems.append(f"{label}: a policy file holds only a 'policies:' mapping")
        return
    policies = content.get("policies") or {}
    if not isinstance(policies, dict):
        problems.append(f"{label}: policies: must be a mapping")
        return
    found: list[str] = []
    policies = interpolate(policies, environ, "policies", found)
    problems.extend(f"{label}: {p}" for p in found)  # name the file the variable is in
    for name, value in policies.items():
        if name in sources:
            problems.append(f"{label}: policies.{name}: already defined in {sources[name]}")
            continue
        merged[name] = value
        sources[name] = label


def _read_secret_files(raw: dict[str, Any], base: Path, problems: list[str]) -> None:
    for section, keys in SECRET_FILE_SECTIONS.items():
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        for key in keys:
            file_key = f"{key}_file"
            if file_key not in values:
                continue
            if key in values:
                problems.append(f"{section}.{file_key}: set either {key} or {file_key}, not both")
                continue
            names = values.pop(file_key)
            many = isinstance(names, list)
            read = [
                _read_secret(base, n, f"{section}.{file_key}", problems)
                for n in (names if many else [names])
            ]
            values[key] = read if many else read[0]


def _read_secret(base: Path, name: Any, path: str, problems: list[str]) -> str:
    if not isinstance(name, str):
        problems.append(f"{path}: must be a file path")
        return ""
    try:
        return (base / name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read {name}: {getattr(exc, 'strerror', None) or exc}")
        return ""


def _resolve_key_file(raw: dict[str, Any], base: Path, problems: list[str]) -> None:
    identity = raw.get("identity")
    assertion = identity.get("assertion") if isinstance(identity, dict) else None
    if not isinstance(assertion, dict) or not isinstance(assertion.get("signing_key_file"), str):
        return
    key_path = (base / assertion["signing_key_file"]).resolve()
    if not key_path.is_file():
        problems.append(f"identity.assertion.signing_key_file: {key_path} does not exist")
    assertion["signing_key_file"] = str(key_path)
