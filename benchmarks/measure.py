"""Measuring: wrk runs (saturation and fixed rate), streaming downloads, CPU and RSS from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

MB = 1_000_000  # MB/s and RSS figures are in 10^6 bytes

# wrk prints the usual report; this `done` adds exact figures (microseconds) on one line.
WRK_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f "
    .. "connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

WRK_COOKIES_LUA = """
local cookies = {}
init = function(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
end
request = function()
  local cookie = cookies[math.random(#cookies)]
  return wrk.format("GET", nil, { ["Cookie"] = cookie, ["Accept"] = "application/json" })
end
"""

# wrk's delay() is whole milliseconds; a fractional mean pause is dithered between the two
# neighbouring values, so the offered rate can be set finer than one step.
WRK_DELAY_LUA = """
local pause_ms, pause_fraction = {whole}, {fraction:.4f}
delay = function()
  if math.random() < pause_fraction then return pause_ms + 1 end
  return pause_ms
end
"""


def wrk_script(path: Path, cookies: bool, delay_ms: float | None = None) -> Path:
    """Write a wrk Lua script: the exact-figures `done`, optional cookie pool and pacing."""
    parts = [WRK_DONE_LUA]
    if cookies:
        parts.append(WRK_COOKIES_LUA)
    if delay_ms is not None:
        whole = int(max(0.0, delay_ms))
        parts.append(WRK_DELAY_LUA.format(whole=whole, fraction=max(0.0, delay_ms) - whole))
    path.write_text("".join(parts))
    return path


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    socket_errors: int
    cpu_us_per_request: float | None = None
    redis_reads_per_request: float | None = None
    delay_ms: float | None = None


def run_wrk(
    url: str,
    script: Path,
    duration: float,
    connections: int,
    *,
    cookies_file: Path | None = None,
    pids: list[int] | None = None,
    redis_reads: Callable[[], int] | None = None,
    name: str = "",
) -> WrkResult:
    """One wrk run; CPU of the ``pids`` trees and Redis reads are counted around it."""
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if cookies_file is not None:
        command += ["--", str(cookies_file)]
    cpu_before = tree_cpu_seconds(pids or [])
    reads_before = redis_reads() if redis_reads else 0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_after = tree_cpu_seconds(pids or [])
    reads = redis_reads() - reads_before if redis_reads else None
    found = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
    if not found:
        raise RuntimeError(f"{name}: no figures in wrk's output\n{output}")
    figures = {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    total = int(figures["requests"])
    if figures["status"]:
        raise RuntimeError(f"{name}: {figures['status']:.0f} non-2xx/3xx responses\n{output}")
    if not total:
        raise RuntimeError(f"{name}: no request completed\n{output}")
    errors = sum(int(figures[k]) for k in ("connect", "read", "write", "timeout"))
    return WrkResult(
        rps=total / (figures["duration_us"] / 1e6),
        requests=total,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        p999_ms=figures["p999_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        socket_errors=errors,
        cpu_us_per_request=(cpu_after - cpu_before) / total * 1e6 if pids else None,
        redis_reads_per_request=reads / total if reads is not None else None,
    )


@dataclass
class StreamResult:
    mb_per_s: float
    bytes: int
    seconds: float
    rss_before_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_growth_mb: float | None = None


async def stream_download(
    url: str, expected: int, cookie: str | None, use_curl: bool, name: str = ""
) -> StreamResult:
    """Read one large body into nothing and time it: curl if present, else aiohttp."""
    started = time.monotonic()
    if use_curl:
        command = ["curl", "-sS", "--max-time", "300", "-o", os.devnull, "-w"]
        command += ["%{http_code} %{size_download}", url]
        if cookie:
            command[1:1] = ["-H", f"Cookie: {cookie}", "-H", "Accept: application/json"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        status, size = int(out[0]), int(float(out[1]))
    else:
        headers = {"Accept": "application/json", **({"Cookie": cookie} if cookie else {})}
        timeout = aiohttp.ClientTimeout(total=300)
        size = 0
        async with aiohttp.ClientSession(timeout=timeout, read_bufsize=256 * 1024) as http:
            async with http.get(url, headers=headers, allow_redirects=False) as response:
                status = response.status
                async for chunk in response.content.iter_any():
                    size += len(chunk)
    seconds = time.monotonic() - started
    if status != 200 or size != expected:
        raise RuntimeError(f"{name}: expected 200 with {expected} bytes, got {status}, {size}")
    return StreamResult(mb_per_s=size / seconds / MB, bytes=size, seconds=seconds)


# --- /proc ---------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(c) for c in found] + [g for c in found for g in children(int(c))]


def tree(pids: list[int]) -> list[int]:
    return [p for pid in pids for p in (pid, *children(pid))]


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes and their descendants, from /proc."""
    total = 0.0
    for pid in tree(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


@dataclass
class RssSnapshot:
    """VmRSS of every process of a tree, in MB: the sum and the largest single process."""

    total_mb: float
    largest_mb: float
    processes: int


def rss_snapshot(pids: list[int]) -> RssSnapshot:
    sizes = [kb for kb in (rss_kb(pid) for pid in tree(pids)) if kb is not None]
    return RssSnapshot(
        total_mb=sum(sizes) * 1024 / MB,
        largest_mb=max(sizes, default=0) * 1024 / MB,
        processes=len(sizes),
    )


@dataclass
class RssSampler:
    """Samples a process tree's VmRSS every ``interval`` seconds while in a ``with`` block.

    Peaks accumulate over every block the same sampler is used in.
    """

    pids: list[int]
    interval: float = 0.05
    before: RssSnapshot | None = None
    peak_total_mb: float = 0.0
    peak_largest_mb: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        snapshot = rss_snapshot(self.pids)
        self.peak_total_mb = max(self.peak_total_mb, snapshot.total_mb)
        self.peak_largest_mb = max(self.peak_largest_mb, snapshot.largest_mb)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        if self.before is None:
            self.before = rss_snapshot(self.pids)
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @property
    def growth_mb(self) -> float:
        return self.peak_total_mb - (self.before.total_mb if self.before else 0.0)
