"""A running gateway for tests: real fake-HF, real echo upstream, real HTTP.

``GatewayHarness`` builds a config around a running FakeHF and echo upstream, starts the
gateway on a free port with aiohttp's runner, and hands out browser-like clients (own
cookie jar, redirects followed) that can sign in as any fixture user.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gateway.app import create_app
from gateway.config import GatewayConfig, parse_config
from gateway.devtools.echo_upstream import create_echo_app
from gateway.devtools.fake_hf import FakeHF
from gateway.session.store import SessionStore
from gateway.web.listener import listen
from tests.support.redis_server import free_port

CLIENT_ID = "hf-gateway-demo"
CLIENT_SECRET = "demo-secret-not-for-production"
SECRET = "test-secret-" + "x" * 40
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
API = {"Accept": "application/json"}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def base_raw_config(port: int, issuer: str, upstream: str) -> dict[str, Any]:
    return {
        "server": {
            "listen": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            "metrics_listen": None,
        },
        "provider": {
            "issuer": issuer,
            "api_url": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        "session": {"store": "memory", "secret": SECRET},
        "policies": {
            "writers": {"allow": [{"org": "acme", "min_role": "write"}]},
            "admins": {"allow": [{"org": "acme", "min_role": "admin"}]},
        },
        "routes": [
            {
                "name": "tool",
                "path": "/",
                "upstream": upstream,
                "policy": "authenticated",
                "public_paths": ["/public"],
            },
            {
                "name": "writers",
                "path": "/writers",
                "upstream": upstream,
                "policy": "writers",
                "strip_prefix": True,
            },
            {"name": "admin", "path": "/admin", "upstream": upstream, "policy": "admins"},
            {"name": "open", "path": "/open", "upstream": upstream, "policy": "public"},
        ],
    }


@dataclass
class GatewayHarness:
    fake: FakeHF
    upstream_url: str
    port: int = field(default_factory=free_port)
    overrides: dict[str, Any] = field(default_factory=dict)
    store: SessionStore | None = None
    store_factory: Callable[[], SessionStore] | None = None
    """Builds a new store for every start (the app closes its store when it stops), so a
    gateway backed by Redis can be restarted; takes precedence over ``store``."""
    runner: web.AppRunner | None = None
    server: asyncio.Server | None = None
    config: GatewayConfig | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def raw_config(self) -> dict[str, Any]:
        raw = base_raw_config(self.port, self.fake.issuer, self.upstream_url)
        return deep_merge(raw, self.overrides)

    async def start(self) -> GatewayHarness:
        self.config = parse_config(self.raw_config())
        store = self.store_factory() if self.store_factory is not None else self.store
        app = create_app(self.config, store=store)
        self.runner = web.AppRunner(app, shutdown_timeout=5)
        await self.runner.setup()
        # The listener `hf-gateway run` uses, with its request-head deadline.
        self.server = await listen(
            self.runner,
            "127.0.0.1",
            self.port,
            head_timeout=self.config.server.request_head_timeout,
        )
        await self.wait_ready()
        return self

    async def wait_ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"{self.url}/_gateway/readyz") as response:
                    if response.status == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("the gateway did not become ready")

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def browser(self) -> aiohttp.ClientSession:
        """A client with its own cookie jar (IP hosts allowed), like one browser."""
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def sign_in(self, http: aiohttp.ClientSession, username: str, rd: str = "/") -> None:
        """Run the whole login flow over HTTP as ``username`` (fake HF auto-approves)."""
        self.fake.settings.auto_login = username
        async with http.get(f"{self.url}/_gateway/login", params={"rd": rd}, headers=BROWSER) as r:
            await r.read()
            if r.status != 200:
                raise AssertionError(f"login as {username} ended with {r.status}: {r.url}")

    def session_cookie(self, http: aiohttp.ClientSession) -> str:
        for cookie in http.cookie_jar:
            if cookie.key == "hf_gateway":
                return cookie.value
        raise AssertionError("no session cookie in the jar")


@contextlib.asynccontextmanager
async def running_upstream() -> AsyncIterator[str]:
    runner = web.AppRunner(create_echo_app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def new_secret() -> str:
    return secrets.token_urlsafe(48)
