"""How often signed-in requests make the gateway read Redis, at ~500 req/s, in steady state.

    .venv/bin/python benchmarks/warm_reads.py [--duration 10] [--workers 2]

The gateway (``workers`` processes, Redis store) in front of nginx serving 1 KiB, 64 real
sessions signed in through the fake Hugging Face, wrk -t2 -c10 pacing each connection to
offer ~500 req/s in all (as throughput.py's fixed-load phase). One paced run of 3 s warms
the sessions up and calibrates the pause, then the measured run counts, from Redis's own
INFO commandstats, the session store's direct reads (GET, GETDEL: a request that found no
warm entry) and its batched re-checks (MGET) per request. throughput.py measures right
after other peers, when every warm entry has aged out, so its figure includes one cold
read per session and worker; this one does not. Needs wrk, nginx and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from measure import run_wrk, wrk_script
from services import (
    sign_in_sessions,
    start_fake_hf,
    start_gateway,
    wait_http,
    write_nginx_conf,
    write_signing_key,
)
from throughput import (
    FIRST_DELAY_MS,
    RATE_CONNECTIONS,
    SESSIONS,
    gateway_config,
    next_delay,
)

from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def commands(server: RedisServer) -> dict[str, int]:
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return {
        c: int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "getdel", "mget")
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds measured")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None or shutil.which("wrk") is None:
        sys.exit("missing wrk or nginx: run scripts/ensure-system-deps.sh wrk nginx redis-server")
    work = Path(tempfile.mkdtemp(prefix="hfgw-warm-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    (work / "www").mkdir()
    (work / "www" / "bench.txt").write_bytes(b"x" * 1024)
    ports = {name: free_port() for name in ("upstream", "proxy", "gateway", "hf")}
    server = RedisServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        conf = write_nginx_conf(work, ports["upstream"], ports["proxy"])
        processes.append(subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"]))
        processes.append(start_fake_hf(ports["hf"]))
        issuer = f"http://127.0.0.1:{ports['hf']}"
        await wait_http(f"{issuer}/.well-known/openid-configuration", processes[1])
        write_signing_key(work)
        config = gateway_config(args, work, ports, issuer, server.url)
        gateway, log_file = start_gateway(work, config, ROOT)
        processes.append(gateway)
        url = f"http://127.0.0.1:{ports['gateway']}"
        await wait_http(f"{url}/_gateway/readyz", gateway, log_file)
        for attempt in range(10):
            try:
                cookies = await sign_in_sessions(url, SESSIONS)
                break
            except RuntimeError:  # no cookie: a worker still loading the provider (503)
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        cookies_file = work / "session.cookies"
        cookies_file.write_text("\n".join(cookies) + "\n")
        script = work / "signed-paced.lua"
        delay = FIRST_DELAY_MS
        wrk_script(script, cookies=True, delay_ms=delay)
        warm = run_wrk(f"{url}/bench.txt", script, 3, RATE_CONNECTIONS, cookies_file=cookies_file)
        wrk_script(script, cookies=True, delay_ms=next_delay(delay, warm.rps))
        before = commands(server)
        result = run_wrk(
            f"{url}/bench.txt", script, args.duration, RATE_CONNECTIONS, cookies_file=cookies_file
        )
        after = commands(server)
        direct = after["get"] + after["getdel"] - before["get"] - before["getdel"]
        batched = after["mget"] - before["mget"]
        total = result.requests
        print(
            f"{total} signed-in requests in {args.duration:.0f} s ({result.rps:.0f} req/s), "
            f"{SESSIONS} sessions, {args.workers} workers: "
            f"direct reads {direct} ({direct / total:.2%} of requests), "
            f"batched re-checks {batched} ({batched / total:.2%}), "
            f"Redis reads per request {(direct + batched) / total:.2%}"
        )
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
