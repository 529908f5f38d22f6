"""hf-gateway next to its peers in one run, against PERFORMANCE.md's targets.

    .venv/bin/python benchmarks/throughput.py [--duration 10] [--repeat 3] [--workers 2]
    .venv/bin/python benchmarks/throughput.py --quick      # 1 round of 3 s: a smoke check

Everything runs on 127.0.0.1, each round measuring every peer in turn (A B C .., A B C ..):

  saturation (wrk -t2 -c64), 1 KiB body:
    direct            nginx serving a 1 KiB file (the upstream itself)
    nginx-proxy       nginx as a reverse proxy with upstream keepalive (the reference)
    bare aiohttp.web  aiohttp.web answering 1 KiB from memory, uvloop, as many processes as
                      the gateway's workers (the ceiling of any aiohttp.web front end)
    public            the gateway on a public route (proxy cost, no authentication)
    signed-in         the gateway on an `authenticated` route, Redis store, 64 sessions
  fixed offered load (~500 req/s: wrk -t2 -c10, each connection pausing between requests):
    p50/p99/p99.9 of nginx-proxy, public and signed-in
  streaming a 512 MB body: direct from nginx versus through the gateway signed in, read into
    nothing by curl (or aiohttp's iter_any when curl is missing), the gateway's RSS sampled
    every 50 ms

and once at the end, signed-in with one connection. Every signed-in request carries one of
64 real session cookies (signed in through the fake Hugging Face), so the session path is
the real one. Prints medians with min-max, then a summary of PERFORMANCE.md's targets, and
stores everything as JSON in benchmarks/results/. Needs wrk, nginx, redis-server (and curl).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from measure import (
    MB,
    RssSampler,
    RssSnapshot,
    StreamResult,
    WrkResult,
    rss_snapshot,
    run_wrk,
    stream_download,
    wrk_script,
)
from services import (
    check_body,
    redis_reads,
    sign_in_sessions,
    start_fake_hf,
    start_gateway,
    wait_http,
    write_nginx_conf,
    write_signing_key,
)

from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "hf-gateway-demo"
CLIENT_SECRET = "demo-secret-not-for-production"
BODY_SIZE = 1024
STREAM_SIZE = 512 * 1024 * 1024
SESSIONS = 64
RATE = 500  # offered load of the latency runs, req/s
RATE_CONNECTIONS = 10
RATE_TOLERANCE = 0.10  # the achieved rate must be within 10 % of RATE
# Each connection sends, waits for the answer, then pauses: 10 connections / (19 ms pause
# + ~1 ms answer) = 500 req/s. A slower peer needs a shorter pause for the same rate, so each
# paced peer's pause is recalibrated from its previous run (first from its warm-up run).
CYCLE_MS = RATE_CONNECTIONS * 1000 / RATE
FIRST_DELAY_MS = CYCLE_MS - 1

DIRECT = "direct (nginx static)"
NGINX_PROXY = "nginx reverse proxy"
BARE = "bare aiohttp.web"
PUBLIC = "gateway, public route"
SIGNED_IN = "gateway, signed in"
SINGLE = "gateway, signed in, 1 connection"


@dataclass
class Peer:
    """One thing wrk loads: its URL, Lua script and what is counted around each run."""

    name: str
    url: str
    script: Path
    cookies_file: Path | None = None
    pids: list[int] = field(default_factory=list)
    count_reads: bool = False
    rss: RssSampler | None = None
    delay_ms: float | None = None  # paced at ~RATE req/s when set
    samples: list[WrkResult] = field(default_factory=list)


@dataclass
class StreamPeer:
    name: str
    url: str
    cookie: str | None = None
    pids: list[int] = field(default_factory=list)
    samples: list[StreamResult] = field(default_factory=list)


@dataclass
class Target:
    """One row of PERFORMANCE.md's target table, measured."""

    what: str
    measured: str
    milestone: str
    goal: str
    verdict: str
    value: float | None = None


T = TypeVar("T")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """`median (min-max)`, or just the value when there is one sample."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def ratio(peer: Sequence[float], reference: Sequence[float]) -> float:
    return median(peer) / median(reference) if peer and reference else float("nan")


def pct(value: float) -> str:
    return f"{value:.1%}"


def num(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:.2f}"


def pause(sample: WrkResult) -> float | None:
    return sample.delay_ms


def field_of(samples: Sequence[T], get: Callable[[T], float | None]) -> list[float]:
    return [v for v in (get(s) for s in samples) if v is not None]


# --- running ------------------------------------------------------------------------------


def next_delay(delay_ms: float, achieved_rps: float) -> float:
    """The pause that would have given RATE, from the time a cycle spent outside it."""
    busy_ms = RATE_CONNECTIONS * 1000 / achieved_rps - delay_ms
    return max(0.0, CYCLE_MS - max(0.0, busy_ms))


def load(peer: Peer, duration: float, connections: int, redis: RedisServer | None) -> WrkResult:
    """One wrk run of ``peer``; with ``redis`` None it is a warm-up and nothing is counted."""
    if peer.delay_ms is not None:
        wrk_script(peer.script, cookies=peer.cookies_file is not None, delay_ms=peer.delay_ms)
    sampler = peer.rss if peer.rss is not None and redis is not None else nullcontext()
    with sampler:
        result = run_wrk(
            peer.url,
            peer.script,
            duration,
            connections,
            cookies_file=peer.cookies_file,
            pids=peer.pids if redis else [],
            redis_reads=redis_reads(redis) if redis and peer.count_reads else None,
            name=peer.name,
        )
    if peer.delay_ms is not None:
        result.delay_ms = peer.delay_ms
        wanted = next_delay(peer.delay_ms, result.rps)
        # A warm-up sets the pause outright; measured runs move it half-way (less jitter).
        peer.delay_ms = wanted if redis is None else (peer.delay_ms + wanted) / 2
    return result


async def stream(peer: StreamPeer, use_curl: bool) -> StreamResult:
    sampler = RssSampler(peer.pids) if peer.pids else None
    if sampler is None:
        return await stream_download(peer.url, STREAM_SIZE, peer.cookie, use_curl, peer.name)
    with sampler:
        result = await stream_download(peer.url, STREAM_SIZE, peer.cookie, use_curl, peer.name)
    assert sampler.before is not None
    result.rss_before_mb = sampler.before.total_mb
    result.rss_peak_mb = sampler.peak_total_mb
    result.rss_growth_mb = sampler.growth_mb
    return result


def gateway_config(
    args: argparse.Namespace, work: Path, ports: dict[str, int], issuer: str, redis_url: str
) -> dict[str, Any]:
    upstream = f"http://127.0.0.1:{ports['upstream']}"
    return {
        "server": {
            "listen": f"127.0.0.1:{ports['gateway']}",
            "public_url": f"http://127.0.0.1:{ports['gateway']}",
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
            "redis_url": redis_url,
            "secret": "benchmark-secret-" + "b" * 40,
            "revalidate_after": "1h",
        },
        "identity": {"assertion": {"signing_key_file": str(work / "signing.pem")}},
        # As the nginx peer runs with access_log off (docs/logs.md has what the lines cost).
        "logging": {"access": False, "audit": False},
        "routes": [
            {"name": "public", "path": "/public", "upstream": upstream, "policy": "public"},
            {"name": "tool", "path": "/", "upstream": upstream, "policy": "authenticated"},
        ],
    }


# --- reporting ----------------------------------------------------------------------------


def saturation_table(peers: list[Peer]) -> str:
    by_name = {p.name: p for p in peers}
    proxy = [s.rps for s in by_name[NGINX_PROXY].samples]
    bare = [s.rps for s in by_name[BARE].samples]
    lines = [
        "| path | req/s median (min-max) | share of nginx proxy | share of bare aiohttp.web "
        "| p50 ms | p99 ms | CPU us/req | Redis reads/req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        rps = [s.rps for s in peer.samples]
        cpu = field_of(peer.samples, lambda s: s.cpu_us_per_request)
        reads = field_of(peer.samples, lambda s: s.redis_reads_per_request)
        lines.append(
            f"| {peer.name} | {spread(rps, num)} | {pct(ratio(rps, proxy))} "
            f"| {pct(ratio(rps, bare))} "
            f"| {ms(median([s.p50_ms for s in peer.samples]))} "
            f"| {ms(median([s.p99_ms for s in peer.samples]))} "
            f"| {num(median(cpu)) if cpu else '-'} | {pct(median(reads)) if reads else '-'} |"
        )
    return "\n".join(lines)


def rate_table(peers: list[Peer]) -> str:
    proxy_p99 = [s.p99_ms for s in next(p for p in peers if p.name == NGINX_PROXY).samples]
    lines = [
        f"| path | achieved req/s (offered ~{RATE}) | p50 ms | p99 ms | p99.9 ms "
        "| added p99 over nginx proxy, ms |",
        "|---|---|---|---|---|---|",
    ]
    for peer in peers:
        p99 = [s.p99_ms for s in peer.samples]
        added = "-" if peer.name == NGINX_PROXY else f"{median(p99) - median(proxy_p99):+.2f}"
        lines.append(
            f"| {peer.name} | {spread([s.rps for s in peer.samples], num)} "
            f"| {spread([s.p50_ms for s in peer.samples], ms)} | {spread(p99, ms)} "
            f"| {spread([s.p999_ms for s in peer.samples], ms)} | {added} |"
        )
    return "\n".join(lines)


def stream_table(peers: list[StreamPeer]) -> str:
    direct = [s.mb_per_s for s in peers[0].samples]
    lines = [
        "| path | MB/s median (min-max) | share of direct | RSS growth MB, worst round |",
        "|---|---|---|---|",
    ]
    for peer in peers:
        speed = [s.mb_per_s for s in peer.samples]
        growth = field_of(peer.samples, lambda s: s.rss_growth_mb)
        lines.append(
            f"| {peer.name} | {spread(speed, num)} | {pct(ratio(speed, direct))} "
            f"| {f'{max(growth):.1f}' if growth else '-'} |"
        )
    return "\n".join(lines)


def verdict(value: float, milestone: float | None, goal: float, higher_is_better: bool) -> str:
    def meets(limit: float) -> bool:
        return value >= limit if higher_is_better else value <= limit

    if value != value:  # NaN: nothing measured
        return "not measured"
    if meets(goal):
        return "goal met"
    if milestone is None:
        return "goal missed"
    return "milestone met" if meets(milestone) else "below milestone"


def targets(
    saturation: list[Peer],
    rate: list[Peer],
    streaming: list[StreamPeer],
    idle: RssSnapshot,
    load_rss: RssSampler,
    workers: int,
) -> list[Target]:
    rps = {p.name: [s.rps for s in p.samples] for p in saturation}
    signed = rps[SIGNED_IN]
    p99 = {p.name: median([s.p99_ms for s in p.samples]) for p in rate}
    reads = field_of(
        next(p for p in saturation if p.name == SIGNED_IN).samples,
        lambda s: s.redis_reads_per_request,
    )
    paced_reads = field_of(
        next(p for p in rate if p.name == SIGNED_IN).samples, lambda s: s.redis_reads_per_request
    )
    direct_mb, gateway_mb = ([s.mb_per_s for s in p.samples] for p in streaming)
    growth = max(field_of(streaming[1].samples, lambda s: s.rss_growth_mb), default=float("nan"))

    def row(
        what: str,
        value: float,
        shown: str,
        milestone: tuple[str, float | None],
        goal: tuple[str, float],
        higher_is_better: bool = True,
    ) -> Target:
        return Target(
            what,
            shown,
            milestone[0],
            goal[0],
            verdict(value, milestone[1], goal[1], higher_is_better),
            None if value != value else round(value, 4),
        )

    def per_round(peer: list[float], reference: list[float]) -> str:
        rounds = [a / b for a, b in zip(peer, reference, strict=True)]
        return f"{pct(ratio(peer, reference))}" + (
            f" (rounds {pct(min(rounds))}-{pct(max(rounds))})" if len(rounds) > 1 else ""
        )

    signed_proxy = ratio(signed, rps[NGINX_PROXY])
    signed_bare = ratio(signed, rps[BARE])
    signed_public = ratio(signed, rps[PUBLIC])
    added_p99 = p99[SIGNED_IN] - p99[NGINX_PROXY]
    stream_ratio = ratio(gateway_mb, direct_mb)
    return [
        row(
            f"signed-in throughput, workers: {workers} / nginx proxy",
            signed_proxy,
            per_round(signed, rps[NGINX_PROXY]),
            (">= 15 %", 0.15),
            (">= 35 %", 0.35),
        ),
        row(
            "signed-in throughput / bare aiohttp.web, same processes",
            signed_bare,
            per_round(signed, rps[BARE]),
            (">= 30 %", 0.30),
            (">= 50 %", 0.50),
        ),
        row(
            "signed-in / the gateway's public route (cost of auth)",
            signed_public,
            per_round(signed, rps[PUBLIC]),
            (">= 95 %", 0.95),
            (">= 97 %", 0.97),
        ),
        row(
            "signed-in requests that read Redis (warm sessions)",
            median(reads),
            f"{pct(median(reads))} at saturation, {pct(median(paced_reads))} at {RATE} req/s "
            "(revocation delay not measured here)",
            ("<= 20 %", 0.20),
            ("<= 5 %", 0.05),
            higher_is_better=False,
        ),
        row(
            f"added p99 over nginx proxy at {RATE} req/s, signed in",
            added_p99,
            f"{added_p99:+.2f} ms ({ms(p99[SIGNED_IN])} vs {ms(p99[NGINX_PROXY])}; "
            f"public {p99[PUBLIC] - p99[NGINX_PROXY]:+.2f} ms)",
            ("<= 8 ms", 8.0),
            ("<= 2 ms", 2.0),
            higher_is_better=False,
        ),
        row(
            "streaming 512 MB, gateway / direct",
            stream_ratio,
            f"{pct(stream_ratio)} ({num(median(gateway_mb))} vs {num(median(direct_mb))} MB/s)",
            (">= 25 %", 0.25),
            (">= 50 %", 0.50),
        ),
        row(
            "streaming 512 MB, gateway RSS growth (worst round)",
            growth,
            f"{growth:.1f} MB",
            ("-", None),
            ("< 64 MB", 64.0),
            higher_is_better=False,
        ),
        row(
            "gateway RSS per worker, idle (largest process)",
            idle.largest_mb,
            f"{idle.largest_mb:.1f} MB ({idle.processes} processes, {idle.total_mb:.0f} MB)",
            ("< 80 MB", 80.0),
            ("< 60 MB", 60.0),
            higher_is_better=False,
        ),
        row(
            "gateway RSS per worker, under load (peak, largest process)",
            load_rss.peak_largest_mb,
            f"{load_rss.peak_largest_mb:.1f} MB (tree peak {load_rss.peak_total_mb:.0f} MB)",
            ("< 80 MB", 80.0),
            ("< 60 MB", 60.0),
            higher_is_better=False,
        ),
    ]


def targets_table(rows: list[Target]) -> str:
    lines = ["| target | measured | first milestone | goal | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {t.what} | {t.measured} | {t.milestone} | {t.goal} | {t.verdict} |" for t in rows]
    return "\n".join(lines)


def results_json(
    header: str,
    args: argparse.Namespace,
    saturation: list[Peer],
    rate: list[Peer],
    streaming: list[StreamPeer],
    idle: RssSnapshot,
    load_rss: RssSampler,
    rows: list[Target],
    client: str,
) -> dict[str, Any]:
    def samples(peers: Sequence[Peer | StreamPeer]) -> list[dict[str, Any]]:
        return [{"name": p.name, "samples": [asdict(s) for s in p.samples]} for p in peers]

    return {
        "header": header,
        "args": vars(args),
        "mb": MB,
        "peers": samples(saturation),
        "fixed_rate": {
            "offered_rps": RATE,
            "connections": RATE_CONNECTIONS,
            "tolerance": RATE_TOLERANCE,
            "peers": samples(rate),
        },
        "streaming": {"bytes": STREAM_SIZE, "client": client, "peers": samples(streaming)},
        "gateway_rss": {
            "idle": asdict(idle),
            "under_load": {
                "peak_total_mb": load_rss.peak_total_mb,
                "peak_largest_mb": load_rss.peak_largest_mb,
                "samples": load_rss.samples,
            },
        },
        "targets": [asdict(t) for t in rows],
    }


# --- the run ------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=64, help="saturation connections")
    parser.add_argument("--workers", type=int, default=2, help="gateway (and bare) processes")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 round of 3 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat = 3, 1
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    missing = [t for t in ("wrk", "redis-server") if shutil.which(t) is None]
    missing += [] if nginx else ["nginx"]
    if missing or nginx is None:
        needed = "wrk nginx redis-server"
        sys.exit(f"missing {' '.join(missing)}: run scripts/ensure-system-deps.sh {needed}")
    use_curl = shutil.which("curl") is not None

    work = Path(tempfile.mkdtemp(prefix="hfgw-bench-"))
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    (work / "www").mkdir()
    (work / "www" / "bench.txt").write_bytes(b"x" * BODY_SIZE)
    with (work / "www" / "big.bin").open("wb") as big:
        big.truncate(STREAM_SIZE)  # sparse: 512 MB of zeros, no disk space
    ports = {name: free_port() for name in ("upstream", "proxy", "gateway", "hf", "bare")}
    redis = RedisServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        conf = write_nginx_conf(work, ports["upstream"], ports["proxy"])
        processes.append(subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"]))
        processes.append(start_fake_hf(ports["hf"]))
        bare = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("bare_aiohttp.py")),
                "--port",
                str(ports["bare"]),
                "--workers",
                str(args.workers),
                "--size",
                str(BODY_SIZE),
            ]
        )
        processes.append(bare)
        issuer = f"http://127.0.0.1:{ports['hf']}"
        await wait_http(f"{issuer}/.well-known/openid-configuration", processes[1])
        write_signing_key(work)
        config = gateway_config(args, work, ports, issuer, redis.url)
        gateway, gateway_log = start_gateway(work, config, ROOT)
        processes.append(gateway)
        gateway_url = f"http://127.0.0.1:{ports['gateway']}"
        upstream_url = f"http://127.0.0.1:{ports['upstream']}"
        proxy_url = f"http://127.0.0.1:{ports['proxy']}"
        bare_url = f"http://127.0.0.1:{ports['bare']}"
        await wait_http(f"{gateway_url}/_gateway/readyz", gateway, gateway_log)
        await wait_http(f"{upstream_url}/bench.txt", processes[0])
        await wait_http(f"{bare_url}/bench.txt", bare)
        cookies = await sign_in_sessions(gateway_url, SESSIONS)
        cookies_file = work / "session.cookies"
        cookies_file.write_text("\n".join(cookies) + "\n")
        for url, cookie in [
            (f"{upstream_url}/bench.txt", None),
            (f"{proxy_url}/bench.txt", None),
            (f"{bare_url}/bench.txt", None),
            (f"{gateway_url}/public/bench.txt", None),
            (f"{gateway_url}/bench.txt", cookies[0]),
        ]:
            await check_body(url, BODY_SIZE, cookie)

        # Every peer gets the same requests, built by the same Lua (a cookie from the pool,
        # Accept: application/json), so wrk spends the same on each and only the server
        # side differs; a public route or nginx simply ignores the cookie.
        signed = wrk_script(work / "signed.lua", cookies=True)
        same = {"cookies_file": cookies_file}
        paced: dict[str, Any] = {"delay_ms": FIRST_DELAY_MS}
        gw = [gateway.pid]
        idle = rss_snapshot(gw)
        load_rss = RssSampler(gw)
        signed_in: dict[str, Any] = {
            "cookies_file": cookies_file,
            "pids": gw,
            "count_reads": True,
            "rss": load_rss,
        }
        saturation = [
            Peer(DIRECT, f"{upstream_url}/bench.txt", signed, **same),
            Peer(NGINX_PROXY, f"{proxy_url}/bench.txt", signed, **same),
            Peer(BARE, f"{bare_url}/bench.txt", signed, pids=[bare.pid], **same),
            Peer(PUBLIC, f"{gateway_url}/public/bench.txt", signed, pids=gw, rss=load_rss, **same),
            Peer(SIGNED_IN, f"{gateway_url}/bench.txt", signed, **signed_in),
        ]
        rate = [
            Peer(NGINX_PROXY, f"{proxy_url}/bench.txt", work / "proxy-paced.lua", **paced, **same),
            Peer(
                PUBLIC,
                f"{gateway_url}/public/bench.txt",
                work / "public-paced.lua",
                pids=gw,
                rss=load_rss,
                **paced,
                **same,
            ),
            Peer(
                SIGNED_IN,
                f"{gateway_url}/bench.txt",
                work / "signed-paced.lua",
                **signed_in,
                **paced,
            ),
        ]
        streaming = [
            StreamPeer(DIRECT, f"{upstream_url}/big.bin"),
            StreamPeer(SIGNED_IN, f"{gateway_url}/big.bin", cookies[0], gw),
        ]
        single = Peer(SINGLE, f"{gateway_url}/bench.txt", signed, **signed_in)

        warm_up = 1 if args.quick else 2
        for peer in saturation:  # not recorded
            load(peer, warm_up, args.connections, None)
        for peer in rate:  # not recorded: calibrates each peer's pause
            load(peer, 2, RATE_CONNECTIONS, None)
        for stream_peer in streaming:  # not recorded: fills the page cache, opens pools
            await stream_download(
                stream_peer.url, STREAM_SIZE, stream_peer.cookie, use_curl, stream_peer.name
            )
        for round_no in range(1, args.repeat + 1):
            print(f"round {round_no}/{args.repeat}", file=sys.stderr, flush=True)
            for peer in saturation:
                peer.samples.append(load(peer, args.duration, args.connections, redis))
            for peer in rate:
                peer.samples.append(load(peer, args.duration, RATE_CONNECTIONS, redis))
            for stream_peer in streaming:
                stream_peer.samples.append(await stream(stream_peer, use_curl))
        single.samples.append(load(single, args.duration, 1, redis))

        off_rate = [
            f"{p.name} {s.rps:,.0f} req/s"
            for p in rate
            for s in p.samples
            if abs(s.rps - RATE) > RATE * RATE_TOLERANCE
        ]
        rows = targets(saturation, rate, streaming, idle, load_rss, args.workers)
        header = (
            f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"{args.repeat} round{'s' if args.repeat > 1 else ''} interleaved of "
            f"{args.duration:g} s, 1 KiB body, gateway workers={args.workers}, "
            f"bare aiohttp.web processes={args.workers}, Redis store, {SESSIONS} sessions"
        )
        print(header)
        print(f"\nSaturation, wrk -t2 -c{args.connections} (1 connection: one round at the end)")
        print(saturation_table([*saturation, single]))
        print(
            f"\nFixed offered load, wrk -t2 -c{RATE_CONNECTIONS}, each connection pausing "
            f"between requests (calibrated per peer to offer {RATE} req/s: "
            + ", ".join(f"{p.name} {median(field_of(p.samples, pause)):.1f} ms" for p in rate)
            + ")"
        )
        print(rate_table(rate))
        if off_rate:
            print(f"warning: achieved rate off {RATE} req/s by > 10 %: {', '.join(off_rate)}")
        client = "curl" if use_curl else "aiohttp iter_any"
        print(f"\nStreaming {STREAM_SIZE // 2**20} MiB ({client}, MB = 10^6 bytes)")
        print(stream_table(streaming))
        print("\nSummary of targets (PERFORMANCE.md)")
        print(targets_table(rows))

        results = ROOT / "benchmarks" / "results"
        results.mkdir(exist_ok=True)
        name = "quick-latest" if args.quick else f"throughput-{time.strftime('%Y%m%d-%H%M%S')}"
        out = results / f"{name}.json"
        out.write_text(
            json.dumps(
                results_json(
                    header,
                    args,
                    [*saturation, single],
                    rate,
                    streaming,
                    idle,
                    load_rss,
                    rows,
                    client,
                ),
                indent=2,
            )
        )
        print(f"raw results: {out.relative_to(ROOT)}")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
