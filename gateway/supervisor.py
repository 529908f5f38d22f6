"""The supervisor of ``server.workers`` gateway processes (workers > 1).

It checks that the port is free (without SO_REUSEPORT, so a second gateway on the same
port is refused rather than sharing it), runs the metrics listener for all workers, and
starts the workers (``spawn``: each a fresh interpreter with the configuration passed
in). Each worker has a pipe to it: the worker says "ready" or why it could not start,
the supervisor sends reload requests, and the pipe's end tells a worker that the
supervisor is gone, so no worker outlives it.

- A worker that exits unasked is started again (counted in hf_gateway_worker_restarts;
  hf_gateway_workers says how many are listening): at once when it had run for a while,
  with a doubling delay when it keeps exiting soon after its start. After
  ``CRASH_LOOP`` such quick exits in a row the supervisor gives up loudly (exit 1). A
  worker that cannot bind the port (exit 2) stops everything at once (exit 2).
- SIGHUP is forwarded to every worker; a change of the watched files is sent to every
  worker as a reload request (only the supervisor watches). The supervisor keeps the
  latest valid configuration for the workers it starts again.
- SIGTERM and SIGINT are forwarded; each worker drains (serve.drain). The supervisor
  waits drain_delay + shutdown_timeout + ``STOP_MARGIN``, kills what is left and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from gateway import metrics
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.metrics_listener import prepare_multiprocess, start_metrics_listener, worker_exited
from gateway.reload import WATCH_INTERVAL, FileWatch, restart_only_changes
from gateway.serve import (
    EXIT_CANNOT_START,
    EXIT_FAILED,
    EXIT_OK,
    CannotListen,
    probe,
    startup_lines,
    worker_main,
)

log = logging.getLogger("gateway.supervisor")

QUICK_EXIT = 10.0
"""A worker that exits within this many seconds of its start counts as failing to start."""
CRASH_LOOP = 5
"""Quick exits in a row after which the supervisor gives up."""
MAX_BACKOFF = 30.0
STOP_MARGIN = 5.0
"""Beyond drain_delay + shutdown_timeout, what a worker may take to exit before SIGKILL."""


@dataclass(eq=False)
class Worker:
    slot: int
    process: BaseProcess
    link: Connection
    started_at: float
    ready: bool = False
    failure: str = ""
    """The line a worker that could not start sent."""


def supervise(config: GatewayConfig, config_path: str | Path) -> int:
    """Run the supervisor until it is stopped; returns the exit code."""
    try:
        probe(config.server.listen)
        if config.server.metrics_listen is not None:
            probe(config.server.metrics_listen, "metrics_listen ")
    except CannotListen as exc:
        print(f"hf-gateway: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return asyncio.run(Supervisor(config, Path(config_path)).run())


class Supervisor:
    def __init__(self, config: GatewayConfig, config_path: Path) -> None:
        self.config = config
        """The latest valid configuration (what a worker started again gets)."""
        self.path = config_path
        self.workers: dict[int, Worker] = {}
        self._context = multiprocessing.get_context("spawn")
        self._stopping = asyncio.Event()
        self._none_left = asyncio.Event()
        self._exit = EXIT_OK
        self._quick_exits = 0
        self._restarts: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch = FileWatch(config_path, config)
        self._metrics_dir: Path | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop_metrics = await self._start_metrics()
        if stop_metrics is None and self.config.server.metrics_listen is not None:
            return EXIT_CANNOT_START
        try:
            count = self.config.server.workers
            for line in startup_lines(self.config, str(self.path), f"{count} workers"):
                log.info("%s", line)
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stop, signum)
            loop.add_signal_handler(signal.SIGHUP, self._forward_hup)
            for slot in range(count):
                self._start(slot)
            self._background(self._watch_files())
            await self._stopping.wait()
            await self._stop_workers()
        finally:
            self._kill_all()  # never leave a worker behind, whatever happened above
            for task in self._tasks:
                task.cancel()
            if stop_metrics is not None:
                await stop_metrics()
            if self._metrics_dir is not None:
                shutil.rmtree(self._metrics_dir, ignore_errors=True)
        return self._exit

    # ------------------------------------------------------------------ metrics

    async def _start_metrics(self) -> Callable[[], Awaitable[None]] | None:
        listen = self.config.server.metrics_listen
        if listen is None:
            return None
        self._metrics_dir = Path(tempfile.mkdtemp(prefix="hf-gateway-metrics-"))
        prepare_multiprocess(self._metrics_dir)  # before any worker starts
        try:
            return await start_metrics_listener(listen, multiprocess_dir=self._metrics_dir)
        except OSError as exc:
            print(
                f"hf-gateway: cannot listen on metrics_listen {listen}: {exc.strerror}",
                file=sys.stderr,
            )
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None
            return None

    # ------------------------------------------------------------------ workers

    def _start(self, slot: int) -> None:
        self._restarts.pop(slot, None)
        if self._stopping.is_set():
            return
        loop = asyncio.get_running_loop()
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main,
            args=(self.config, str(self.path), theirs),
            name=f"hf-gateway-worker-{slot}",
            daemon=False,
        )
        process.start()
        theirs.close()  # the worker holds its end; ours alone tells it we are alive
        worker = Worker(slot, process, ours, loop.time())
        self.workers[slot] = worker
        self._none_left.clear()
        loop.add_reader(ours.fileno(), self._message, worker)
        loop.add_reader(process.sentinel, self._exited, worker)
        log.info("worker %d started (pid %s)", slot, process.pid)

    def _message(self, worker: Worker) -> None:
        try:
            kind, detail = worker.link.recv()
        except (EOFError, OSError):  # the worker is gone; _exited follows from its sentinel
            asyncio.get_running_loop().remove_reader(worker.link.fileno())
            worker.link.close()
            return
        if kind == "ready":
            worker.ready = True
            self._count_workers()
            if all(w.ready for w in self.workers.values()):
                log.info("ready: %d workers listening", len(self.workers))
        elif kind == "failed":
            worker.failure = detail

    def _exited(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.process.sentinel)
        while not worker.link.closed and worker.link.poll():
            self._message(worker)  # what it said just before it exited (its failure line)
        if not worker.link.closed:
            loop.remove_reader(worker.link.fileno())
            worker.link.close()
        worker.process.join(1)  # its sentinel fired: it is exiting; collect the code
        code = worker.process.exitcode
        pid = worker.process.pid
        if pid is not None:
            worker_exited(pid)
        if self.workers.get(worker.slot) is worker:
            del self.workers[worker.slot]
        self._count_workers()
        if not self.workers:
            self._none_left.set()
        if self._stopping.is_set():
            return
        lived = loop.time() - worker.started_at
        if worker.failure or code == EXIT_CANNOT_START:
            print(f"hf-gateway: {worker.failure or 'a worker could not start'}", file=sys.stderr)
            self._give_up(EXIT_CANNOT_START)
            return
        self._quick_exits = self._quick_exits + 1 if lived < QUICK_EXIT else 0
        if self._quick_exits >= CRASH_LOOP:
            log.error(
                "workers keep exiting within %gs of their start (%d in a row, the last with "
                "%s); giving up",
                QUICK_EXIT,
                self._quick_exits,
                describe_exit(code),
            )
            self._give_up(EXIT_FAILED)
            return
        delay = min(MAX_BACKOFF, 0.5 * 2 ** (self._quick_exits - 1)) if self._quick_exits else 0.0
        log.warning(
            "worker %d (pid %s) exited unasked with %s after %.1fs; starting another in %.1fs",
            worker.slot,
            pid,
            describe_exit(code),
            lived,
            delay,
        )
        metrics.WORKER_RESTARTS.inc(metrics.restart_reason(code))
        self._restarts[worker.slot] = loop.call_later(delay, self._start, worker.slot)

    def _count_workers(self) -> None:
        metrics.WORKERS.set(sum(w.ready for w in self.workers.values()))

    def _give_up(self, code: int) -> None:
        self._exit = code
        self._stopping.set()
        self._signal_all(signal.SIGTERM)

    # ------------------------------------------------------------------ signals

    def _stop(self, signum: int) -> None:
        if not self._stopping.is_set():
            log.info("%s: stopping %d workers", signal.Signals(signum).name, len(self.workers))
        self._stopping.set()
        self._signal_all(signum)

    def _forward_hup(self) -> None:
        log.info("SIGHUP: every worker reloads")
        self._background(self._reread("SIGHUP"))
        self._signal_all(signal.SIGHUP)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            pid = worker.process.pid
            if pid is not None and worker.process.is_alive():
                os.kill(pid, signum)

    async def _stop_workers(self) -> None:
        for handle in self._restarts.values():
            handle.cancel()
        self._restarts.clear()
        server = self.config.server
        deadline = server.drain_delay + server.shutdown_timeout + STOP_MARGIN
        try:
            async with asyncio.timeout(deadline):
                await self._none_left.wait()
        except TimeoutError:
            log.error(
                "%d workers still running %ds after the stop began: killed",
                len(self.workers),
                deadline,
            )

    def _kill_all(self) -> None:
        for worker in list(self.workers.values()):
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5)
            if not worker.link.closed:
                worker.link.close()
        self.workers.clear()

    # ------------------------------------------------------------------ reload

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if not self.config.server.watch_config:
                continue
            if await asyncio.to_thread(self._watch.changed):
                await self._reread("a watched file changed")
                for worker in self.workers.values():
                    if not worker.link.closed:
                        worker.link.send(("reload", "a watched file changed"))

    async def _reread(self, why: str) -> None:
        """Keep the latest valid configuration for workers started from now on (each
        worker reloads, and logs, on its own)."""
        before = await asyncio.to_thread(self._watch.look)
        try:
            loaded = await asyncio.to_thread(load_config, self.path)
        except ConfigError:
            self._watch.loaded(before, None)
            return
        self._watch.loaded(before, loaded)
        if not restart_only_changes(self.config, loaded):
            self.config = loaded
        log.debug("configuration re-read (%s)", why)

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
