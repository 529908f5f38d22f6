"""Every file the docs point at is in the repository.

Checked in README.md and docs/**/*.md: backticked paths under the repository's folders
(`gateway/...`, `scripts/...`, `benchmarks/...`, `docs/...`, `examples/...`, `tests/...`,
`config/...`, `hf_gateway_client/...`), relative Markdown links, and capitalised documents
(`SOMETHING.md`). docs/architecture.md names modules relative to `gateway/`, and
docs/architecture.md and docs/benchmarks.md name files by their bare name (`values.py`,
`throughput-20261204-211204.json`): each such name must be a file of the repository.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
ROOTS = (
    "gateway",
    "hf_gateway",
    "hf_gateway_client",
    "scripts",
    "benchmarks",
    "docs",
    "examples",
    "tests",
    "config",
)
BACKTICKED = re.compile(r"`([^`\n]+)`")
ROOTED = re.compile(rf"^(?:{'|'.join(ROOTS)})/[\w./-]*$")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
CAPITAL_DOC = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_-]+\.md)\b")
BARE_FILE = re.compile(r"^[\w.-]+\.(?:py|json|yaml|yml|sh|toml|md)$")
MODULE_PATH = re.compile(r"^[\w]+(?:/[\w]+)*/[\w]+\.py$")
BY_NAME = {"docs/architecture.md", "docs/benchmarks.md"}
# Pointers in docs this suite's owner cannot edit yet, each reported to the doc's owner.
# An entry that is no longer stale fails the test, so the list only shrinks.
KNOWN_STALE: dict[str, list[str]] = {}


def _clean(token: str) -> str:
    token = re.split(r"::|:(?=\d)|#", token)[0]
    return token.rstrip(".,;:")


@cache
def _repository_files() -> frozenset[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return frozenset(listed)


def _names() -> frozenset[str]:
    return frozenset(Path(p).name for p in _repository_files())


def stale_pointers(text: str, name: str) -> list[str]:
    """The pointers of ``text``, the doc at ``name`` (relative to the repository), that miss."""
    folder = (REPO / name).parent
    stale: list[str] = []
    for match in BACKTICKED.finditer(text):
        token = _clean(match[1])
        if any(c in token for c in "*{}<>[]$ ") or "://" in token:
            continue
        if ROOTED.match(token):
            in_gateway = name == "docs/architecture.md" and (REPO / "gateway" / token).exists()
            if not (REPO / token).exists() and not in_gateway:
                stale.append(token)
        elif name == "docs/architecture.md" and MODULE_PATH.match(token):
            if not any((REPO / root / token).exists() for root in ("gateway", "")):
                stale.append(token)
        elif name in BY_NAME and BARE_FILE.match(token) and token not in _names():
            stale.append(token)
    for match in LINK.finditer(text):
        target = match[1]
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (folder / target).exists():
            stale.append(target)
    for match in CAPITAL_DOC.finditer(text):
        if match[1] not in _names():
            stale.append(match[1])
    return stale


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_file_a_doc_points_at_exists(doc: Path) -> None:
    name = str(doc.relative_to(REPO))
    assert stale_pointers(doc.read_text(encoding="utf-8"), name) == KNOWN_STALE.get(name, [])


def test_a_stale_pointer_is_caught() -> None:
    """The twin: pointers at files that are not there are reported, real ones are not."""
    text = (
        "`gateway/cli.py` `gateway/no_such.py` `scripts/gone.sh` [a](no-such.md) "
        "[b](https://example.com/x.md) [c](configuration.md#keys) DESIGN-NOT-HERE.md "
        "`tests/unit/test_cli.py::test_x` `gateway/cli.py:12` `web/proxy.py` `web/gone.py` "
        "`values.py` `missing-results.json`\n"
    )
    assert stale_pointers(text, "docs/architecture.md") == [
        "gateway/no_such.py",
        "scripts/gone.sh",
        "web/gone.py",
        "missing-results.json",
        "no-such.md",
        "DESIGN-NOT-HERE.md",
    ]
    # Outside architecture.md and benchmarks.md bare names are not pointers.
    assert stale_pointers("`web/gone.py` `missing-results.json`", "docs/logs.md") == []
