"""Every ``console`` block of docs/policies.md runs, and prints exactly what it shows.

A block holds one or more ``$ hf-gateway explain ...`` commands, each followed by its
output (blocks separate commands with a blank line). To rewrite the outputs from the
CLI: ``.venv/bin/python -m tests.unit.test_policy_docs``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import pytest

from gateway.cli import main

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs/policies.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.DOTALL)


def _commands(block: str) -> list[tuple[str, str]]:
    """(command, shown output) pairs of one block."""
    pairs: list[tuple[str, str]] = []
    for chunk in re.split(r"\n(?=\$ )", block):
        first, _, rest = chunk.partition("\n")
        pairs.append((first.removeprefix("$ "), rest.rstrip("\n")))
    return pairs


def _run(command: str) -> str:
    """What the command prints (stdout, then stderr), run from the repository's root."""
    argv = shlex.split(command)
    assert argv[0] == "hf-gateway", command
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv[1:])
    finally:
        os.chdir(cwd)
    return (out.getvalue() + err.getvalue()).rstrip("\n")


def _blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_page_has_examples() -> None:
    assert len(_blocks()) >= 10


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: b.partition("\n")[0][:90])
def test_each_example_prints_what_the_page_shows(block: str) -> None:
    for command, shown in _commands(block):
        assert _run(command) == shown


def regenerate() -> str:
    """The page with every console block's outputs as the CLI prints them now."""

    def fill(match: re.Match[str]) -> str:
        parts = [f"$ {c}\n{_run(c)}" for c, _ in _commands(match.group(1))]
        return "```console\n" + "\n\n".join(parts) + "\n```"

    return BLOCK.sub(fill, DOC.read_text(encoding="utf-8"))


if __name__ == "__main__":
    DOC.write_text(regenerate(), encoding="utf-8")
