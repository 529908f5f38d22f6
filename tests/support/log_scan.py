"""The secret scan: every log line the test run wrote, searched for secrets at its end.

A pytest plugin (registered in tests/conftest.py). It collects

* every record of the in-process loggers (a handler on the root logger; the gateway's
  loggers are opened down to DEBUG for the run, so access, audit and debug lines are
  written and scanned too), formatted as the gateway formats JSON lines, fields included;
* the output of every ``hf-gateway run`` that tests/support/gateway_process.py started
  (``watch``), read at the end;

and fails the run (exit status 1, the offending lines shown with the secret masked) when a
line holds a known secret: any code or token a fake provider issued
(``fake_hf_tokens.ISSUED``), the client and session secrets of the test configs, the
fixture users' personal tokens, or anything shaped like a session cookie, a Hugging Face
token or a JWT. It also resets the fault log before each test, so one test's fault does
not silence the next one's first line.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest
import yaml

from gateway.devtools import fake_hf_tokens
from gateway.logs import FAULTS, JsonFormatter, flush_lines

PATTERNS: dict[str, re.Pattern[str]] = {
    "session cookie": re.compile(r"v1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}"),
    "Hugging Face token": re.compile(r"\bhf_(?!gateway)[A-Za-z0-9]{20,}|\bhf_oauth_[\w-]{20,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    "sealed value": re.compile(r"[A-Za-z0-9_-]{200,}"),
}
"""Shapes no log line may hold: the gateway's session cookie, HF user and OAuth tokens, a
signed JWT (ID tokens, the assertion), a long base64url run (a sealed login binding,
tokens encrypted at rest)."""
_PREFIX = 12
"""Known secrets are found by their first characters (then compared whole)."""
_TOKEN = re.compile(rf"[A-Za-z0-9_.~+/=-]{{{_PREFIX},}}")


def fixture_secrets() -> set[str]:
    """Secrets written into the test configurations and the demo world."""
    from tests.support.harness import CLIENT_SECRET, SECRET

    found = {CLIENT_SECRET, SECRET, "e2e-session-secret-" + "z" * 40}
    world = yaml.safe_load(
        resources.files("gateway.devtools").joinpath("demo_users.yaml").read_text("utf-8")
    )
    for user in world.get("users", []):
        found.update(user.get("access_tokens", {}) or {})
    for client in world.get("clients", []):
        if client.get("client_secret"):
            found.add(client["client_secret"])
    return found


@dataclass
class Hit:
    what: str
    where: str
    line: str

    def shown(self) -> str:
        """The line with the secret masked, so the report does not leak it further."""
        return f"{self.where}: {self.what}: {self.line[:300]}"


@dataclass
class SecretScan:
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def all_lines(self) -> Iterator[tuple[str, str]]:
        for line in self.lines:
            yield "in-process log", line
        for path in self.files:
            if path.exists():
                for line in path.read_text("utf-8", errors="replace").splitlines():
                    yield str(path), line

    def hits(self, secrets: Iterable[str]) -> list[Hit]:
        known = {s for s in secrets if len(s) >= _PREFIX}
        by_prefix: dict[str, list[str]] = {}
        for secret in known:
            by_prefix.setdefault(secret[:_PREFIX], []).append(secret)
        found: list[Hit] = []
        for where, line in self.all_lines():
            hit = _known_in(line, by_prefix) or _shape_in(line)
            if hit is not None:
                what, secret = hit
                found.append(Hit(what, where, line.replace(secret, "<" + what + ">")))
        return found


def _known_in(line: str, by_prefix: dict[str, list[str]]) -> tuple[str, str] | None:
    for token in _TOKEN.findall(line):
        for start in range(len(token) - _PREFIX + 1):
            for secret in by_prefix.get(token[start : start + _PREFIX], ()):
                if token.startswith(secret, start):
                    return "known secret", secret
    return None


def _shape_in(line: str) -> tuple[str, str] | None:
    for what, pattern in PATTERNS.items():
        found = pattern.search(line)
        if found is not None:
            return what, found.group()
    return None


class _Collector(logging.Handler):
    def __init__(self, scan: SecretScan) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self._scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._scan.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted: keep what it says
            self._scan.lines.append(f"{record.msg!r} {record.args!r}")


SCAN = SecretScan()
_HANDLER = _Collector(SCAN)
_HITS: list[Hit] = []


def watch(path: Path) -> None:
    """Scan this file at the end of the run (a gateway process's output)."""
    SCAN.files.append(path)


def pytest_configure(config: pytest.Config) -> None:
    del config
    logging.getLogger().addHandler(_HANDLER)
    logging.getLogger("gateway").setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _fresh_fault_log() -> Iterator[None]:
    FAULTS.reset()
    yield
    flush_lines()  # the test's access and audit lines, made now that its loop is gone


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    flush_lines()
    logging.getLogger().removeHandler(_HANDLER)
    _HITS.extend(SCAN.hits(fixture_secrets() | fake_hf_tokens.ISSUED))
    if _HITS:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    dump = os.environ.get("LOG_SCAN_DUMP")
    if dump:  # every scanned line into one file, to look at what the run wrote
        Path(dump).write_text("".join(f"{where}\t{line}\n" for where, line in SCAN.all_lines()))
    lines = sum(1 for _ in SCAN.all_lines())
    if not _HITS:
        terminalreporter.write_line(f"secret scan: {lines} log lines, no secret")
        return
    terminalreporter.section("secret scan: secrets in log lines", red=True)
    for hit in _HITS[:50]:
        terminalreporter.write_line(hit.shown())
    terminalreporter.write_line(f"{len(_HITS)} of {lines} log lines hold a secret")
