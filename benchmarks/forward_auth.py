"""Forward-auth (``/_gateway/auth``) against the proxy path, on one signed-in session.

    .venv/bin/python benchmarks/forward_auth.py [--duration 3] [--rounds 3] [--connections 32]

One gateway (one worker, memory store, 127.0.0.1 trusted as its front proxy) with an
``authenticated`` route to a bare aiohttp upstream answering 1 KiB. Both peers carry the same
session cookie, so both do the same session and policy work:

    proxy        GET /bench.txt through the gateway to the upstream (the full proxy path)
    forward-auth GET /_gateway/auth with X-Forwarded-Method/-Host/-Uri naming /bench.txt:
                 the decision and the identity headers, no upstream hop, no body

Runs alternate (proxy, forward-auth, proxy, ...) so drift hits both; medians over the
rounds, the gateway's CPU per request from /proc, and the ratios. Needs wrk. Results go to
benchmarks/results/forward-auth-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from measure import WRK_DONE_LUA, WrkResult, run_wrk
from services import sign_in_sessions, start_fake_hf, start_gateway, wait_http

from tests.support.harness import CLIENT_ID, CLIENT_SECRET
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results")

REQUEST_LUA = """
local cookie = nil
init = function(args) for line in io.lines(args[1]) do cookie = line end end
request = function()
  return wrk.format("GET", nil, {{ ["Cookie"] = cookie, ["Accept"] = "application/json"{extra} }})
end
"""
FORWARDED = (
    ', ["X-Forwarded-Method"] = "GET", ["X-Forwarded-Proto"] = "http",'
    ' ["X-Forwarded-Host"] = "127.0.0.1", ["X-Forwarded-Uri"] = "/bench.txt"'
)


def script(path: Path, extra: str) -> Path:
    path.write_text(WRK_DONE_LUA + REQUEST_LUA.format(extra=extra))
    return path


def config(gateway: int, upstream: int, issuer: str) -> dict[str, object]:
    return {
        "server": {
            "listen": f"127.0.0.1:{gateway}",
            "public_url": f"http://127.0.0.1:{gateway}",
            "metrics_listen": None,
            "trusted_proxies": ["127.0.0.1/32"],
        },
        "provider": {
            "issuer": issuer,
            "api_url": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        "session": {"store": "memory", "secret": "benchmark-secret-" + "b" * 40},
        "routes": [
            {
                "name": "tool",
                "path": "/",
                "upstream": f"http://127.0.0.1:{upstream}",
                "policy": "authenticated",
            }
        ],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: scripts/ensure-system-deps.sh wrk", file=sys.stderr)
        return 2
    ports = {name: free_port() for name in ("hf", "upstream", "gateway")}
    issuer = f"http://127.0.0.1:{ports['hf']}"
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="hfgw-bench-fa-") as folder:
        work = Path(folder)
        try:
            processes.append(start_fake_hf(ports["hf"]))
            bare = [sys.executable, str(Path(__file__).with_name("bare_aiohttp.py"))]
            processes.append(subprocess.Popen([*bare, "--port", str(ports["upstream"])]))
            await wait_http(f"{issuer}/.well-known/openid-configuration", processes[0])
            gateway_config = config(ports["gateway"], ports["upstream"], issuer)
            gateway, log_file = start_gateway(work, gateway_config, ROOT)
            processes.append(gateway)
            url = f"http://127.0.0.1:{ports['gateway']}"
            await wait_http(f"{url}/_gateway/readyz", gateway, log_file)
            await wait_http(f"http://127.0.0.1:{ports['upstream']}/bench.txt", processes[1])
            cookie = (await sign_in_sessions(url, 1))[0]
            cookies = work / "cookie"
            cookies.write_text(cookie)
            peers = {
                "proxy": (f"{url}/bench.txt", script(work / "proxy.lua", "")),
                "forward-auth": (f"{url}/_gateway/auth", script(work / "auth.lua", FORWARDED)),
            }
            for name, (target, lua) in peers.items():  # warm-up, and a check of the status
                run_wrk(target, lua, 1, 4, cookies_file=cookies, name=name)
            samples: dict[str, list[WrkResult]] = {name: [] for name in peers}
            for _ in range(args.rounds):
                for name, (target, lua) in peers.items():
                    samples[name].append(
                        run_wrk(
                            target,
                            lua,
                            args.duration,
                            args.connections,
                            cookies_file=cookies,
                            pids=[gateway.pid],
                            name=name,
                        )
                    )
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                process.wait(10)

    def med(name: str, field: str) -> float:
        values = [getattr(s, field) for s in samples[name]]
        return float(statistics.median(v for v in values if v is not None))

    print(
        f"wrk -c{args.connections}, {args.rounds} rounds of {args.duration:g} s, medians "
        "(one gateway worker, signed in)"
    )
    print(f"{'':14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}")
    for name in peers:
        print(
            f"{name:14}{med(name, 'rps'):>10.0f}{med(name, 'p50_ms'):>9.2f}"
            f"{med(name, 'p99_ms'):>9.2f}{med(name, 'cpu_us_per_request'):>12.0f}"
        )
    ratios = {
        "rps": med("forward-auth", "rps") / med("proxy", "rps"),
        "p50": med("forward-auth", "p50_ms") / med("proxy", "p50_ms"),
        "cpu_per_request": med("forward-auth", "cpu_us_per_request")
        / med("proxy", "cpu_us_per_request"),
    }
    print(
        f"forward-auth / proxy: {ratios['rps']:.2f}x the requests per second, "
        f"{ratios['p50']:.2f}x the median latency, {ratios['cpu_per_request']:.2f}x the CPU "
        "per request"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"forward-auth-{stamp}.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "samples": {n: [s.__dict__ for s in v] for n, v in samples.items()},
                "ratios": ratios,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
