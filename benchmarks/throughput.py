"""Signed-in throughput through hf-gateway, next to its peers, in one run.

    .venv/bin/python benchmarks/throughput.py [--duration 10] [--repeat 3] [--workers 1]

Peers, measured interleaved (A B C D, A B C D, ...) on 127.0.0.1 with wrk:
  direct       nginx serving a 1 KiB file (the upstream itself: the ceiling)
  nginx-proxy  nginx as a reverse proxy with upstream keepalive (what operators compare with)
  public       the gateway on a public route (proxy cost, no authentication)
  signed-in    the gateway on an `authenticated` route, Redis store, a pool of 64 sessions

Every signed-in request carries one of 64 real session cookies (signed in through the fake
Hugging Face), so the session path is the real one. Reports medians with min-max of req/s,
latency percentiles, and the gateway's CPU time per request. Needs wrk, nginx, redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer, free_port  # noqa: E402

CLIENT_ID = "hf-gateway-demo"
CLIENT_SECRET = "demo-secret-not-for-production"
BODY = b"x" * 1024
SESSIONS = 64

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
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

WRK_LUA = """
local cookies = {}
init = function(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
end
request = function()
  local cookie = cookies[math.random(#cookies)]
  return wrk.format("GET", nil, { ["Cookie"] = cookie, ["Accept"] = "application/json" })
end
"""


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float | None = None
    redis_reads_per_request: float | None = None


@dataclass
class Peer:
    name: str
    url: str
    lua: str | None = None
    samples: list[Sample] = field(default_factory=list)


def redis_reads(url: str) -> int:
    """GET and GETDEL calls Redis has served so far (session reads)."""
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "getdel"))


def run_wrk(
    peer: Peer, duration: int, connections: int, pids: list[int], redis_url: str | None = None
) -> Sample:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        peer.url,
    ]
    if peer.lua:
        command[1:1] = ["-s", peer.lua]
        command.append("--")
        command.append(peer.lua.replace(".lua", ".cookies"))
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    reads_before = redis_reads(redis_url) if redis_url else 0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_after = sum(cpu_seconds(pid) for pid in pids)
    reads = redis_reads(redis_url) - reads_before if redis_url else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{peer.name}: {non_2xx.group(1)} failed requests\n{output}")
    cpu = (cpu_after - cpu_before) / total * 1e6 if pids and total else None
    per_request = reads / total if reads is not None and total else None
    return Sample(rps, latency(output, "50%"), latency(output, "99%"), cpu, per_request)


def latency(output: str, label: str) -> float:
    found = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", output)
    if not found:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc."""
    total = 0.0
    for candidate in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(c) for c in found] + [g for c in found for g in children(int(c))]


async def sign_in_sessions(gateway_url: str, count: int) -> list[str]:
    """Real sessions: each one a full login through the fake HF (auto-approving alice)."""
    cookies = []
    for _ in range(count):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{gateway_url}/_gateway/login", params={"rd": "/"}) as response:
                await response.read()
            cookie = next(c for c in http.cookie_jar if c.key == "hf_gateway")
            cookies.append(f"hf_gateway={cookie.value}")
    return cookies


async def wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def summarise(peers: list[Peer], reference: str) -> str:
    ref = statistics.median(s.rps for s in next(p for p in peers if p.name == reference).samples)
    lines = [
        "| path | req/s median (min-max) | share of nginx proxy | p50 ms | p99 ms | CPU us/req "
        "| Redis reads/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        rps = [s.rps for s in peer.samples]
        cpu = [s.cpu_us_per_request for s in peer.samples if s.cpu_us_per_request]
        cpu_text = f"{statistics.median(cpu):.0f}" if cpu else "-"
        reads = [s.redis_reads_per_request for s in peer.samples]
        reads_text = (
            f"{statistics.median(r for r in reads if r is not None):.1%}"
            if any(r is not None for r in reads)
            else "-"
        )
        lines.append(
            f"| {peer.name} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
            f"| {statistics.median(rps) / ref:.1%} "
            f"| {statistics.median(s.p50_ms for s in peer.samples):.2f} "
            f"| {statistics.median(s.p99_ms for s in peer.samples):.2f} "
            f"| {cpu_text} | {reads_text} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: apt-get install wrk nginx redis-server)")

    work = Path(tempfile.mkdtemp(prefix="hfgw-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    (work / "www").mkdir()
    (work / "www" / "bench.txt").write_bytes(BODY)
    upstream_port, proxy_port, gateway_port, hf_port = (free_port() for _ in range(4))
    (work / "nginx.conf").write_text(
        NGINX_CONF.format(dir=work, upstream_port=upstream_port, proxy_port=proxy_port)
    )
    redis = RedisServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-g", "daemon off;"])
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.devtools.fake_hf",
                    "--port",
                    str(hf_port),
                    "--auto-login",
                    "alice",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        issuer = f"http://127.0.0.1:{hf_port}"
        await wait_http(f"{issuer}/.well-known/openid-configuration")
        key = work / "signing.pem"
        subprocess.run(
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
            check=True,
        )
        config = {
            "server": {
                "listen": f"127.0.0.1:{gateway_port}",
                "public_url": f"http://127.0.0.1:{gateway_port}",
                "metrics_listen": None,
                "workers": args.workers,
            },
            "provider": {
                "issuer": issuer,
                "api_url": issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
            "session": {
                "store": "redis",
                "redis_url": redis.url,
                "secret": "benchmark-secret-" + "b" * 40,
                "revalidate_after": "1h",
            },
            "identity": {"assertion": {"signing_key_file": str(key)}},
            "routes": [
                {
                    "name": "public",
                    "path": "/public",
                    "upstream": f"http://127.0.0.1:{upstream_port}",
                    "policy": "public",
                },
                {
                    "name": "tool",
                    "path": "/",
                    "upstream": f"http://127.0.0.1:{upstream_port}",
                    "policy": "authenticated",
                },
            ],
        }
        (work / "gateway.yaml").write_text(yaml.safe_dump(config))
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(work / "gateway.yaml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HF_GATEWAY_LOG_LEVEL": "WARNING"},
        )
        processes.append(gateway)
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        await wait_http(f"{gateway_url}/_gateway/readyz")
        await wait_http(f"http://127.0.0.1:{upstream_port}/bench.txt")
        cookies = await sign_in_sessions(gateway_url, SESSIONS)
        lua = work / "session.lua"
        lua.write_text(WRK_LUA)
        (work / "session.cookies").write_text("\n".join(cookies) + "\n")

        peers = [
            Peer("direct (nginx static)", f"http://127.0.0.1:{upstream_port}/bench.txt"),
            Peer("nginx reverse proxy", f"http://127.0.0.1:{proxy_port}/bench.txt"),
            Peer("gateway, public route", f"{gateway_url}/public/bench.txt"),
            Peer("gateway, signed in", f"{gateway_url}/bench.txt", lua=str(lua)),
        ]
        gateway_pids = [gateway.pid]
        for peer in peers:  # warm-up, not recorded
            run_wrk(peer, 2, args.connections, [])
        for _ in range(args.repeat):
            for peer in peers:
                pids = gateway_pids if peer.name.startswith("gateway") else []
                counts = redis.url if peer.lua else None
                peer.samples.append(run_wrk(peer, args.duration, args.connections, pids, counts))
        single = Peer("gateway, signed in, 1 connection", f"{gateway_url}/bench.txt", lua=str(lua))
        single.samples.append(run_wrk(single, args.duration, 1, gateway_pids, redis.url))
        table = summarise([*peers, single], "nginx reverse proxy")
        header = (
            f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"wrk -t2 -c{args.connections} -d{args.duration}s x{args.repeat} interleaved, "
            f"1 KiB body, gateway workers={args.workers}, Redis store, {SESSIONS} sessions"
        )
        print(header)
        print(table)
        results = ROOT / "benchmarks" / "results"
        results.mkdir(exist_ok=True)
        out = results / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(
            json.dumps(
                {
                    "header": header,
                    "peers": [
                        {"name": p.name, "samples": [s.__dict__ for s in p.samples]}
                        for p in [*peers, single]
                    ],
                },
                indent=2,
            )
        )
        print(f"raw results: {out.relative_to(ROOT)}")
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=15)
        redis.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
