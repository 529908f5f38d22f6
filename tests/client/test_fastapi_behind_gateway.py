"""A real FastAPI app (uvicorn) behind a real gateway reads its caller as
huggingface_hub.OAuthInfo through hf_gateway_client, with keys from the gateway's JWKS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from gateway.devtools.fake_hf import FakeHF
from gateway.devtools.fake_hf_tokens import ACCESS_PREFIX
from hf_gateway_client import AssertionVerifier
from tests.client.upstream_apps import create_fastapi_app, serve
from tests.support.harness import API, GatewayHarness, running_upstream
from tests.support.redis_server import free_port

REFETCH_INTERVAL = 1.0


@dataclass
class Stack:
    gateway: GatewayHarness
    app_url: str
    verifier: AssertionVerifier


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """fake HF -> gateway -> (FastAPI app on routes api and tokens, echo app on route echo)."""
    fake = FakeHF.demo()
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    # Keys straight from the gateway's JWKS; iss is its public_url, aud the app's routes.
    verifier = AssertionVerifier.for_gateway(
        public_url, ["api", "tokens"], min_refetch_interval=REFETCH_INTERVAL
    )
    async with fake.serve(), running_upstream() as echo_url:
        with serve(create_fastapi_app(verifier)) as app_url:
            routes = [
                {
                    "name": "api",
                    "path": "/",
                    "upstream": app_url,
                    "policy": "authenticated",
                    "public_paths": ["/public/"],
                },
                {
                    "name": "tokens",
                    "path": "/tokens",
                    "upstream": app_url,
                    "strip_prefix": True,
                    "policy": "authenticated",
                    "pass_access_token": True,
                },
                {
                    "name": "echo",
                    "path": "/echo",
                    "upstream": echo_url,
                    "strip_prefix": True,
                    "policy": "authenticated",
                },
            ]
            gateway = GatewayHarness(fake, app_url, port=port, overrides={"routes": routes})
            await gateway.start()
            try:
                yield Stack(gateway, app_url, verifier)
            finally:
                await gateway.stop()


async def test_the_app_reads_alice_as_huggingface_hub_oauth_info(stack: Stack) -> None:
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/me", headers=API) as r:
            assert r.status == 200, await r.text()
            me = await r.json()
    assert me["type"] == "huggingface_hub._oauth.OAuthInfo"
    assert me["user_type"] == "OAuthUserInfo"
    assert (me["username"], me["name"], me["sub"]) == (
        "alice",
        "Alice Liddell",
        "3f501019b1460301dacf1e59",
    )
    assert me["profile"] == "http://hub.test/alice"
    assert me["orgs"] == [["acme", "admin"], ["hf-tools", "write"]]
    assert set(me["scope"].split()) >= {"openid", "profile"}
    assert me["token_prefix"] == ""  # no pass_access_token on this route
    assert stack.verifier.jwks.fetches == 1


async def test_a_route_passing_the_token_fills_access_token(stack: Stack) -> None:
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/tokens/me", headers=API) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["token_prefix"] == ACCESS_PREFIX


async def test_the_module_level_dependency_in_a_sync_endpoint(stack: Stack) -> None:
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        async with http.get(f"{gateway.url}/who", headers=API) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"username": "bob", "acme_admin": False}


async def test_a_public_path_is_anonymous_and_a_required_identity_is_401(stack: Stack) -> None:
    """The gateway sends an empty assertion on public paths, even to a signed-in user."""
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/public/hello", headers=API) as r:
            assert r.status == 200 and await r.json() == {"user": None}
        async with http.get(f"{gateway.url}/public/strict", headers=API) as r:
            assert r.status == 401
            assert (await r.json())["detail"] == {"error": "invalid_assertion", "code": "missing"}


async def test_bypassing_the_gateway_gets_401(stack: Stack) -> None:
    """Straight to the app: no assertion, a made-up one, or alice's real assertion for
    another route replayed here; each twin of the signed-in request above."""
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/echo/api/echo", headers=API) as r:
            echoed = await r.json()
        echo_token = {k.lower(): v for k, v in echoed["headers"]}["x-gateway-assertion"]
        async with http.get(f"{gateway.url}/me", headers=API) as r:
            assert r.status == 200
    async with aiohttp.ClientSession() as direct:
        cases = {
            "missing": {},
            "algorithm": {"X-Gateway-Assertion": "eyJhbGciOiJub25lIn0.e30."},
            "audience": {"X-Gateway-Assertion": echo_token},
            "spoofed": {"X-Gateway-Assertion": "x", "X-Forwarded-User": "alice"},
        }
        for name, headers in cases.items():
            async with direct.get(f"{stack.app_url}/me", headers=headers) as r:
                assert r.status == 401, name
                code = (await r.json())["detail"]["code"]
                assert code == {"spoofed": "malformed"}.get(name, name), name


async def test_a_gateway_restart_with_a_new_key_costs_one_refetch(stack: Stack) -> None:
    """Without signing_key_file a restarted gateway has a new key: the unknown kid makes
    the client refetch the JWKS once (no sooner than min_refetch_interval after the last
    fetch), and the request verifies."""
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/me", headers=API) as r:
            assert r.status == 200
        fetches = stack.verifier.jwks.fetches
        await gateway.restart()
        await gateway.sign_in(http, "alice")
        await asyncio.sleep(REFETCH_INTERVAL)
        async with http.get(f"{gateway.url}/me", headers=API) as r:
            assert r.status == 200, await r.text()
    assert stack.verifier.jwks.fetches == fetches + 1
