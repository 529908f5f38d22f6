"""``GET /_gateway/device``: what ``hf-gateway login`` needs to run the device flow for this
gateway: the provider's issuer, the public app's client id (``provider.device_client_id``)
and the scopes the gateway asks browsers for. Public and read-only: none of it is secret.
404 when no device-flow app is configured."""

from __future__ import annotations

from aiohttp import web

from gateway.web import responses
from gateway.web.context import GatewayContext


async def device(request: web.Request, ctx: GatewayContext) -> web.StreamResponse:
    provider = ctx.config.provider
    if provider.device_client_id is None or not provider.bearer_tokens:
        return responses.json_response(
            404,
            {
                "error": "not_found",
                "message": "this gateway offers no device-flow app (provider.device_client_id)",
                "request_id": responses.request_id(request),
            },
        )
    body: dict[str, object] = {
        "issuer": provider.issuer.rstrip("/"),
        "client_id": provider.device_client_id,
        "scopes": list(provider.scopes),
    }
    return web.json_response(body, headers={"Cache-Control": "public, max-age=300"})
