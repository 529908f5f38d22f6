"""Running one gateway process: the listener, uvloop, signals, reload and the drain.

``hf-gateway run`` with ``workers: 1`` is one such process; with more, the supervisor
(gateway/supervisor.py) starts that many, each binding the port with SO_REUSEPORT and
each talking to the supervisor over a pipe (ready or failed at start, reload requests,
and the end of the pipe when the supervisor is gone).

Signals: SIGHUP reloads the configuration (gateway/reload.py). SIGTERM and SIGINT stop
with a drain: readyz answers 503 at once, the listener keeps accepting for
``server.drain_delay``, then closes; websockets are closed with 1001 and event streams
ended; requests in flight get ``server.shutdown_timeout``; then whatever is left is cut.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from gateway import __version__
from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.logs import ACCESS_LOGGER, FAULTS, AccessLogger, configure_logging, flush_lines
from gateway.metrics_listener import start_metrics_listener
from gateway.reload import Reloader
from gateway.web.context import LIVE
from gateway.web.drain import end_event_streams
from gateway.web.listener import listen
from gateway.web.tunnels import GOING_AWAY

log = logging.getLogger("gateway")

EXIT_OK = 0
EXIT_FAILED = 1
"""The gateway could not keep running (the supervisor gave up on crashing workers)."""
EXIT_CANNOT_START = 2
"""A port is taken or cannot be bound (also what ``run`` returns for an invalid config)."""
FINAL_GRACE = 0.5
"""After shutdown_timeout, how long aiohttp may still wait (twice, once before and once
after cancelling) for a handler that ignores the end; its own shutdown would wait
shutdown_timeout twice."""
CLEANUP_TIMEOUT = 5.0
"""What closing the store, the provider and the pools may take once requests are done."""
MAX_ROUTES_SHOWN = 50


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class CannotListen(Exception):
    """An address a gateway needs is taken; the message is the one line to print."""


def probe(listen: str, what: str = "") -> None:
    """Bind ``listen`` once without SO_REUSEPORT, so a port another gateway already
    serves with SO_REUSEPORT counts as taken; raises CannotListen."""
    host, port = split_listen(listen)
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {what}{listen}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise CannotListen(
                    f"cannot listen on {what}{listen}: {exc.strerror or exc}"
                ) from None


def run(config: GatewayConfig, config_path: str | Path) -> int:
    """``hf-gateway run``: one process, or a supervisor and ``server.workers`` of them."""
    if config.server.workers > 1:
        from gateway.supervisor import supervise

        return supervise(config, config_path)
    try:
        probe(config.server.listen)
        if config.server.metrics_listen is not None:
            probe(config.server.metrics_listen, "metrics_listen ")
    except CannotListen as exc:
        print(f"hf-gateway: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return serve(config, config_path)


def serve(config: GatewayConfig, config_path: str | Path, link: Connection | None = None) -> int:
    """Run one gateway process until it is stopped; returns its exit code.

    ``link`` is the pipe to the supervisor (a worker); None for a process on its own,
    which then also serves the metrics listener and watches the config files.
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(config, Path(config_path), link))


def worker_main(config: GatewayConfig, config_path: str, link: Connection) -> None:
    """The entry point of a worker process (the supervisor starts it with ``spawn``)."""
    configure_logging(config.logging)
    raise SystemExit(serve(config, config_path, link))


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


async def _serve(config: GatewayConfig, config_path: Path, link: Connection | None) -> int:
    app = create_app(config)
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=logging.getLogger(ACCESS_LOGGER),
        shutdown_timeout=FINAL_GRACE,
        handle_signals=False,
    )
    await runner.setup()
    host, port = split_listen(config.server.listen)
    try:
        server = await listen(
            runner,
            host,
            port,
            head_timeout=config.server.request_head_timeout,
            reuse_port=link is not None,
        )
    except OSError as exc:
        await runner.cleanup()
        return _cannot_start(f"cannot listen on {config.server.listen}: {exc.strerror}", link)
    stop_metrics: Callable[[], Awaitable[None]] | None = None
    if link is None and config.server.metrics_listen is not None:
        try:
            stop_metrics = await start_metrics_listener(
                config.server.metrics_listen, multiprocess_dir=None
            )
        except OSError as exc:
            server.close()
            await runner.cleanup()
            where = config.server.metrics_listen
            return _cannot_start(f"cannot listen on metrics_listen {where}: {exc.strerror}", link)
    freeze_startup_objects()
    reloader = Reloader(app, config_path)
    stopping = asyncio.Event()
    background: set[asyncio.Task[object]] = set()

    def start(work: Callable[[], Awaitable[object]]) -> None:
        if stopping.is_set():  # a stopping process reloads nothing
            return
        task = asyncio.ensure_future(work())
        background.add(task)
        task.add_done_callback(background.discard)

    def reload(why: str) -> None:
        start(lambda: reloader.reload(why))

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload, "SIGHUP")
    if link is None:
        start(reloader.watch_files)
        for line in startup_lines(config, str(config_path)):
            log.info("%s", line)
    else:
        _listen_to_supervisor(loop, link, stopping, reload)
        link.send(("ready", ""))
    await stopping.wait()
    for task in list(background):
        task.cancel()
    await drain(app, runner, server, reloader.config)
    FAULTS.flush()  # the counts of faults still being summarised
    flush_lines()  # and the access and audit lines not written yet
    if stop_metrics is not None:
        await stop_metrics()
    if link is not None:
        loop.remove_reader(link.fileno())
    return EXIT_OK


def _cannot_start(message: str, link: Connection | None) -> int:
    if link is None:
        print(f"hf-gateway: {message}", file=sys.stderr)
    else:  # the supervisor prints it, once for all workers
        link.send(("failed", message))
    return EXIT_CANNOT_START


def _listen_to_supervisor(
    loop: asyncio.AbstractEventLoop,
    link: Connection,
    stopping: asyncio.Event,
    reload: Callable[[str], None],
) -> None:
    """Reload requests arrive on the pipe; its end means the supervisor is gone, and a
    worker never outlives it."""

    def readable() -> None:
        try:
            kind, detail = link.recv()
        except (EOFError, OSError):
            loop.remove_reader(link.fileno())
            if not stopping.is_set():
                log.warning("the supervisor is gone: stopping")
                stopping.set()
            return
        if kind == "reload":
            reload(detail)

    loop.add_reader(link.fileno(), readable)


async def drain(
    app: web.Application, runner: web.AppRunner, server: asyncio.Server, config: GatewayConfig
) -> None:
    """Stop as DESIGN §5 and docs/operations.md describe: readyz 503, drain_delay with the
    listener open, then shutdown_timeout for what is in flight, then cut what is left."""
    live = app[LIVE]
    live.draining = True
    delay = config.server.drain_delay
    timeout = config.server.shutdown_timeout
    log.info(
        "stopping: readyz answers 503; the listener stays open for %ds (server.drain_delay)",
        delay,
    )
    if delay:
        await asyncio.sleep(delay)
    server.close()
    if runner.server is not None:
        runner.server.pre_shutdown()  # idle keep-alive connections close now, busy ones after
    live.current.tunnels.end_all(GOING_AWAY, "the gateway is shutting down")
    in_flight = len(live.flights)
    streams = await end_event_streams(live.flights)
    log.info(
        "listener closed; %d requests in flight get up to %ds (server.shutdown_timeout); "
        "%d event streams ended, websockets closed with 1001",
        in_flight,
        timeout,
        streams,
    )
    try:
        async with asyncio.timeout(timeout):
            await live.idle()
    except TimeoutError:
        log.warning("%d requests still running after shutdown_timeout: cut", len(live.flights))
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            await runner.cleanup()
    except TimeoutError:
        log.error("closing the store and the provider took over %gs: left", CLEANUP_TIMEOUT)
        return
    log.info("stopped")


def startup_lines(config: GatewayConfig, config_path: str, workers: str = "1 process") -> list[str]:
    """The lines logged at start: what this gateway serves, where, and with what."""
    server = config.server
    metrics = f"http://{server.metrics_listen}/metrics" if server.metrics_listen else "off"
    lines = [
        f"hf-gateway {__version__} listening on {server.listen} ({workers}), config {config_path}",
        f"public_url {server.public_url}, callback URL {server.public_url}/_gateway/callback",
        f"store: {store_description(config)}; metrics: {metrics}",
        f"stop: readyz 503, then {server.drain_delay}s (drain_delay) before the listener "
        f"closes, {server.shutdown_timeout}s (shutdown_timeout) for requests in flight; "
        f"reload: SIGHUP{' and file changes' if server.watch_config else ''}",
    ]
    if server.mode == "spaces":  # say so: Spaces mode filled in what the file left out
        framers = ", ".join(server.frame_ancestors) or "nobody"
        lines.append(
            f"spaces mode: provider {config.provider.issuer} client {config.provider.client_id}, "
            f"scopes {' '.join(config.provider.scopes)}; pages framed by {framers}; "
            f"cookies SameSite={config.session.cookie_samesite.capitalize()}"
        )
    for route in config.routes[:MAX_ROUTES_SHOWN]:
        policy = route.policy if isinstance(route.policy, str) else "inline"
        lines.append(
            f"route {route.name}: host {route.host or '*'} path {route.path} -> "
            f"{route.upstream} (policy {policy})"
        )
    hidden = len(config.routes) - MAX_ROUTES_SHOWN
    if hidden > 0:
        lines.append(f"... and {hidden} more routes")
    return lines


def store_description(config: GatewayConfig) -> str:
    """The session store, with any password in its URL masked."""
    session = config.session
    if session.store == "memory":
        return "memory (this process only)"
    if session.redis_sentinel is not None:
        sentinel = session.redis_sentinel
        where = f"sentinel master {sentinel.master} via {', '.join(sentinel.nodes)}"
    else:
        url = session.redis_url.get_secret_value() if session.redis_url else ""
        where = ("cluster " if session.redis_cluster else "") + _without_password(url)
    return f"redis {where} (prefix {session.redis_prefix})"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
