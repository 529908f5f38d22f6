"""``hf-gateway check-config --connect``: Redis and the provider's discovery, tried for real
(a redis-server and the fake Hugging Face), with a failing twin of each."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.devtools.fake_hf import FakeHF
from tests.support.redis_server import RedisServer, free_port
from tests.unit.conftest import minimal_raw_config, write_yaml

REPO = Path(__file__).resolve().parents[2]


async def _check_config(path: Path, *extra: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "check-config",
        str(path),
        *extra,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _config(tmp_path: Path, issuer: str, redis_url: str) -> Path:
    raw = minimal_raw_config(
        provider={"issuer": issuer, "api_url": issuer},
        session={"store": "redis", "redis_url": redis_url},
    )
    return write_yaml(tmp_path / "gateway.yaml", raw)


async def test_connect_tries_redis_and_the_provider(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with FakeHF.demo().serve() as issuer:
        path = _config(tmp_path, issuer, redis_server.url)
        code, out, err = await _check_config(path, "--connect")
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        f"{path}: ok (1 routes, 0 policies, store redis)",
        f"ok   redis: PING answered at {redis_server.url}",
        f"ok   provider discovery: {issuer}/.well-known/openid-configuration names issuer {issuer}",
    ]


async def test_connect_fails_with_exit_1_when_nothing_answers(tmp_path: Path) -> None:
    """The twin: no Redis and no provider on their ports; without --connect the file is ok."""
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    issuer = f"http://127.0.0.1:{free_port()}"
    path = _config(tmp_path, issuer, redis_url)
    code, out, _ = await _check_config(path, "--connect")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{path}: ok (1 routes, 0 policies, store redis)"
    assert lines[1].startswith(f"FAIL redis: {redis_url}: ")
    assert lines[2].startswith(
        f"FAIL provider discovery: {issuer}/.well-known/openid-configuration"
    )
    assert (await _check_config(path))[:2] == (0, lines[0] + "\n")


async def test_connect_is_not_tried_for_an_invalid_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", minimal_raw_config(server={"workers": "many"}))
    code, out, err = await _check_config(path, "--connect")
    assert (code, out) == (2, "")
    assert "server.workers: must be an integer" in err
