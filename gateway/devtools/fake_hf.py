"""A faithful local Hugging Face OAuth/OIDC provider for the demo and the tests.

It reproduces the behaviour HF-OAUTH.md documents (paths, status codes, token formats,
claim sets, scope gating, consent memory) and lets tests choose among the variants the
real service might show through :class:`FakeSettings`::

    fake = FakeHF.demo()
    async with fake.serve() as issuer:      # a real server on 127.0.0.1, random port
        fake.settings.auto_login = "alice"  # authorize approves at once as alice
        ...

Endpoints: ``/.well-known/openid-configuration``, ``/oauth/authorize`` (GET page, POST
form), ``/oauth/token``, ``/oauth/jwks``, ``/oauth/userinfo``, ``/oauth/device`` (POST for
apps, GET page for users), ``/api/whoami-v2`` and ``/avatars/<hash>.svg``.

Run it alone with ``python -m gateway.devtools.fake_hf --port 9000 [--fixture FILE]``.
It is a development tool: state lives in memory and nothing is persisted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path

import yaml
from aiohttp import web

from gateway.devtools import fake_hf_api as api
from gateway.devtools.fake_hf_authorize import authorize_get, authorize_post
from gateway.devtools.fake_hf_device import (
    VERIFY_PATH,
    device_authorization,
    device_page,
    device_verify,
)
from gateway.devtools.fake_hf_fixture import FixtureError, load_fixture, parse_fixture
from gateway.devtools.fake_hf_model import FakeClient, FakeOrg, FakeSettings, FakeUser
from gateway.devtools.fake_hf_state import STATE_KEY, ProviderState
from gateway.devtools.fake_hf_token import token_endpoint

__all__ = ["FakeClient", "FakeHF", "FakeOrg", "FakeSettings", "FakeUser", "FixtureError"]

DEMO_FIXTURE = "demo_users.yaml"


class FakeHF(ProviderState):
    """The fake provider: its state (see :class:`ProviderState`), app and server.

    ``issuer`` is the base URL without a trailing slash. :meth:`serve` sets it; when it
    is empty the origin of each request is used, which suits ``aiohttp_client(fake.app())``.
    ``clock`` (seconds since the epoch) drives every expiry and JWT time.
    """

    def __init__(
        self,
        users: Iterable[FakeUser],
        orgs: Iterable[FakeOrg],
        clients: Iterable[FakeClient],
        settings: FakeSettings | None = None,
        issuer: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(users, orgs, clients, settings, issuer, clock)

    @classmethod
    def from_yaml(cls, path: str | Path) -> FakeHF:
        """A provider built from a YAML fixture; raises ``FixtureError`` listing every problem."""
        fixture = load_fixture(path)
        return cls(fixture.users, fixture.orgs, fixture.clients, fixture.settings)

    @classmethod
    def demo(cls) -> FakeHF:
        """A provider with the packaged demo fixture (alice, bob, carol, dave; acme, hf-tools)."""
        text = resources.files("gateway.devtools").joinpath(DEMO_FIXTURE).read_text("utf-8")
        fixture = parse_fixture(yaml.safe_load(text))
        return cls(fixture.users, fixture.orgs, fixture.clients, fixture.settings)

    def app(self) -> web.Application:
        """A new aiohttp application serving this provider (state is shared, not copied)."""
        app = web.Application()
        app[STATE_KEY] = self
        app.router.add_get("/.well-known/openid-configuration", api.discovery)
        app.router.add_get("/oauth/authorize", authorize_get)
        app.router.add_post("/oauth/authorize", authorize_post)
        app.router.add_post("/oauth/token", token_endpoint)
        app.router.add_get("/oauth/jwks", api.jwks)
        app.router.add_route("GET", "/oauth/userinfo", api.userinfo)
        app.router.add_route("POST", "/oauth/userinfo", api.userinfo)
        app.router.add_post("/oauth/device", device_authorization)
        app.router.add_get("/oauth/device", device_page)
        app.router.add_post(VERIFY_PATH, device_verify)
        app.router.add_get("/api/whoami-v2", api.whoami)
        app.router.add_get("/avatars/{digest:[0-9a-f]+}.svg", api.avatar)
        return app

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Run a real server until the block exits; set and yield ``issuer``.

        ``port=0`` picks a free port. The access log is off: query strings carry state.
        """
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            self.issuer = _base_url(host, _bound_port(runner))
            yield self.issuer
        finally:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


def _base_url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


# ------------------------------------------------------------------------- CLI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.devtools.fake_hf",
        description="Run the fake Hugging Face OAuth provider.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 = any free)")
    parser.add_argument("--fixture", type=Path, help="YAML fixture (default: the demo users)")
    parser.add_argument("--auto-login", metavar="USERNAME", help="approve every login as USERNAME")
    return parser.parse_args(argv)


async def _run(fake: FakeHF, host: str, port: int) -> None:
    async with fake.serve(host, port) as issuer:
        print(f"fake Hugging Face issuer: {issuer}", flush=True)
        for client in fake.clients.values():
            kind = "public" if client.is_public else "confidential"
            print(
                f"  app {client.client_id} ({kind}): {', '.join(client.redirect_uris)}", flush=True
            )
        print(f"  users: {', '.join(fake.users)}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad fixture or busy port)."""
    args = _parse_args(argv)
    try:
        fake = FakeHF.from_yaml(args.fixture) if args.fixture else FakeHF.demo()
    except (OSError, FixtureError) as exc:
        print(f"error: {exc}")
        return 2
    fake.settings.auto_login = args.auto_login or fake.settings.auto_login
    try:
        asyncio.run(_run(fake, args.host, args.port))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
