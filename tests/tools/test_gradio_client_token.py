"""gradio_client's ``Client(url, token="hf_...")`` reaches a Gradio app the gateway
protects: gradio_client sends the token as ``x-hf-authorization`` (docs/clients.md §6), the
gateway signs alice in with it, and the app reads her from the assertion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import gradio as gr
import pytest
from fastapi import FastAPI
from gradio_client import Client

from gateway.devtools.fake_hf import FakeHF
from hf_gateway_client import AssertionVerifier
from hf_gateway_client.gradio import GradioGateway
from tests.client.upstream_apps import serve
from tests.support.harness import GatewayHarness
from tests.support.redis_server import free_port

ALICE = "hf_alice_demo_read_token"


def create_app(gateway: GradioGateway) -> FastAPI:
    def whoami(text: str, request: gr.Request) -> str:
        profile = gateway.profile(request)
        seen = {k.lower() for k in request.headers}
        return json.dumps(
            {
                "echo": text,
                "username": profile.username if profile else None,
                "token_headers": sorted(seen & {"authorization", "x-hf-authorization"}),
            }
        )

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        gr.Button("go").click(whoami, inputs=box, outputs=out, api_name="whoami")
    return gr.mount_gradio_app(FastAPI(), demo, path="/")


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayHarness]:
    fake = FakeHF.demo()
    port = free_port()
    verifier = AssertionVerifier.for_gateway(f"http://127.0.0.1:{port}", "gradio")
    app = create_app(GradioGateway(verifier, hub_url="http://hub.test"))
    async with fake.serve():
        with serve(app, lifespan="on") as app_url:
            routes = [
                {"name": "gradio", "path": "/", "upstream": app_url, "policy": "authenticated"}
            ]
            harness = GatewayHarness(fake, app_url, port=port, overrides={"routes": routes})
            await harness.start()
            try:
                yield harness
            finally:
                await harness.stop()


def predict(url: str, token: str | bool) -> str:
    client = Client(url, token=token, verbose=False, download_files=False)
    try:
        return str(client.predict("hi", api_name="/whoami"))
    finally:
        client.close()


async def test_gradio_client_with_token_reaches_the_protected_app(gateway: GatewayHarness) -> None:
    """The real client, every request through the gateway: alice is the caller and the app
    receives neither token header."""
    answer = json.loads(await asyncio.to_thread(predict, gateway.url + "/", ALICE))
    assert answer == {"echo": "hi", "username": "alice", "token_headers": []}


async def test_gradio_client_without_a_token_is_refused(gateway: GatewayHarness) -> None:
    """Twin: ``token=False`` (not even a saved token) gets the gateway's 401 on the client's
    first request (the config), which gradio_client reports as "credentials were not
    provided"."""
    with pytest.raises(Exception, match="credentials were not provided"):
        await asyncio.to_thread(predict, gateway.url + "/", False)
