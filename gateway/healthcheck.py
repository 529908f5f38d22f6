"""``hf-gateway healthcheck``: does the gateway on this machine answer its health endpoint?

Made for a container's HEALTHCHECK, so it follows ``server.listen`` instead of assuming
port 8080. It reads only that one key (interpolated like the loader does): a config edit
that a reload refused must not mark a gateway that still runs fine as unhealthy.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.config.load import interpolate
from gateway.config.models import ServerConfig
from gateway.config.values import check_listen

HEALTH_PATH = "/_gateway/healthz"
READY_PATH = "/_gateway/readyz"
# What a wildcard listener is asked on: the same machine, over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104


class HealthcheckError(Exception):
    """The listener address cannot be worked out; the message says why."""


def listen_address(path: str | Path, environ: Mapping[str, str]) -> str:
    """``server.listen`` of the file at ``path``, interpolated; its default when absent."""
    try:
        raw: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise HealthcheckError(f"{path}: cannot read server.listen: {exc}") from None
    server = raw.get("server") if isinstance(raw, dict) else None
    value = server.get("listen") if isinstance(server, dict) else None
    if value is None:
        return str(ServerConfig.model_fields["listen"].default)
    problems: list[str] = []
    listen = interpolate(value, environ, "server.listen", problems)
    if problems:
        raise HealthcheckError(f"{path}: {problems[0]}")
    try:
        return check_listen(str(listen))
    except ValueError as exc:
        raise HealthcheckError(f"{path}: server.listen: {exc}") from None


def probe_url(listen: str, path: str = HEALTH_PATH) -> str:
    """The URL that reaches a listener on ``listen`` from the same machine."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, one line saying what was seen). Proxies from the environment are ignored:
    the probe is for this machine, never for whatever HTTP_PROXY points at."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:  # noqa: S310 - http:// built above
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    return status == 200, f"{url}: {status}"
