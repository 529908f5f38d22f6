"""Client ID Metadata Documents: a ``client_id`` that is a URL (HF-OAUTH.md §2).

When ``/oauth/authorize`` meets a client id that is an http(s) URL, the fake does what
Hugging Face does: it fetches the document at that URL (a real HTTP request, no
redirects followed, a size cap), checks it, and uses it as a public app for the request
and the token exchange that follows. Refused, with the reason on the 400 page:

* a URL that is not https, except http on a loopback host (HF's redirect-URI rule);
  a URL with userinfo, a fragment, or no path;
* an answer that is not 200 JSON object within the size cap;
* a document whose ``client_id`` is not exactly its URL, whose
  ``token_endpoint_auth_method`` is not ``none``, that carries a ``client_secret``, or
  that lists no ``redirect_uris``.

The request's ``redirect_uri`` is then matched against the document's ``redirect_uris``
as for any app. The document is fetched again on every authorization request, so a
changed document counts at once; ``state.cimd_fetches`` records each URL fetched.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gateway.devtools.fake_hf_model import LOOPBACK_HOSTS, FakeClient
from gateway.devtools.fake_hf_state import ProviderState

MAX_DOCUMENT_BYTES = 5 * 1024
"""The CIMD draft suggests the server cap the size it reads; 5 KiB is its example."""
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5)


class CIMDError(Exception):
    """Why a URL client id cannot be used (shown on the provider's 400 page)."""


def is_url_client_id(client_id: str | None) -> bool:
    """True for a client id Hugging Face treats as a metadata document URL."""
    return client_id is not None and client_id.startswith(("https://", "http://"))


async def resolve(state: ProviderState, client_id: str) -> FakeClient:
    """Fetch and check the document; register (or refresh) it as a public app."""
    _check_url(client_id)
    state.cimd_fetches.append(client_id)
    document = await _fetch(client_id)
    client = _client_from(client_id, document)
    state.clients[client_id] = client
    return client


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    ):
        raise CIMDError("a client_id URL must be https (http only for localhost)")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise CIMDError("a client_id URL must not carry userinfo or a fragment")
    if parts.path in ("", "/"):
        raise CIMDError("a client_id URL must have a path")


async def _fetch(url: str) -> dict[str, Any]:
    try:
        async with (
            aiohttp.ClientSession(timeout=FETCH_TIMEOUT) as http,
            http.get(url, allow_redirects=False, headers={"Accept": "application/json"}) as r,
        ):
            status = r.status
            body = await r.content.read(MAX_DOCUMENT_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CIMDError(f"the client metadata document could not be fetched ({exc})") from exc
    if status != 200:
        raise CIMDError(f"the client metadata document answered {status}")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise CIMDError("the client metadata document is too large")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CIMDError("the client metadata document is not JSON") from None
    if not isinstance(document, dict):
        raise CIMDError("the client metadata document is not a JSON object")
    return document


def _client_from(url: str, document: dict[str, Any]) -> FakeClient:
    if document.get("client_id") != url:
        raise CIMDError("the client metadata document's client_id differs from its URL")
    if document.get("token_endpoint_auth_method") != "none":
        raise CIMDError("the client metadata document's token_endpoint_auth_method must be none")
    if "client_secret" in document:
        raise CIMDError("a client metadata document must not carry a client_secret")
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise CIMDError("the client metadata document lists no redirect_uris")
    name = document.get("client_name")
    host = urlsplit(url).hostname or url
    # Anyone can write a name; the host that served the document is what HF can vouch for.
    shown = f"{name} ({host})" if isinstance(name, str) and name else host
    return FakeClient(client_id=url, client_secret=None, redirect_uris=list(uris), name=shown)
