"""Tokens ``hf-gateway login`` keeps for scripts, one per gateway, in a file only its owner
can read (0600, in a 0700 directory), like ``~/.cache/huggingface/token``.

The file is ``HF_GATEWAY_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/hf-gateway/tokens.json``
(``~/.config`` when XDG_CONFIG_HOME is unset). It maps a gateway's origin
(``https://tools.example.com``) to ``{access_token, expires_at, username}``. Writes go
through a new file renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

EXPIRY_MARGIN = 60
"""Seconds before its expiry a saved token is no longer handed out."""


@dataclass(frozen=True, slots=True)
class SavedToken:
    access_token: str
    expires_at: int | None
    username: str

    def __repr__(self) -> str:  # never the token
        return f"SavedToken(username={self.username!r}, expires_at={self.expires_at!r})"

    def usable(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at - EXPIRY_MARGIN


def token_file(env: Mapping[str, str] = os.environ) -> Path:
    if explicit := env.get("HF_GATEWAY_TOKEN_FILE"):
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hf-gateway" / "tokens.json"


def gateway_key(url: str) -> str:
    """The origin a token belongs to: scheme and host in lower case, default port left out."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def load(path: Path) -> dict[str, SavedToken]:
    """Every saved token; an absent or unreadable file holds none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    found: dict[str, SavedToken] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("access_token"), str):
            continue
        expires_at = entry.get("expires_at")
        found[key] = SavedToken(
            entry["access_token"],
            int(expires_at) if isinstance(expires_at, int | float) else None,
            str(entry.get("username") or ""),
        )
    return found


def lookup(path: Path, url: str, now: float) -> SavedToken | None:
    saved = load(path).get(gateway_key(url))
    return saved if saved is not None and saved.usable(now) else None


def save(path: Path, url: str, token: SavedToken) -> None:
    """Add or replace the token of ``url``'s gateway; the file ends up 0600."""
    entries = load(path)
    entries[gateway_key(url)] = token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {
        key: {"access_token": t.access_token, "expires_at": t.expires_at, "username": t.username}
        for key, t in sorted(entries.items())
    }
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tokens-", suffix=".json")
    try:  # mkstemp creates the file 0600 from the start: the token is never world-readable
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
