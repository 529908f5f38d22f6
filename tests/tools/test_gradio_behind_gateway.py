"""A real Gradio app behind a real gateway reads its caller as gr.OAuthProfile and
huggingface_hub.OAuthInfo from the assertion, through hf_gateway_client.gradio."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import gradio as gr
import huggingface_hub
import jwt
import pytest
from fastapi import FastAPI

from gateway.assertion import AssertionSigner, generate_signing_key
from gateway.devtools.fake_hf import FakeHF
from gateway.identity import Identity
from hf_gateway_client import AssertionVerifier, GatewayIdentity
from hf_gateway_client.gradio import GradioGateway
from tests.client.upstream_apps import serve
from tests.support.harness import API, GatewayHarness
from tests.support.redis_server import free_port

TIMEOUT = aiohttp.ClientTimeout(total=20)


def create_gradio_app(gateway: GradioGateway) -> FastAPI:
    def hello(request: gr.Request) -> str:
        profile = gateway.profile(request)
        if profile is None:
            return json.dumps({"anonymous": True})
        info = gateway.oauth_info(request)
        assert info is not None
        return json.dumps(
            {
                "profile_type": f"{type(profile).__module__}.{type(profile).__qualname__}",
                "username": profile.username,
                "name": profile.name,
                "profile": profile.profile,
                "orgs": [[o["preferred_username"], o["roleInOrg"]] for o in profile["orgs"]],
                "info_type": type(info).__qualname__,
                "info_is_hub": isinstance(info, huggingface_hub.OAuthInfo),
                "info_username": info.user_info.preferred_username,
            }
        )

    with gr.Blocks() as demo:
        out = gr.Textbox()
        gr.Button("who am I").click(hello, inputs=None, outputs=out, api_name="hello")
    return gr.mount_gradio_app(FastAPI(), demo, path="/")


@dataclass
class Stack:
    gateway: GatewayHarness
    app_url: str


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    fake = FakeHF.demo()
    port = free_port()
    verifier = AssertionVerifier.for_gateway(f"http://127.0.0.1:{port}", "gradio")
    app = create_gradio_app(GradioGateway(verifier, hub_url="http://hub.test"))
    async with fake.serve():
        with serve(app, lifespan="on") as app_url:
            routes = [
                {"name": "gradio", "path": "/", "upstream": app_url, "policy": "authenticated"}
            ]
            gateway = GatewayHarness(fake, app_url, port=port, overrides={"routes": routes})
            await gateway.start()
            try:
                yield Stack(gateway, app_url)
            finally:
                await gateway.stop()


async def call_hello(http: aiohttp.ClientSession, base: str, **headers: str) -> Any:
    """Gradio's HTTP API: POST /gradio_api/call/hello, then read the event's SSE stream."""
    url = f"{base}/gradio_api/call/hello"
    async with http.post(url, json={"data": []}, headers=headers, timeout=TIMEOUT) as r:
        assert r.status == 200, await r.text()
        event_id = (await r.json())["event_id"]
    async with http.get(f"{url}/{event_id}", headers=headers, timeout=TIMEOUT) as r:
        assert r.status == 200
        body = await r.text()
    events = [line for line in body.splitlines() if line.startswith(("event:", "data:"))]
    kind = events[-2].removeprefix("event:").strip()
    data = json.loads(events[-1].removeprefix("data:").strip())
    return kind, data


async def test_the_gradio_app_reads_alice_as_gr_oauth_profile(stack: Stack) -> None:
    gateway = stack.gateway
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        kind, data = await call_hello(http, gateway.url, **API)
    assert kind == "complete", data
    seen = json.loads(data[0])
    assert seen["profile_type"] == "gradio.oauth.OAuthProfile"
    assert (seen["username"], seen["name"], seen["profile"]) == (
        "alice",
        "Alice Liddell",
        "http://hub.test/alice",
    )
    assert seen["orgs"] == [["acme", "admin"], ["hf-tools", "write"]]
    assert seen["info_is_hub"] and seen["info_username"] == "alice"


async def test_straight_to_gradio_a_forged_assertion_is_an_error(stack: Stack) -> None:
    """Twin of the signed-in call: bypassing the gateway, no assertion is anonymous and a
    made-up one makes the event fail."""
    async with aiohttp.ClientSession() as direct:
        kind, data = await call_hello(direct, stack.app_url)
        assert kind == "complete" and json.loads(data[0]) == {"anonymous": True}
        forged = AssertionSigner([generate_signing_key()], issuer=stack.gateway.url, ttl=60)
        token = forged.sign(Identity(sub="m", username="mallory"), "gradio", time.time())
        kind, _ = await call_hello(direct, stack.app_url, **{"X-Gateway-Assertion": token})
        assert kind == "error"


def test_to_gradio_profile_builds_gradios_own_class() -> None:
    signer = AssertionSigner([generate_signing_key()], issuer="https://t.example", ttl=60)
    token = signer.sign(Identity(sub="a1", username="alice", name="Alice"), "r", time.time())
    claims = jwt.decode(token, options={"verify_signature": False})
    profile = GatewayIdentity.from_claims(claims).to_gradio_profile()
    assert type(profile) is gr.OAuthProfile
    assert (profile.username, profile.name) == ("alice", "Alice")
