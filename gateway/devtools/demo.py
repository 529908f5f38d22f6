"""``hf-gateway demo``: a fake Hugging Face, a sample upstream and the gateway, in one
process on 127.0.0.1, with the memory store. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.assertion import AssertionSigner, generate_signing_key
from gateway.config import GatewayConfig, parse_config
from gateway.devtools.echo_upstream import create_echo_app
from gateway.devtools.fake_hf import FakeHF
from gateway.logs import AccessLogger

DEMO_CLIENT_ID = "hf-gateway-demo"
DEMO_CLIENT_SECRET = "demo-secret-not-for-production"  # noqa: S105 - the fake provider's fixture


def free_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise OSError("no free port on 127.0.0.1")


def demo_config(*, gateway_port: int, issuer: str, upstream: str) -> GatewayConfig:
    """The demo's configuration: one tool behind four policies."""
    raw: dict[str, Any] = {
        "server": {
            "listen": f"127.0.0.1:{gateway_port}",
            "public_url": f"http://127.0.0.1:{gateway_port}",
            "metrics_listen": None,
        },
        "provider": {
            "issuer": issuer,
            "api_url": issuer,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "device_client_id": "hf-gateway-cli",  # the fake's public app: hf-gateway login
        },
        "session": {"store": "memory", "secret": secrets.token_urlsafe(48)},
        "policies": {
            "acme-admins": {"allow": [{"org": "acme", "min_role": "admin"}]},
            "acme-writers": {"allow": [{"org": "acme", "min_role": "write"}]},
        },
        "routes": [
            {
                "name": "tool",
                "path": "/",
                "upstream": upstream,
                "policy": "authenticated",
                "public_paths": ["/public"],
            },
            {"name": "admin", "path": "/admin", "upstream": upstream, "policy": "acme-admins"},
            {"name": "writers", "path": "/writers", "upstream": upstream, "policy": "acme-writers"},
        ],
    }
    return parse_config(raw)


@contextlib.asynccontextmanager
async def _site(app: web.Application, port: int, **kwargs: Any) -> AsyncIterator[None]:
    runner = web.AppRunner(app, **kwargs)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield
    finally:
        await runner.cleanup()


def port_note(name: str, wanted: int, chosen: int) -> str | None:
    """The line saying a port was taken and which one was chosen instead, or None."""
    if wanted == chosen:
        return None
    return f"  Port {wanted} is taken: the {name} listens on 127.0.0.1:{chosen} instead."


async def run_demo(gateway_port: int = 8080, provider_port: int = 9000) -> None:
    wanted = gateway_port, provider_port
    gateway_port = free_port(gateway_port)
    upstream_port = free_port(gateway_port + 1)
    provider_port = free_port(provider_port)
    notes = [
        note
        for note in (
            port_note("gateway", wanted[0], gateway_port),
            port_note("fake Hugging Face", wanted[1], provider_port),
        )
        if note
    ]
    fake = FakeHF.demo()
    async with contextlib.AsyncExitStack() as stack:
        issuer = await stack.enter_async_context(fake.serve(port=provider_port))
        await stack.enter_async_context(_site(create_echo_app(), upstream_port))
        config = demo_config(
            gateway_port=gateway_port, issuer=issuer, upstream=f"http://127.0.0.1:{upstream_port}"
        )
        # One process: a key generated now is fine (no "single replica" warning needed).
        signer = AssertionSigner([generate_signing_key()], issuer=config.server.public_url, ttl=60)
        await stack.enter_async_context(
            _site(create_app(config, signer=signer), gateway_port, access_log_class=AccessLogger)
        )
        if notes:
            print("\n" + "\n".join(notes), flush=True)
        print(_banner(config.server.public_url, issuer), flush=True)
        await asyncio.Event().wait()


def _banner(url: str, issuer: str) -> str:
    return f"""
  hf-gateway demo is running.

    Open  {url}/

  Sign in on the fake Hugging Face ({issuer}) as one of:
    alice  admin of acme, Pro          -> everything, including /admin/
    bob    read role in acme           -> the tool, but 403 on /writers/ and /admin/
    carol  acme member pending SSO     -> the tool; acme does not count for her yet
    dave   no organisations            -> the tool only
  /public/ needs no sign-in. A token for scripts (docs/clients.md):
    hf-gateway login {url}
  Stop with Ctrl-C.
"""


def main(gateway_port: int = 8080) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(gateway_port))
    return 0
