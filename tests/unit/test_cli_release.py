"""Release hygiene: one version source, the LICENSE pyproject declares, the distinct import
name ``hf_gateway`` and a changelog kept per release."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gateway import __version__

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, so that no module this test run imported decides the answer."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_the_version_has_one_source() -> None:
    """pyproject reads gateway.__version__; it states no version of its own."""
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gateway.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+|\.dev\d+)?", __version__)


def test_the_declared_license_is_in_the_repository() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    # setuptools' default license-files (LICEN[CS]E*, ...) ship it; no explicit list, so a
    # build context without the file (the Dockerfile's) still builds.
    assert "license-files" not in project
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert "9. Accepting Warranty or Additional Liability." in text


def test_hf_gateway_is_the_same_package_as_gateway() -> None:
    done = _python(
        "import hf_gateway, hf_gateway.config, hf_gateway.config.models as aliased\n"
        "from hf_gateway.cli import main\n"
        "import gateway, gateway.config, gateway.config.models as real, gateway.cli\n"
        "assert hf_gateway is gateway and hf_gateway.config is gateway.config\n"
        "assert aliased.GatewayConfig is real.GatewayConfig and main is gateway.cli.main\n"
        "assert gateway.config.__spec__.name == 'gateway.config'\n"
        "print(hf_gateway.__version__)\n"
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{__version__}\n", "")


def test_hf_gateway_first_then_gateway_gives_one_module_not_two() -> None:
    """Imported through the alias first, the real name still finds the same module."""
    done = _python(
        "from hf_gateway.config import load_config\n"
        "import sys, gateway.config\n"
        "assert gateway.config.load_config is load_config\n"
        "print(sorted(n for n in sys.modules if n.startswith('hf_gateway')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert "'hf_gateway.config'" in done.stdout


def test_a_module_that_does_not_exist_is_not_found_under_either_name() -> None:
    """The twin: the alias invents nothing."""
    done = _python("import hf_gateway.no_such_module")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'hf_gateway.no_such_module'" in done.stderr


def test_python_dash_m_hf_gateway_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hf_gateway", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"hf-gateway {__version__}\n")


def test_the_package_list_ships_the_alias() -> None:
    assert "hf_gateway" in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]


# --------------------------------------------------------------------------- changelog

HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?$")


def _release_headings() -> list[tuple[str, str | None]]:
    lines = (REPO / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
    found = []
    for line in lines:
        if line.startswith("## "):
            match = HEADING.match(line)
            assert match, f"CHANGELOG heading {line!r}: use '## [X.Y.Z] - YYYY-MM-DD'"
            found.append((match["version"], match["date"]))
    return found


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def test_the_changelog_has_a_section_per_release_newest_first() -> None:
    headings = _release_headings()
    assert headings[0] == ("Unreleased", None)
    releases = headings[1:]
    assert all(date is not None for _, date in releases), "a release section has its date"
    versions = [_key(version) for version, _ in releases]
    assert versions == sorted(versions, reverse=True)
    assert len(set(versions)) == len(versions)
    # The code's version is never older than the newest release the changelog records.
    assert not versions or _key(__version__) >= versions[0]


CATEGORIES = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_each_release_names_each_category_once() -> None:
    seen: set[str] = set()
    for line in (REPO / "CHANGELOG.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            seen = set()
        elif line.startswith("### "):
            category = line.removeprefix("### ")
            assert category in CATEGORIES, f"CHANGELOG: unknown category {category!r}"
            assert category not in seen, f"CHANGELOG: a second '### {category}' in one release"
            seen.add(category)
