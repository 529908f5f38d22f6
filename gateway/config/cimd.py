"""Zero-registration sign-in: the rules of a Client ID Metadata Document client id. Pure.

With ``provider.client_id: auto`` the gateway's client id is the URL of the document it
serves itself, ``{public_url}/.well-known/oauth-cimd`` (HF-OAUTH.md §2, docs/cimd.md).
Hugging Face fetches that URL, so it must be https; plain http is accepted for loopback
hosts only, as HF's redirect-URI rule has it (RFC 8252 §7.3).
"""

from __future__ import annotations

from urllib.parse import urlsplit

AUTO_CLIENT_ID = "auto"
"""The ``provider.client_id`` value (and default) that turns CIMD on."""
CIMD_PATH = "/.well-known/oauth-cimd"
"""Where Hugging Face expects the document, on the app's own origin."""
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts an http client id (and redirect URI) may use."""


def cimd_client_id(public_url: str) -> str:
    """The client id, which is also the document's URL."""
    return public_url.rstrip("/") + CIMD_PATH


def public_url_problem(public_url: str) -> str | None:
    """Why ``public_url`` cannot carry a CIMD client id, with the nearest value that can;
    None when it can."""
    parts = urlsplit(public_url)
    if parts.scheme == "https" or parts.hostname in LOOPBACK_HOSTS:
        return None
    https = parts._replace(scheme="https").geturl().rstrip("/")
    return (
        "client_id auto (CIMD) needs an https public_url: Hugging Face fetches "
        f"{CIMD_PATH} from it and accepts http only for localhost, 127.0.0.1 and [::1]; "
        f"use {https}"
    )
