"""``hf-gateway run`` as a real child process, configured by a YAML file on disk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.devtools.fake_hf import FakeHF
from tests.support import log_scan
from tests.support.harness import BROWSER, CLIENT_ID, CLIENT_SECRET
from tests.support.redis_server import free_port


def write_signing_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class GatewayProcess:
    def __init__(
        self,
        folder: Path,
        *,
        issuer: str,
        upstream: str,
        redis_url: str | None = None,
        session: dict[str, Any] | None = None,
        metrics: bool = False,
        server: dict[str, Any] | None = None,
    ) -> None:
        """``session`` overrides keys of the ``session`` section (a None value removes
        the key), e.g. ``{"redis_url": None, "redis_sentinel": {...}}``; ``server`` those
        of ``server`` (e.g. ``{"workers": 2}``). ``metrics`` turns the metrics listener on,
        on a port of its own (``metrics_url``)."""
        self.folder = folder
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "gateway.log"
        log_scan.watch(self.log)  # its output is scanned for secrets at the end of the run
        write_signing_key(folder / "signing-key.pem")
        (folder / "policies").mkdir(exist_ok=True)
        (folder / "policies" / "tools.yaml").write_text(
            yaml.safe_dump(
                {"policies": {"writers": {"allow": [{"org": "acme", "min_role": "write"}]}}}
            )
        )
        config = {
            "server": {
                "listen": f"127.0.0.1:{self.port}",
                "public_url": self.url,
                "metrics_listen": f"127.0.0.1:{self.metrics_port}" if metrics else None,
                "drain_delay": 0,  # a test that stops a gateway waits for no load balancer
                **(server or {}),
            },
            "provider": {
                "issuer": issuer,
                "api_url": issuer,
                "client_id": CLIENT_ID,
                "client_secret": "${TEST_CLIENT_SECRET}",
            },
            "session": {
                "store": "redis",
                "redis_url": redis_url,
                "secret_file": "secret.txt",
                "redis_prefix": f"e2e-{self.port}:",
            },
            "identity": {"assertion": {"signing_key_file": "signing-key.pem"}},
            "policy_files": ["policies/*.yaml"],
            "routes": [
                {"name": "tool", "path": "/", "upstream": upstream, "policy": "authenticated"},
                {"name": "writers", "path": "/writers", "upstream": upstream, "policy": "writers"},
            ],
        }
        for key, value in (session or {}).items():
            if value is None:
                config["session"].pop(key, None)
            else:
                config["session"][key] = value
        (folder / "secret.txt").write_text("e2e-session-secret-" + "z" * 40 + "\n")
        self.config_path = folder / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        assert self.metrics_port is not None, "started without metrics=True"
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the config file in one rename (a reload never reads half of it)."""
        scratch = self.config_path.with_suffix(".tmp")
        scratch.write_text(yaml.safe_dump(config))
        scratch.replace(self.config_path)

    def read_config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.config_path.read_text())
        return loaded

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None, "not started"
        self.process.send_signal(signum)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def start(self, *, ready_within: float = 10.0) -> None:
        env = {**os.environ, "TEST_CLIENT_SECRET": CLIENT_SECRET}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(int(ready_within / 0.05)):
                if self.process.poll() is not None:
                    break
                try:
                    async with http.get(f"{self.url}/_gateway/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"hf-gateway run did not become ready:\n{self.log.read_text()}")

    async def sign_in(self, http: aiohttp.ClientSession, fake: FakeHF, username: str) -> None:
        """The whole login flow through this process as ``username`` (fake HF auto-approves)."""
        fake.settings.auto_login = username
        async with http.get(f"{self.url}/_gateway/login", headers=BROWSER) as response:
            await response.read()
            assert response.status == 200, f"login as {username!r} ended with {response.status}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None
