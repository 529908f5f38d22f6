"""Logging: the formatter that escapes what clients chose, the redacting access log.

Everything that decides how a log line looks lives here, so the lines stay one shape
whichever process (a worker, the supervisor, a CLI verb) writes them.
"""

from __future__ import annotations

import logging
import os
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_SENSITIVE_PARAM = re.compile(
    r"(?i)([?&](?:code|state|token|access_token|id_token|refresh_token|client_secret|"
    r"password|secret|key|session|nonce)=)[^&#]*"
)


def redact_target(target: str) -> str:
    """A request target safe to log: sensitive query values replaced."""
    return _SENSITIVE_PARAM.sub(r"\1REDACTED", target)


class AccessLogger(AbstractAccessLogger):
    """One line per request; never cookies, Authorization or OAuth codes.

    ``enabled`` follows the logger's level, so with access logging off (level WARNING)
    aiohttp skips the call and even the clock read for it.
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms',
            request.remote,
            request.method,
            redact_target(request.raw_path),
            response.status,
            response.body_length,
            time * 1000,
        )


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_for_log(text: str) -> str:
    """Control characters (CR and LF above all) and Unicode line breaks as visible escapes:
    a value a client or the provider chose can never start a log line of its own."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class EscapingFormatter(logging.Formatter):
    """Every message escaped (exception tracebacks, the gateway's own text, stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_for_log(record.message)
        return super().formatMessage(record)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        EscapingFormatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    )
    logging.basicConfig(
        level=os.environ.get("HF_GATEWAY_LOG_LEVEL", level).upper(), handlers=[handler]
    )
