"""A real redis-server on a free port, for tests (never a fake)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """Start, stop and restart one redis-server process on 127.0.0.1.

    ``args`` are extra redis-server options (``["--replicaof", "127.0.0.1", "6379"]``);
    ``config`` is a configuration file's text, written to the server's own folder and
    given first (Sentinel needs a file it can rewrite). Every start uses the same port and
    folder, so a restarted server is the same node to its peers.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        args: Sequence[str] = (),
        config: str | None = None,
        sentinel: bool = False,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make system-deps`")
        self.binary = binary
        self.port = port or free_port()
        self.args = list(args)
        self.sentinel = sentinel
        self.dir = Path(tempfile.mkdtemp(prefix="hfgw-redis-"))
        self.config_file: Path | None = None
        if config is not None:
            self.config_file = self.dir / ("sentinel.conf" if sentinel else "redis.conf")
            self.config_file.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        head = [self.binary] + ([str(self.config_file)] if self.config_file else [])
        if self.sentinel:
            return [*head, "--sentinel", "--port", str(self.port), *self.args]
        return [
            *head,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--protected-mode",
            "no",
            *self.args,
        ]

    def start(self) -> RedisServer:
        with (self.dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{tail}")
            if _answers_ping(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """Stop at once (SIGKILL): what a crashed host looks like to its peers."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
