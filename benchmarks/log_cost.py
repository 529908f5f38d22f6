"""What the access and audit lines cost: CPU per signed-in request, logs off and on.

    .venv/bin/python benchmarks/log_cost.py [--requests 3000] [--repeat 5]
    .venv/bin/python benchmarks/log_cost.py --wrk [--repeat 2]   # real `hf-gateway run`s

Everything in one process, so that other load on the machine moves the figures as little
as possible: the gateway app (as ``hf-gateway run`` serves it: the listener, the access
log class, lines written to a file through the configured formatter), the echo upstream,
the fake Hugging Face, and a client sending signed-in requests (8 at a time, keep-alive)
to an ``authenticated`` route. For each logging setting, in turn and ``--repeat`` times,
the process's CPU time over the requests is divided by their number; the client's and the
upstream's share is the same in every setting, so the differences are what the lines
cost. Prints the least and the median per setting (docs/logs.md quotes them).

``--wrk`` measures real ``hf-gateway run`` processes instead (one process, Redis store,
output to a file), one per setting and round: 16 sessions signed in, then wrk -t2 -c16
for 8 s on ``/api/echo`` of an ``authenticated`` route (echo upstream in this process),
and the gateway process's own CPU (from /proc) per completed request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from gateway.app import create_app
from gateway.config import parse_config
from gateway.config.models import LoggingConfig
from gateway.devtools.fake_hf import FakeHF
from gateway.logs import (
    ACCESS_LOGGER,
    AUDIT_LOGGER,
    AccessLogger,
    EscapingFormatter,
    JsonFormatter,
    LineHandler,
    audit,
    begin_trace,
    current_trace,
    flush_lines,
)
from gateway.policy import Decision, Reason, ReasonCode
from gateway.web.listener import listen
from tests.support.harness import BROWSER, base_raw_config, running_upstream
from tests.support.redis_server import free_port

SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"access": False, "audit": False},
    "access (json)": {"access": True, "audit": False},
    "access + audit (json)": {"access": True, "audit": True},
    "access + audit (text)": {"access": True, "audit": True, "format": "text"},
}
CONCURRENCY = 8


def use(setting: LoggingConfig, output: Path) -> logging.Handler:
    """What configure_logging does, onto a file handler this script can remove again."""
    handler = LineHandler(output.open("a"))
    handler.setFormatter(JsonFormatter() if setting.format == "json" else EscapingFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    off = logging.CRITICAL + 1
    logging.getLogger("aiohttp.access").setLevel(off)  # the upstream's and fake HF's own
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if setting.access else off)
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO if setting.audit else off)
    return handler


async def run(setting: LoggingConfig, url: str, cookie: str, requests: int) -> float:
    """CPU microseconds per request of this process, over ``requests`` requests."""
    headers = {"Cookie": cookie, "Accept": "application/json"}
    per_client = requests // CONCURRENCY
    async with aiohttp.ClientSession() as http:

        async def client() -> None:
            for _ in range(per_client):
                async with http.get(url, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status

        await client()  # warm: connections, memos
        started = time.process_time()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return (time.process_time() - started) / (per_client * CONCURRENCY) * 1e6


async def per_line(url: str, cookie: str, folder: Path) -> None:
    """The lines alone, over and over on one real request: what writing the access line
    and the audit line costs, formatting and the batched write included."""
    caught: list[tuple[Any, Any, float, Any]] = []
    original = AccessLogger.log

    def catch(self: AccessLogger, request: Any, response: Any, time: float) -> None:
        caught.append((request, response, time, current_trace()))

    AccessLogger.log = catch  # type: ignore[method-assign]
    try:
        setting = LoggingConfig.model_validate({"access": True, "audit": True})
        handler = use(setting, folder / "once.log")
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers={"Cookie": cookie}) as response:
                await response.read()
    finally:
        AccessLogger.log = original  # type: ignore[method-assign]
    request, response, took, trace = caught[-1]
    access = AccessLogger(logging.getLogger(ACCESS_LOGGER), "")
    decision = Decision(True, (Reason(ReasonCode.ALLOWED, "allow[0]"),))
    rounds = 20_000
    try:
        for fmt in ("json", "text"):
            handler.setFormatter(JsonFormatter() if fmt == "json" else EscapingFormatter())
            begin_trace(trace.id)
            current = current_trace()
            assert current is not None
            current.route, current.user, current.sub = trace.route, trace.user, trace.sub
            started = time.process_time()
            for _ in range(rounds):
                access.log(request, response, took)
            flush_lines()
            middle = time.process_time()
            for _ in range(rounds):
                audit("tool", "authenticated", "allow", decision, current.user, current.sub)
            flush_lines()
            ended = time.process_time()
            print(
                f"per line ({fmt}): access {(middle - started) / rounds * 1e6:.1f} us, "
                f"audit {(ended - middle) / rounds * 1e6:.1f} us"
            )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.stream.close()


async def wrk_rounds(repeat: int) -> None:
    """The settings against real `hf-gateway run` processes, under wrk."""
    import os

    from measure import run_wrk, wrk_script

    from tests.support.gateway_process import GatewayProcess
    from tests.support.redis_server import RedisServer

    os.chdir(Path(__file__).resolve().parent.parent)  # `python -m gateway` from this checkout
    settings = {k: v for k, v in SETTINGS.items() if "text" not in k}
    figures: dict[str, list[float]] = {name: [] for name in settings}
    redis = RedisServer().start()
    fake = FakeHF.demo()
    try:
        async with fake.serve(), running_upstream() as upstream:
            for round_ in range(repeat):
                for name, values in settings.items():
                    with tempfile.TemporaryDirectory() as scratch:
                        folder = Path(scratch)
                        process = GatewayProcess(
                            folder, issuer=fake.issuer, upstream=upstream, redis_url=redis.url
                        )
                        config = process.read_config()
                        config["logging"] = values
                        process.write_config(config)
                        await process.start()
                        try:
                            cookies = []
                            for _ in range(16):
                                jar = aiohttp.CookieJar(unsafe=True)
                                async with aiohttp.ClientSession(cookie_jar=jar) as http:
                                    await process.sign_in(http, fake, "alice")
                                    cookie = next(c for c in jar if c.key == "hf_gateway")
                                    cookies.append(f"hf_gateway={cookie.value}")
                            (folder / "cookies.txt").write_text("\n".join(cookies) + "\n")
                            assert process.process is not None
                            result = await asyncio.to_thread(
                                run_wrk,
                                f"{process.url}/api/echo",
                                wrk_script(folder / "wrk.lua", cookies=True),
                                8,
                                16,
                                cookies_file=folder / "cookies.txt",
                                pids=[process.process.pid],
                                name=name,
                            )
                        finally:
                            process.stop()
                    assert result.cpu_us_per_request is not None
                    figures[name].append(result.cpu_us_per_request)
                    print(
                        f"round {round_ + 1} {name}: {result.cpu_us_per_request:.1f} us CPU/"
                        f"request, {result.rps:.0f} req/s",
                        flush=True,
                    )
    finally:
        redis.cleanup()
    base = min(figures["off"])
    print("\n| logging | gateway CPU us/request (min; median) | lines cost (min) |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        print(
            f"| {name} | {min(values):.1f}; {statistics.median(values):.1f} "
            f"| {min(values) - base:+.1f} us |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over every setting")
    parser.add_argument("--wrk", action="store_true", help="real processes under wrk")
    args = parser.parse_args()
    if args.wrk:
        await wrk_rounds(args.repeat)
        return
    fake = FakeHF.demo()
    figures: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        async with fake.serve(), running_upstream() as upstream:
            port = free_port()
            config = parse_config(base_raw_config(port, fake.issuer, upstream))
            app = create_app(config)
            runner = web.AppRunner(
                app, access_log_class=AccessLogger, access_log=logging.getLogger(ACCESS_LOGGER)
            )
            await runner.setup()
            server = await listen(runner, "127.0.0.1", port, head_timeout=10)
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                fake.settings.auto_login = "alice"
                async with http.get(f"{base}/_gateway/login", headers=BROWSER) as response:
                    await response.read()
                cookie = next(c for c in http.cookie_jar if c.key == "hf_gateway")
            try:
                for round_ in range(args.repeat):
                    for name, values in SETTINGS.items():
                        setting = LoggingConfig.model_validate(values)
                        handler = use(setting, Path(folder) / "gateway.log")
                        try:
                            cpu = await run(
                                setting,
                                f"{base}/api/echo",
                                f"hf_gateway={cookie.value}",
                                args.requests,
                            )
                        finally:
                            logging.getLogger().removeHandler(handler)
                            handler.flush()
                            handler.stream.close()
                        figures[name].append(cpu)
                        print(f"round {round_ + 1} {name}: {cpu:.1f} us CPU/request", flush=True)
                await per_line(f"{base}/api/echo", f"hf_gateway={cookie.value}", Path(folder))
            finally:
                server.close()
                await runner.cleanup()
    # The least CPU a setting took is the figure least moved by other load on the machine.
    base_cpu = min(figures["off"])
    print("\n| logging | CPU us/request, whole process (min; median) | lines cost (min) |")
    print("|---|---:|---:|")
    for name, values in figures.items():
        print(
            f"| {name} | {min(values):.1f}; {statistics.median(values):.1f} "
            f"| {min(values) - base_cpu:+.1f} us |"
        )


if __name__ == "__main__":
    asyncio.run(main())
