"""The Prometheus listener: GET /metrics on ``server.metrics_listen``, never on the main one.

It is a separate aiohttp server so that nothing a client sends to the gateway's own port
can read the metrics (the main listener forwards ``/metrics`` to a route like any other
path), and so that nothing sent here reaches a route, a session or the provider: the only
answer with content is GET /metrics; any other path is 404, any other method 405.

With ``workers > 1`` every worker records into its own files under
``PROMETHEUS_MULTIPROC_DIR``; :func:`prepare_multiprocess` sets that up before the workers
start, and the listener (in the supervisor) adds the files up with prometheus-client's
MultiProcessCollector, plus the series only the supervisor knows (metrics.SUPERVISOR_SERIES:
live workers, restarts). With one process it serves the process's own registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway import metrics
from gateway.web.listener import with_head_deadline

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A scrape is a bodiless GET; anything bigger is refused before it is read.
MAX_REQUEST_BODY = 1024
# A scraper sends its request head at once; a connection that trickles one is closed.
HEAD_TIMEOUT = 10.0
REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)


def prepare_multiprocess(directory: Path) -> None:
    """Point prometheus-client at ``directory`` for every process started from now on.

    Call before the workers start (they inherit the environment and import
    prometheus-client with it set). Files left by an earlier run are removed, or its
    counters would be added to this run's.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (open websockets); its counters keep counting."""
    if MULTIPROC_ENV in os.environ:  # one process: nothing was written to files
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


async def start_metrics_listener(
    listen: str, *, multiprocess_dir: Path | None
) -> Callable[[], Awaitable[None]]:
    """Serve /metrics on ``listen`` (host:port); return the coroutine function that stops it.

    Raises OSError (with nothing left running) when the address cannot be bound.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    app[REGISTRY_KEY] = _registry(multiprocess_dir)
    app.router.add_get("/metrics", _metrics, allow_head=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    assert runner.server is not None  # set up above
    # aiohttp's own dispatch, always: its router is what answers 404 and 405 here.
    protocol = with_head_deadline(runner.server, HEAD_TIMEOUT)
    try:
        server = await asyncio.get_running_loop().create_server(
            protocol, host.strip("[]"), int(port)
        )
    except OSError:
        await runner.cleanup()
        raise

    async def stop() -> None:
        server.close()
        await runner.cleanup()

    return stop


def _registry(multiprocess_dir: Path | None) -> CollectorRegistry:
    if multiprocess_dir is None:
        return metrics.REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    for series in metrics.SUPERVISOR_SERIES:  # the supervisor's own: workers, restarts
        registry.register(series)
    return registry


async def _metrics(request: web.Request) -> web.Response:
    # Prometheus asks for OpenMetrics in Accept; anything else gets the classic text format.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(request.app[REGISTRY_KEY])
    response = web.Response(body=body, headers={"Content-Type": content_type})
    response.headers["Cache-Control"] = "no-store"
    return response
