"""The gateway's own ``/.well-known/`` documents, answered before any route.

- ``/.well-known/oauth-cimd``: the Client ID Metadata Document Hugging Face fetches when
  ``provider.client_id`` is auto (HF-OAUTH.md §2, docs/cimd.md). Its URL is the client id.

Only these exact paths, and only for GET and HEAD: any other ``/.well-known/`` path (or
method) goes to the routes as before, so a tool's own well-known files still work.
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.config.cimd import CIMD_PATH
from gateway.web.context import GATEWAY_PREFIX, GatewayContext

CALLBACK_PATH = GATEWAY_PREFIX + "/callback"
DOCUMENT_MAX_AGE = 300
"""Seconds a fetcher may cache the document (the CIMD draft lets HF cache it)."""


def answers(ctx: GatewayContext, method: str, path: str) -> bool:
    """True when the gateway itself answers this request (before routing)."""
    if method not in ("GET", "HEAD"):
        return False
    return path == CIMD_PATH and ctx.config.cimd_url is not None


def answer(request: web.Request, ctx: GatewayContext, path: str) -> web.Response:
    """The document at ``path`` (one that :func:`answers` said is the gateway's)."""
    del request, path
    return _json(cimd_document(ctx.config))


def cimd_document(config: GatewayConfig) -> dict[str, object]:
    """The Client ID Metadata Document: the fields HF documents (client_id, client_name,
    redirect_uris, token_endpoint_auth_method none, logo_uri, client_uri) plus the
    RFC 7591 grant and response types; ``scope`` as RFC 7591 names it and ``scopes`` as
    HF's own chat-ui sends it."""
    public_url = config.server.public_url.rstrip("/")
    provider = config.provider
    scope = " ".join(provider.scopes)
    document: dict[str, object] = {
        "client_id": config.cimd_url,
        "client_name": provider.client_name or config.server.public_host,
        "client_uri": public_url,
        "redirect_uris": [public_url + CALLBACK_PATH],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": scope,
        "scopes": scope,
    }
    if provider.client_logo_uri:
        document["logo_uri"] = provider.client_logo_uri
    return document


def _json(payload: dict[str, object]) -> web.Response:
    return web.Response(
        text=json.dumps(payload),
        content_type="application/json",
        headers={
            "Cache-Control": f"public, max-age={DOCUMENT_MAX_AGE}",
            "X-Content-Type-Options": "nosniff",
        },
    )
