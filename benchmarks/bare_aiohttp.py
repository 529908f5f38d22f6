"""The ceiling peer: a bare aiohttp.web app answering a 1 KiB body from memory.

    .venv/bin/python benchmarks/bare_aiohttp.py --port 8000 [--workers 2] [--size 1024]

No upstream, no middleware, no access log, uvloop's event loop. With ``--workers N`` it
starts N serving processes sharing the port through SO_REUSEPORT (as the gateway does with
``workers: N``) and this process only supervises them, so the process tree has the same
shape as the gateway's. Whatever the gateway does on top of aiohttp.web, it cannot be
faster than this on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from types import FrameType

import uvloop
from aiohttp import web


def make_app(body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        del request
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


async def serve(host: str, port: int, body: bytes) -> None:
    runner = web.AppRunner(make_app(body), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def supervise(argv: list[str], workers: int) -> None:
    """Start ``workers`` serving processes and forward SIGTERM/SIGINT to them."""
    children = [
        subprocess.Popen([sys.executable, __file__, *argv, "--serve"]) for _ in range(workers)
    ]

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="serving processes")
    parser.add_argument("--size", type=int, default=1024, help="body size in bytes")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve or args.workers == 1:
        uvloop.run(serve(args.host, args.port, b"x" * args.size))
        return
    supervise(
        ["--host", args.host, "--port", str(args.port), "--size", str(args.size)], args.workers
    )


if __name__ == "__main__":
    main()
