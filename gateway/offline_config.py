"""Placeholders for the secrets a verb that works offline never uses.

``hf-gateway explain`` judges routes and policies; it never talks to Hugging Face or the
session store, so it must not need the OAuth client secret, the session secret or the
Redis URL. A configuration whose secrets are ``${VARS}`` that are not set in this shell
(an example config, a production file on a laptop) still explains: each such variable
gets a placeholder. Only variables named by those keys qualify: a missing ``${HF_ORG}``
in a policy or ``${UPSTREAM_URL}`` in a route is still reported, since explain's answer
depends on it. ``check-config`` and ``run`` never use placeholders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from gateway.config import load_config
from gateway.errors import ConfigError

# provider.client_id, provider.client_secret, session.secret (or secret[1]), session.redis_url...
OFFLINE_KEYS: frozenset[str] = frozenset(
    {
        "provider.client_id",
        "provider.client_secret",
        "provider.device_client_id",
        "session.secret",
        "session.redis_url",
        "session.redis_password",
    }
)
_UNSET = re.compile(
    r"^(?P<key>[A-Za-z_.]+)(?:\[\d+\])*: environment variable (?P<var>\w+) is not set$"
)
PLACEHOLDER_SECRET = "offline-placeholder-" + "x" * 44  # 64 bytes: any length check passes
PLACEHOLDER_REDIS_URL = "redis://placeholder.invalid:6379/0"


def placeholder_environ(path: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to ``environ`` so that ``path`` loads without its secrets.

    Empty when the file loads as it is. Problems other than an unset secret variable are
    not this function's business: the verb's own load reports them, at their keys.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        load_config(path, env)
    except ConfigError as exc:
        found: dict[str, str] = {}
        for problem in exc.problems:
            match = _UNSET.match(problem)
            if match is None or match["key"] not in OFFLINE_KEYS:
                continue
            found[match["var"]] = (
                PLACEHOLDER_REDIS_URL if match["key"] == "session.redis_url" else PLACEHOLDER_SECRET
            )
        return found
    return {}
