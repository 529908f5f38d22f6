"""``hf-gateway healthcheck`` (the image's HEALTHCHECK) against a real ``hf-gateway run``.

It follows ``server.listen`` of the file in HF_GATEWAY_CONFIG: healthy when the gateway
listening there answers, unhealthy (exit 1, never Docker's reserved 2) otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

from gateway.devtools.fake_hf import FakeHF
from tests.support.gateway_process import GatewayProcess
from tests.support.redis_server import RedisServer, free_port


async def healthcheck(config: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "healthcheck",
        *args,
        env={**os.environ, "HF_GATEWAY_CONFIG": str(config), "HTTP_PROXY": "http://127.0.0.1:9"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_healthcheck_follows_server_listen(
    fake_hf: FakeHF, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Healthy on the port the config names (a proxy in the environment is not used);
    the same file with another listen port is unhealthy: nothing answers there."""
    gateway = GatewayProcess(
        tmp_path, issuer=fake_hf.issuer, upstream=upstream, redis_url=redis_server.url
    )
    await gateway.start()
    try:
        code, out = await healthcheck(gateway.config_path)
        assert (code, out) == (0, f"healthcheck: {gateway.url}/_gateway/healthz: 200\n")
        code, out = await healthcheck(gateway.config_path, "--ready")
        assert (code, out) == (0, f"healthcheck: {gateway.url}/_gateway/readyz: 200\n")

        elsewhere = gateway.read_config()
        elsewhere["server"]["listen"] = f"0.0.0.0:{free_port()}"
        other = tmp_path / "elsewhere.yaml"
        other.write_text(yaml.safe_dump(elsewhere))
        code, out = await healthcheck(other)
        assert code == 1
        assert "Connection refused" in out
    finally:
        gateway.stop()
    code, _ = await healthcheck(gateway.config_path)
    assert code == 1


async def test_healthcheck_is_unhealthy_on_an_unreadable_config(tmp_path: Path) -> None:
    code, out = await healthcheck(tmp_path / "missing.yaml")
    assert code == 1
    assert out.startswith(f"healthcheck: {tmp_path / 'missing.yaml'}: cannot read server.listen")
