"""Reloading the configuration of a running gateway process.

A reload (SIGHUP, or a watched file that changed) reads the configuration again and
validates it in full first; a bad one is refused with every problem and the running one
keeps serving. A good one is compared with the running one: fields that only a restart
can apply (the listeners, the worker count, the session store's connection) refuse it,
naming each. Otherwise app.py's Assembly builds a new context from the previous one,
the live holder is swapped (new requests start on it, requests in flight finish on the
old one) and the old context is retired once its last request has ended.

Each process logs one line per reload: what was applied, or why it was refused.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, SecretStr

from gateway.app import ASSEMBLY
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError, ProviderError
from gateway.logs import apply_switches
from gateway.web.context import LIVE
from gateway.web.context import GatewayContext as _Context

log = logging.getLogger("gateway.reload")

WATCH_INTERVAL = 1.0
"""Seconds between two looks at the watched files."""
METADATA_TIMEOUT = 10.0
"""How long a reload that changes the provider waits for its metadata before refusing."""

RESTART_ONLY: tuple[str, ...] = (
    "server.listen",
    "server.workers",
    "server.metrics_listen",
    "server.request_head_timeout",
    "session.store",
    "session.redis_*",
    "session.warm_cache*",
    "logging.format",
)
"""Fields a running process cannot change; ``*`` ends a prefix (future redis_ keys too)."""


def restart_only_changes(running: GatewayConfig, loaded: GatewayConfig) -> list[str]:
    """One problem per field that differs and needs a restart, as ``path: reason``."""
    problems: list[str] = []
    for section in sorted({pattern.partition(".")[0] for pattern in RESTART_ONLY}):
        old = _fields(getattr(running, section))
        new = _fields(getattr(loaded, section))
        for name in sorted(set(old) | set(new)):
            path = f"{section}.{name}"
            if not _restart_only(path) or old.get(name) == new.get(name):
                continue
            shown = _shown(old.get(name), new.get(name))
            problems.append(
                f"{path}: cannot change while running{shown}; restart the gateway to apply "
                "it, or put the running value back"
            )
    return problems


def _restart_only(path: str) -> bool:
    return any(
        path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern
        for pattern in RESTART_ONLY
    )


def _fields(section: BaseModel) -> dict[str, Any]:
    return {name: getattr(section, name) for name in type(section).model_fields}


def _shown(old: Any, new: Any) -> str:
    """Both values for the message, unless either holds a secret (a Redis URL's password)."""
    if _secret(old) or _secret(new):
        return ""
    return f" (running {_plain(old)!r}, the file has {_plain(new)!r})"


def _secret(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return True
    if isinstance(value, BaseModel):
        return any(_secret(getattr(value, name)) for name in type(value).model_fields)
    return False


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def summary(running: GatewayConfig, loaded: GatewayConfig) -> str:
    """What a reload changes, for its log line: routes and policies counted, sections named."""
    old_routes = {route.name: route for route in running.routes}
    new_routes = {route.name: route for route in loaded.routes}
    parts = [
        f"{len(new_routes)} routes ({_counts(old_routes, new_routes)})",
        f"{len(loaded.policies)} policies ({_counts(running.policies, loaded.policies)})",
    ]
    others = [
        name
        for name in ("server", "provider", "session", "identity")
        if getattr(running, name) != getattr(loaded, name)
    ]
    parts.append("also changed: " + ", ".join(others) if others else "nothing else changed")
    return ", ".join(parts)


def _counts(old: Mapping[str, object], new: Mapping[str, object]) -> str:
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for name in new.keys() & old.keys() if new[name] != old[name])
    return f"{added} added, {removed} removed, {changed} changed"


# ---------------------------------------------------------------------------- watching


def watched_files(config_path: Path, config: GatewayConfig) -> list[Path]:
    """The config file and every file its policy_files globs match now (as load_config
    reads them: relative to the config file's folder)."""
    base = config_path.parent
    found = {config_path}
    for pattern in config.policy_files:
        found.update(Path(p) for p in glob.glob(str(base / pattern), recursive=True))
    return sorted(found)


def fingerprint(files: Iterable[Path]) -> bytes:
    """A digest of the files' names and contents (an unreadable file counts as changed
    content, so its return is noticed too)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable: {exc.errno}".encode())
        digest.update(b"\0")
    return digest.digest()


class FileWatch:
    """Tells when the watched files changed and then held still for one look (an editor
    that writes in pieces is not read half-way)."""

    def __init__(self, config_path: Path, config: GatewayConfig) -> None:
        self._path = config_path
        self._config = config
        self._applied = self.look()
        self._seen = self._applied

    def look(self) -> bytes:
        return fingerprint(watched_files(self._path, self._config))

    def changed(self) -> bool:
        """Look once; True when a change has been stable since the previous look."""
        current = self.look()
        stable = current == self._seen
        self._seen = current
        return stable and current != self._applied

    def loaded(self, before: bytes, config: GatewayConfig | None) -> None:
        """A reload read the files as ``before`` found them: that state is no change.
        ``config`` (when valid) may name other policy files: they are watched from now."""
        if config is not None and config.policy_files != self._config.policy_files:
            self._config = config
            before = self.look()
        elif config is not None:
            self._config = config
        self._applied = self._seen = before


# ---------------------------------------------------------------------------- reloading


class Reloader:
    """Reloads one process's app; reloads never overlap (a request during one waits)."""

    def __init__(self, app: web.Application, config_path: str | Path) -> None:
        self._app = app
        self._path = Path(config_path)
        self._lock = asyncio.Lock()
        self.watch = FileWatch(self._path, app[LIVE].current.config)

    @property
    def config(self) -> GatewayConfig:
        return self._current.config

    @property
    def _current(self) -> _Context:
        return self._app[LIVE].current

    async def reload(self, why: str) -> bool:
        """Read, check and apply the configuration; True when applied."""
        async with self._lock:
            return await self._reload(why)

    async def _reload(self, why: str) -> bool:
        running = self._current.config
        before = await asyncio.to_thread(self.watch.look)
        try:
            loaded = await asyncio.to_thread(load_config, self._path)
        except ConfigError as exc:
            self.watch.loaded(before, None)
            return _refused(why, exc.problems)
        self.watch.loaded(before, loaded)
        problems = restart_only_changes(running, loaded)
        if problems:
            return _refused(why, problems)
        assembly = self._app[ASSEMBLY]
        previous = self._current
        try:
            ctx = assembly.build(loaded, previous)
        except (OSError, ValueError) as exc:
            return _refused(why, [f"identity.assertion.signing_key_file: {exc}"])
        if ctx.provider is not previous.provider:
            problem = await _provider_ready(ctx)
            if problem is not None:
                assembly.discard(ctx)
                return _refused(why, [problem])
            assembly.keep_fresh(ctx.provider)
        live = self._app[LIVE]
        live.current = ctx
        apply_switches(loaded.logging)
        assembly.retire(previous, live)
        log.info(
            "config reload applied (%s): %s; requests in flight finish on the previous one",
            why,
            summary(running, loaded),
        )
        return True

    async def watch_files(self) -> None:
        """Reload whenever the watched files change (server.watch_config, read live)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if not self.config.server.watch_config:
                continue
            async with self._lock:  # never look while a reload reads the files
                if await asyncio.to_thread(self.watch.changed):
                    await self._reload("a watched file changed")


async def _provider_ready(ctx: _Context) -> str | None:
    """None once a new provider's metadata has loaded, else the problem to refuse with."""
    try:
        async with asyncio.timeout(METADATA_TIMEOUT):
            await ctx.provider.load_metadata()
    except TimeoutError:
        return f"provider: metadata did not load within {METADATA_TIMEOUT:g}s"
    except ProviderError as exc:
        return f"provider: metadata could not be loaded ({exc})"
    return None


def _refused(why: str, problems: Sequence[str]) -> bool:
    count = len(problems)
    log.error(
        "config reload refused (%s): %d problem%s, still serving the previous configuration: %s",
        why,
        count,
        "" if count == 1 else "s",
        "; ".join(problems),
    )
    return False
