"""``hf-gateway demo`` says which port it chose when the one asked for is taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.devtools.demo import port_note

REPO = Path(__file__).resolve().parents[2]


def _read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Stop with Ctrl-C." in line:
            return lines
    raise AssertionError(f"no banner: {lines}")


def _demo(port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def test_a_taken_port_is_named_with_the_one_chosen_instead() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _demo(port)
        try:
            lines = _read_banner(process)
        finally:
            _stop(process)
    (note,) = [line for line in lines if "is taken: the gateway" in line]
    prefix = f"  Port {port} is taken: the gateway listens on 127.0.0.1:"
    assert note.startswith(prefix) and note.endswith(" instead.")
    chosen = int(note.removeprefix(prefix).removesuffix(" instead."))
    assert chosen != port
    assert f"    Open  http://127.0.0.1:{chosen}/" in lines


def test_a_free_port_is_used_without_a_note() -> None:
    """The twin: the port asked for is free, so it is the one in the URL and nothing is said."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = _demo(port)
    try:
        lines = _read_banner(process)
    finally:
        _stop(process)
    assert f"    Open  http://127.0.0.1:{port}/" in lines
    assert not [line for line in lines if "is taken" in line and "gateway" in line]


def test_port_note() -> None:
    assert port_note("gateway", 8080, 8080) is None
    assert port_note("gateway", 8080, 41234) == (
        "  Port 8080 is taken: the gateway listens on 127.0.0.1:41234 instead."
    )
