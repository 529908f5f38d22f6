"""The gateway's two ``/.well-known/`` documents, answered before any route.

- ``/.well-known/oauth-cimd``: the Client ID Metadata Document Hugging Face fetches when
  ``provider.client_id`` is auto (HF-OAUTH.md §2, docs/cimd.md). Its URL is the client id.
- ``/.well-known/oauth-protected-resource``: RFC 9728 metadata naming the provider as the
  authorization server, so an agent that met a 401 learns where to get a token
  (docs/cimd.md §Protected-resource metadata). Served while bearer tokens are accepted.

Only these exact paths, and only for GET and HEAD: any other ``/.well-known/`` path (or
method) goes to the routes as before, so a tool's own well-known files still work.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.config.cimd import CIMD_PATH
from gateway.config.values import HOSTNAME
from gateway.routing import host_matches, normalize_host
from gateway.web.context import GATEWAY_PREFIX, GatewayContext

RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource"
"""RFC 9728 §3: the well-known URI of a resource whose identifier has no path."""
CALLBACK_PATH = GATEWAY_PREFIX + "/callback"
DOCUMENT_MAX_AGE = 300
"""Seconds a fetcher may cache either document (the CIMD draft lets HF cache it)."""
_PORT = re.compile(r"[0-9]{1,5}")
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]")


def answers(ctx: GatewayContext, method: str, path: str) -> bool:
    """True when the gateway itself answers this request (before routing)."""
    if method not in ("GET", "HEAD"):
        return False
    if path == CIMD_PATH:
        return ctx.config.cimd_url is not None
    return path == RESOURCE_METADATA_PATH and ctx.config.provider.bearer_tokens


def answer(request: web.Request, ctx: GatewayContext, path: str) -> web.Response:
    """The document at ``path`` (one that :func:`answers` said is the gateway's)."""
    config = ctx.config
    if path == CIMD_PATH:
        return _json(cimd_document(config))
    return _json(resource_metadata(config, resource_origin(config, request.host)))


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


def resource_metadata(config: GatewayConfig, resource: str) -> dict[str, object]:
    """RFC 9728 §2 metadata for ``resource``: tokens come from the provider's issuer and
    travel in the Authorization header only (RFC 6750 §2.1)."""
    return {
        "resource": resource,
        "authorization_servers": [config.provider.issuer.rstrip("/")],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(config.provider.scopes),
        "resource_name": config.provider.client_name or config.server.public_host,
    }


def resource_origin(config: GatewayConfig, raw_host: str) -> str:
    """The resource identifier for a request's Host: public_url on its host, the origin
    asked on a route's own host, else public_url. A client's Host is never echoed
    unchecked: only a host name a route serves and a numeric port."""
    server = config.server
    public = server.public_url.rstrip("/")
    host = normalize_host(raw_host)
    if host == server.public_host or not (HOSTNAME.fullmatch(host) or _IPV6.fullmatch(host)):
        return public
    if not any(r.host is not None and host_matches(r.host, host) for r in config.routes):
        return public
    port = _port(raw_host)
    return public if port is None else f"{server.public_scheme}://{host}{port}"


def _port(raw_host: str) -> str | None:
    """``:port`` of a Host header ('' without one), None when it is not a number."""
    raw = raw_host.strip()
    tail = raw[raw.find("]") + 1 :] if raw.startswith("[") else raw[len(raw.split(":", 1)[0]) :]
    if not tail:
        return ""
    return tail if tail.startswith(":") and _PORT.fullmatch(tail[1:]) else None


def resource_metadata_url(config: GatewayConfig, raw_host: str) -> str:
    """Where the RFC 9728 document of a request's host is (the 401's resource_metadata)."""
    return resource_origin(config, raw_host) + RESOURCE_METADATA_PATH


def _json(payload: dict[str, object]) -> web.Response:
    return web.Response(
        text=json.dumps(payload),
        content_type="application/json",
        headers={
            "Cache-Control": f"public, max-age={DOCUMENT_MAX_AGE}",
            "X-Content-Type-Options": "nosniff",
            # Browser-based MCP clients and inspectors read the document cross-origin.
            "Access-Control-Allow-Origin": "*",
        },
    )
