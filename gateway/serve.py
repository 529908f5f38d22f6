"""Running the gateway: the listener, uvloop, ``workers`` processes.

``workers: N`` starts N processes that share the port with SO_REUSEPORT; each loads the
configuration itself, so nothing unpicklable crosses a process boundary.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from gateway.app import create_app
from gateway.config import GatewayConfig, load_config
from gateway.logs import AccessLogger, configure_logging
from gateway.web.listener import listen

log = logging.getLogger("gateway")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


SHUTDOWN_TIMEOUT = 10.0


def serve(config: GatewayConfig, *, reuse_port: bool = False) -> None:
    """Run one gateway process until SIGTERM or SIGINT (uvloop where installed)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(config, reuse_port))


def freeze_startup_objects() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    The configuration, the libraries and the app are some 70,000 objects that live as long
    as the process; each full collection walked them all (about 37 ms here, every few
    hundred requests), which was most of the gateway's p99. Frozen, a collection only sees
    what requests created.
    """
    gc.collect()
    gc.freeze()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return None
    return uvloop.new_event_loop


async def _serve(config: GatewayConfig, reuse_port: bool) -> None:
    host, port = split_listen(config.server.listen)
    runner = web.AppRunner(
        create_app(config), access_log_class=AccessLogger, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    freeze_startup_objects()
    try:
        server = await listen(
            runner,
            host,
            port,
            head_timeout=config.server.request_head_timeout,
            reuse_port=reuse_port,
        )
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"hf-gateway: cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()  # no new connections; in-flight requests and tunnels are ended below
    await runner.cleanup()


def _worker(config_path: str) -> None:
    configure_logging()
    serve(load_config(config_path), reuse_port=True)


def run(config: GatewayConfig, config_path: str | Path) -> None:
    """Serve with ``server.workers`` processes (one runs in this process when 1)."""
    host, port = split_listen(config.server.listen)
    log.info(
        "hf-gateway listening on %s:%s for %s (%d worker%s, %s store)",
        host,
        port,
        config.server.public_url,
        config.server.workers,
        "s" if config.server.workers > 1 else "",
        config.session.store,
    )
    if config.server.workers == 1:
        serve(config)
        return
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(str(config_path),), daemon=False)
        for _ in range(config.server.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: object) -> None:
        del frame
        for worker in workers:
            if worker.pid is not None:
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()
