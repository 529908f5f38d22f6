"""The processes a benchmark run starts on 127.0.0.1: Redis, nginx, the fake HF, servers.

Redis comes from the tests' own starter; the gateway is used only through ``python -m gateway run -c
FILE``, ``python -m gateway.devtools.fake_hf`` and the login flow at ``/_gateway/login``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.redis_server import RedisServer

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{upstream_port};
    root {dir}/www;
    location / {{ try_files $uri /bench.txt; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def redis_reads(server: RedisServer) -> Callable[[], int]:
    """A counter of GET, GETDEL and MGET calls served so far (how the session store reads;
    a warm-cache re-check is one MGET for up to 256 sessions, counted as one read)."""

    def reads() -> int:
        import redis

        stats = redis.Redis.from_url(server.url).info("commandstats")
        return sum(
            int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "getdel", "mget")
        )

    return reads


def write_nginx_conf(work: Path, upstream_port: int, proxy_port: int) -> Path:
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=work, upstream_port=upstream_port, proxy_port=proxy_port))
    return conf


def start_fake_hf(port: int) -> subprocess.Popen[bytes]:
    """The fake Hugging Face on ``port``, approving every login as alice (no form)."""
    command = [sys.executable, "-m", "gateway.devtools.fake_hf", "--port", str(port)]
    return subprocess.Popen([*command, "--auto-login", "alice"], stdout=subprocess.DEVNULL)


def write_signing_key(work: Path) -> Path:
    """A fresh P-256 key for the assertion, at ``work/signing.pem``."""
    path = work / "signing.pem"
    command = ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]
    subprocess.run([*command, str(path)], check=True)
    return path


def start_gateway(
    work: Path, config: dict[str, Any], cwd: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """``hf-gateway run`` on ``config`` (written to ``work/gateway.yaml``), its output in
    ``work/gateway.log`` (returned with the process). INFO lines other than the access and
    audit lines (which the config switches) are left out."""
    (work / "gateway.yaml").write_text(yaml.safe_dump(config))
    log_file = work / "gateway.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(work / "gateway.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_GATEWAY_LOG_LEVEL": "WARNING"},
            cwd=cwd,
        )
    return process, log_file


async def wait_http(
    url: str, process: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Wait up to 30 s for ``url`` to answer below 500; fail early if ``process`` exits."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"{url}: the server exited with {process.returncode}\n{tail}")
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def sign_in_sessions(gateway_url: str, count: int) -> list[str]:
    """Real sessions: each one a full login through the fake HF (auto-approving alice)."""
    cookies = []
    for _ in range(count):
        cookies.append(await _sign_in(gateway_url))
    return cookies


async def _sign_in(gateway_url: str, attempts: int = 50) -> str:
    """One login; repeated while a worker still loads the provider's metadata (its readyz
    is 503 while another worker's already answers 200, so a login may meet it first)."""
    for _ in range(attempts):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{gateway_url}/_gateway/login", params={"rd": "/"}) as response:
                await response.read()
            cookie = next((c for c in http.cookie_jar if c.key == "hf_gateway"), None)
            if cookie is not None:
                return f"hf_gateway={cookie.value}"
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no session after {attempts} logins at {gateway_url}")


async def check_body(url: str, size: int, cookie: str | None = None) -> None:
    """One request before measuring: the peer answers 200 with the expected body."""
    headers = {"Accept": "application/json", **({"Cookie": cookie} if cookie else {})}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            if response.status != 200 or len(body) != size:
                raise RuntimeError(
                    f"{url}: expected 200 with {size} bytes, got {response.status} with "
                    f"{len(body)} bytes"
                )
