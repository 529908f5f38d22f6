"""``check-config --connect``: try what the configuration points at, before a deploy.

Two checks, each bounded by ``timeout`` seconds: the session store's Redis (a PING over
the same link the store would use: URL, Sentinel or Cluster) when ``session.store`` is
redis, and the provider's OIDC discovery document (``{issuer}/.well-known/openid-
configuration``, whose ``issuer`` must be the configured one). Details never hold a
secret: a Redis URL is shown with its password replaced by ``***``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from redis.exceptions import RedisError

from gateway.config import GatewayConfig, SessionConfig
from gateway.session.redis_connect import connect


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """One check: what was tried, whether it worked, and what was seen (no secrets)."""

    name: str
    ok: bool
    detail: str


async def check_connections(
    config: GatewayConfig,
    timeout: float = 3.0,  # noqa: ASYNC109 - each check is bounded by it on its own
) -> list[ConnectResult]:
    """Try Redis (when the store is redis) and the provider's discovery, concurrently."""
    checks = [_check_provider(config, timeout)]
    if config.session.store == "redis":
        checks.insert(0, _check_redis(config.session, timeout))
    return list(await asyncio.gather(*checks))


def format_results(results: Sequence[ConnectResult]) -> list[str]:
    """One line per check: ``ok   redis: ...`` or ``FAIL provider discovery: ...``."""
    return [f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}" for r in results]


def redact_url(url: str) -> str:
    """A URL with its password (if any) replaced by ``***``; the user name stays."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redis_target(session: SessionConfig) -> str:
    if session.redis_sentinel is not None:
        sentinel = session.redis_sentinel
        return f"master {sentinel.master} via Sentinel {', '.join(sentinel.nodes)}"
    url = redact_url(session.redis_url.get_secret_value()) if session.redis_url else "?"
    return f"Cluster node {url}" if session.redis_cluster else url


async def _check_redis(session: SessionConfig, timeout: float) -> ConnectResult:  # noqa: ASYNC109
    target = _redis_target(session)
    link = connect(session)
    try:
        async with asyncio.timeout(timeout):
            client = await link.client()
            answer = await client.ping()
    except TimeoutError:
        return ConnectResult("redis", False, f"{target}: no answer within {timeout:g}s")
    except (RedisError, OSError) as exc:
        return ConnectResult("redis", False, f"{target}: {_reason(exc)}")
    finally:
        await link.close()
    if answer is not True:
        return ConnectResult("redis", False, f"{target}: PING answered {answer!r}")
    return ConnectResult("redis", True, f"PING answered at {target}")


def _reason(exc: BaseException) -> str:
    """The error's own words, without anything that could echo a URL with a password."""
    text = str(exc).strip() or type(exc).__name__
    if "@" in text or "://" in text:
        return type(exc).__name__
    return text.splitlines()[0][:200]


async def _check_provider(config: GatewayConfig, timeout: float) -> ConnectResult:  # noqa: ASYNC109
    name = "provider discovery"
    issuer = config.provider.issuer.rstrip("/")
    url = issuer + "/.well-known/openid-configuration"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status != 200:
                return ConnectResult(name, False, f"{url} answered {response.status}")
            try:
                document = await response.json(content_type=None)
            except ValueError:
                return ConnectResult(name, False, f"{url} did not answer JSON")
    except TimeoutError:
        return ConnectResult(name, False, f"{url}: no answer within {timeout:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        return ConnectResult(name, False, f"{url}: {_reason(exc)}")
    if not isinstance(document, dict):
        return ConnectResult(name, False, f"{url} did not answer a JSON object")
    found = document.get("issuer")
    if not isinstance(found, str) or found.rstrip("/") != issuer:
        return ConnectResult(
            name,
            False,
            f"{url} names issuer {found!r}, not {issuer!r}: set provider.issuer to the "
            "provider's own issuer",
        )
    missing = [
        key
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        if not isinstance(document.get(key), str)
    ]
    if missing:
        return ConnectResult(name, False, f"{url} lacks {', '.join(missing)}")
    return ConnectResult(name, True, f"{url} names issuer {issuer}")
