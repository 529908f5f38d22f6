"""Value types and checks shared by the configuration models: durations, one-or-many
lists, header names, host names, listen addresses. Pure."""

from __future__ import annotations

import re
import string
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, ConfigDict, SecretStr, WithJsonSchema

from gateway.policy import OneOrMany

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢" (which int() accepts).
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """``30s``, ``5m``, ``8h``, ``7d`` or a non-negative integer of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 5m, 8h, 7d or a number of seconds")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit():  # "²".isdigit() is True too
            return int(value)
        found = _DURATION.match(value)
        if found:
            return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    raise ValueError("must be a duration like 30s, 5m, 8h, 7d or a number of seconds")


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+[smhd]$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": "30s, 5m, 8h, 7d or integer seconds",
        }
    ),
]


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        # Otherwise pydantic says "must be a list", hiding that one string is fine too.
        raise ValueError("must be a string or a list of strings")
    return value


StrTuple = Annotated[tuple[str, ...], BeforeValidator(_one_or_many), OneOrMany()]
SecretTuple = Annotated[tuple[SecretStr, ...], BeforeValidator(_one_or_many), OneOrMany()]

MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")
HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
ROUTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

HEADER_FIELDS = ("sub", "username", "name", "email", "orgs", "org_roles", "picture", "route")
"""Identity fields header templates may use (``{org_roles}``: ``acme:write,beta:read``)."""

# Headers an identity template must never set: they would break HTTP or the gateway itself.
UNSETTABLE_HEADERS = frozenset(
    h.lower()
    for h in (
        "Host",
        "Cookie",
        "Set-Cookie",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Authorization",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "Forwarded",
        "X-Real-IP",
    )
)


def check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, for example 0.0.0.0:8080")
    return value


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http:// or https:// URL, not {value!r}")
    return value.rstrip("/")


def check_header_name(name: str) -> None:
    if not HEADER_TOKEN.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    if name.lower() in UNSETTABLE_HEADERS:
        raise ValueError(f"{name} cannot be set by the gateway")


def check_header_value(value: str) -> str:
    """A static header value as it goes on the wire: visible ASCII, spaces and tabs inside.

    A line break would start a new header; other control characters and non-ASCII are
    refused by strict HTTP parsers; leading or trailing blanks are removed by every
    parser, so they could never arrive."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a header value must not hold a line break or NUL")
    bad = [c for c in value if not (c == "\t" or " " <= c <= "~")]
    if bad:
        raise ValueError(
            f"a header value must be printable ASCII ({bad[0]!r} is not): percent-encode it"
        )
    if value != value.strip(" \t"):
        raise ValueError(f"a header value cannot begin or end with a blank: use {value.strip()!r}")
    return value


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names used by a header template (raises ValueError if malformed)."""
    fields = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"{{{field}}}: format specs and conversions are not supported")
        fields.append(field)
    return fields
