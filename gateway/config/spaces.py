"""Spaces mode: the defaults a Docker Space with ``hf_oauth: true`` needs. Pure.

Hugging Face injects ``OAUTH_CLIENT_ID``, ``OAUTH_CLIENT_SECRET``, ``OAUTH_SCOPES``
(space-separated), ``OPENID_PROVIDER_URL`` and ``SPACE_HOST`` into such a Space
(HF-OAUTH.md §7). Spaces mode is on when ``server.mode: spaces`` is written, or, when
``server.mode`` is not written, when both ``SPACE_HOST`` and ``OAUTH_CLIENT_ID`` are set
(``server.mode: standard`` turns it off). It fills only keys the file leaves out, so
explicit configuration always wins (docs/deploy/spaces.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

SPACES_MODE = "spaces"
SPACES_FRAMER = "https://huggingface.co"
"""The only origin whose pages may frame the gateway's in Spaces mode (the Space page)."""
SPACES_LISTEN = "0.0.0.0:7860"  # noqa: S104 - HF sends a Space's traffic to port 7860
_SECRET_LABEL = b"hf-gateway spaces session secret v1"

# provider key <- the variable Hugging Face sets (scopes arrive space-separated)
_PROVIDER_VARIABLES = (
    ("client_id", "OAUTH_CLIENT_ID"),
    ("client_secret", "OAUTH_CLIENT_SECRET"),
    ("scopes", "OAUTH_SCOPES"),
    ("issuer", "OPENID_PROVIDER_URL"),
    ("api_url", "OPENID_PROVIDER_URL"),  # HF's API lives on the issuer's origin
)


def spaces_mode(raw: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    """True when this configuration runs in Spaces mode (see the module docstring)."""
    server = raw.get("server")
    mode = server.get("mode") if isinstance(server, Mapping) else None
    if mode is not None:
        return bool(mode == SPACES_MODE)
    return bool(environ.get("SPACE_HOST")) and bool(environ.get("OAUTH_CLIENT_ID"))


def space_host(environ: Mapping[str, str]) -> str | None:
    """The Space's hf.space host: with a custom domain SPACE_HOST is a comma-separated
    list whose first entry is the hf.space host (the one HF registered redirects for)."""
    first = environ.get("SPACE_HOST", "").split(",")[0].strip()
    return first or None


def apply_spaces_defaults(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> None:
    """Fill the keys Spaces mode defaults into ``raw`` (in place) when they are absent."""
    if not spaces_mode(raw, environ):
        return
    server, provider, session = (_section(raw, name) for name in ("server", "provider", "session"))
    if server is None or provider is None or session is None:
        return  # parse_config reports the section that is not a mapping
    server.setdefault("mode", SPACES_MODE)
    if "public_url" not in server:
        host = space_host(environ)
        if host is None:
            problems.append("server.public_url: not set, and SPACE_HOST is not set either")
        else:
            server["public_url"] = f"https://{host}"
    server.setdefault("listen", SPACES_LISTEN)
    server.setdefault("frame_ancestors", [SPACES_FRAMER])
    for key, variable in _PROVIDER_VARIABLES:
        value = environ.get(variable)
        if key not in provider and value:
            provider[key] = value
    # The gateway runs inside huggingface.co's iframe: its cookies are third-party there.
    session.setdefault("cookie_samesite", "none")
    client_secret = environ.get("OAUTH_CLIENT_SECRET")
    if "secret" not in session and client_secret:
        session["secret"] = derived_session_secret(client_secret)


def derived_session_secret(client_secret: str) -> str:
    """A session secret derived from the Space's OAuth client secret (as Gradio derives
    its cookie key), so a Space needs no secret of its own; a new client secret signs
    everyone out. HMAC with a label keeps it unrelated to the client secret itself."""
    return hmac.new(client_secret.encode(), _SECRET_LABEL, hashlib.sha256).hexdigest()


def _section(raw: dict[str, Any], name: str) -> dict[str, Any] | None:
    if raw.get(name) is None:
        raw[name] = {}
    section = raw[name]
    return section if isinstance(section, dict) else None
