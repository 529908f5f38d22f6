"""Gradio: the caller of an event as gr.OAuthProfile / OAuthInfo / gr.OAuthToken.

    gateway = GradioGateway(AssertionVerifier.for_gateway(PUBLIC_URL, route="demo"))

    def hello(request: gr.Request) -> str:
        profile = gateway.profile(request)   # gr.OAuthProfile, None when anonymous
        return f"Hello {profile.name}" if profile else "Hello, stranger"

gr.Request carries the headers of the HTTP request that started the event (the queue's
``join`` call), so the assertion is checked as sent then. A missing assertion gives None;
an invalid one raises InvalidAssertion, which Gradio shows as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from hf_gateway_client.identity import HUB_URL, GatewayIdentity
from hf_gateway_client.shapes import OAuthInfo, OAuthProfileLike
from hf_gateway_client.verify import ACCESS_TOKEN_HEADER, AssertionVerifier, header_value

__all__ = ["GradioGateway"]


class GradioGateway:
    def __init__(self, verifier: AssertionVerifier, *, hub_url: str = HUB_URL) -> None:
        self.verifier = verifier
        self.hub_url = hub_url

    def identity(self, request: gr.Request) -> GatewayIdentity | None:
        return self.verifier.verify_headers(_headers(request))

    async def aidentity(self, request: gr.Request) -> GatewayIdentity | None:
        return await self.verifier.averify_headers(_headers(request))

    def profile(self, request: gr.Request) -> OAuthProfileLike | None:
        """gr.OAuthProfile of the caller; None when the gateway sent no assertion."""
        identity = self.identity(request)
        return None if identity is None else identity.to_gradio_profile(hub_url=self.hub_url)

    async def aprofile(self, request: gr.Request) -> OAuthProfileLike | None:
        identity = await self.aidentity(request)
        return None if identity is None else identity.to_gradio_profile(hub_url=self.hub_url)

    def oauth_info(self, request: gr.Request) -> OAuthInfo | None:
        """huggingface_hub.OAuthInfo, with the access token when the route passes it."""
        identity = self.identity(request)
        if identity is None:
            return None
        token = header_value(_headers(request), ACCESS_TOKEN_HEADER)
        return identity.to_oauth_info(token, hub_url=self.hub_url)

    def token(self, request: gr.Request) -> Any:
        """gr.OAuthToken for the route's pass_access_token, or None (no token or anonymous)."""
        identity = self.identity(request)
        token = header_value(_headers(request), ACCESS_TOKEN_HEADER)
        if identity is None or not token:
            return None
        return gr.OAuthToken(
            token=token,
            scope=" ".join(sorted(identity.scopes)),
            expires_at=int(identity.expires_at.timestamp()),
        )


def _headers(request: gr.Request) -> Mapping[str, str]:
    headers = getattr(request, "headers", None)
    if headers is None:
        return {}
    if isinstance(headers, Mapping):
        return headers
    return dict(headers)
