"""Every ``hf-gateway`` transcript in the docs is run and its output compared.

A transcript is a ```console block in README.md or docs/**/*.md. Lines starting with
``$ `` are commands; the lines after one, up to the next command, are what it prints
(stdout and stderr as a terminal shows them, in order). A command runs from the
repository's root, with no secrets in its environment (no ``OAUTH_*``, ``GATEWAY_SECRET``
or ``HF_GATEWAY_*``), so the docs cannot lean on a shell that happens to have them;
``VAR=value hf-gateway ...`` sets what a transcript needs. Conventions:

- ``[exit N]`` as the last line of a command's output: it exits N (the exit code is compared
  where a transcript shows it; explain's deny is 1, an invalid config 2);
- a line ``...`` stands for any number of lines (a long listing cut short);
- ``<!-- not run: REASON -->`` on the line before the block: a transcript that needs the
  outside world (a real Hugging Face); the reason is required.

Only ``hf-gateway`` commands may appear in a transcript that is run: a pipe or another
program would hide what hf-gateway itself printed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```console\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>[^>]*\S)\s*-->\s*$")
EXIT = re.compile(r"^\[exit (?P<code>\d+)\]$")
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
SECRET_ENV = ("OAUTH_", "GATEWAY_SECRET", "HF_GATEWAY_", "HF_TOKEN", "REDIS_URL")


@dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]
    exit_code: int | None


@dataclass(frozen=True)
class Transcript:
    doc: str
    line: int
    steps: list[Step]
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _steps(body: str) -> list[Step]:
    steps: list[Step] = []
    command: str | None = None
    output: list[str] = []

    def close() -> None:
        if command is None:
            return
        code: int | None = None
        while output and not output[-1].strip():
            output.pop()
        if output and (match := EXIT.match(output[-1])):
            code = int(match["code"])
            output.pop()
        steps.append(Step(command, list(output), code))

    for line in body.splitlines():
        if line.startswith("$ "):
            close()
            command, output = line[2:].strip(), []
        elif command is None:
            raise AssertionError(f"output before any command: {line!r}")
        else:
            output.append(line.rstrip())
    close()
    return steps


def transcripts() -> list[Transcript]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 1
            before = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = NOT_RUN.search(before)
            steps = _steps(block["body"])
            name = str(doc.relative_to(REPO))
            reason = marker["reason"] if marker else None
            found.append(Transcript(name, line, steps, reason))
    return found


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV)}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="100", NO_COLOR="1")
    return env


def _argv(command: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(command, comments=True)
    assigned: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        assigned[name] = value
    assert words and words[0] == "hf-gateway", (
        f"{command!r}: a transcript that is run holds hf-gateway commands only"
    )
    assert not set(words) & {"|", "&&", ";", ">", "<", "||"}, f"{command!r}: no shell syntax"
    return assigned, [sys.executable, "-m", "gateway", *words[1:]]


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, a ``...`` line standing for any lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def run_step(step: Step) -> tuple[int, list[str]]:
    assigned, argv = _argv(step.command)
    done = subprocess.run(
        argv,
        cwd=REPO,
        env={**_environment(), **assigned},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return done.returncode, lines


ALL = transcripts()
RUN = [t for t in ALL if t.not_run is None]


def test_the_docs_have_transcripts_to_run() -> None:
    assert ALL, "no ```console block found: the harness would check nothing"
    assert all(t.steps for t in ALL), [t.id for t in ALL if not t.steps]


@pytest.mark.parametrize("transcript", RUN, ids=[t.id for t in RUN])
def test_a_transcript_prints_what_the_doc_shows(transcript: Transcript) -> None:
    for step in transcript.steps:
        code, lines = run_step(step)
        shown = "\n".join(lines)
        assert "Traceback" not in shown, f"{transcript.id}: $ {step.command}\n{shown}"
        wanted = code if step.exit_code is None else step.exit_code
        assert (code, matches(step.expected, lines)) == (wanted, True), (
            f"{transcript.id}: $ {step.command}\nexpected (exit {step.exit_code}):\n"
            + "\n".join(step.expected)
            + f"\nactual (exit {code}):\n{shown}"
        )


def test_a_transcript_not_run_says_why() -> None:
    for transcript in ALL:
        if transcript.not_run is not None:
            assert len(transcript.not_run) >= 10, transcript.id


# --------------------------------------------------------------------------- the harness


def test_the_harness_catches_a_wrong_output() -> None:
    """The twin of every transcript test: a doc that is wrong does not pass."""
    (step,) = _steps("$ hf-gateway check-config tests/no-such.yaml\nall good\n")
    assert step.exit_code is None
    code, lines = run_step(step)
    assert code == 2
    assert not matches(step.expected, lines)
    assert lines == ["tests/no-such.yaml: invalid configuration (1 problem)"] + [
        "  tests/no-such.yaml: cannot read: No such file or directory"
    ]


def test_the_harness_reads_exit_codes_and_ellipses() -> None:
    (step,) = _steps("$ hf-gateway schema --version\n...\n[exit 3]\n")
    assert (step.command, step.expected, step.exit_code) == (
        "hf-gateway schema --version",
        ["..."],
        3,
    )
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "b"], ["a", "b"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a"], ["a", "b"])


def test_the_harness_gives_no_secrets_and_runs_no_other_program() -> None:
    assert not [k for k in _environment() if k.startswith(SECRET_ENV)]
    with pytest.raises(AssertionError, match="hf-gateway commands only"):
        _argv("rm -rf /tmp/x")
    with pytest.raises(AssertionError, match="no shell syntax"):
        _argv("hf-gateway schema | head")
    assert _argv("GATEWAY_SECRET=x hf-gateway schema")[0] == {"GATEWAY_SECRET": "x"}
