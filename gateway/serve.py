"""Running the gateway: logging, the access log (with secrets redacted), workers.

``workers: N`` starts N processes that share the port with SO_REUSEPORT; each loads the
configuration itself, so nothing unpicklable crosses a process boundary.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.app import create_app
from gateway.config import GatewayConfig, load_config
from gateway.web.listener import listen

log = logging.getLogger("gateway")

_SENSITIVE_PARAM = re.compile(
    r"(?i)([?&](?:code|state|token|access_token|id_token|refresh_token|client_secret|"
    r"password|secret|key|session|nonce)=)[^&#]*"
)


def redact_target(target: str) -> str:
    """A request target safe to log: sensitive query values replaced."""
    return _SENSITIVE_PARAM.sub(r"\1REDACTED", target)


class AccessLogger(AbstractAccessLogger):
    """One line per request; never cookies, Authorization or OAuth codes.

    ``enabled`` follows the logger's level, so with access logging off (level WARNING)
    aiohttp skips the call and even the clock read for it.
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            redact_target(request.raw_path),
            response.status,
            response.body_length,
            time * 1000,
        )


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_for_log(text: str) -> str:
    """Control characters (CR and LF above all) and Unicode line breaks as visible escapes:
    a value a client or the provider chose can never start a log line of its own."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class EscapingFormatter(logging.Formatter):
    """Every message escaped (exception tracebacks, the gateway's own text, stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_for_log(record.message)
        return super().formatMessage(record)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        EscapingFormatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    )
    logging.basicConfig(
        level=os.environ.get("HF_GATEWAY_LOG_LEVEL", level).upper(), handlers=[handler]
    )


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
