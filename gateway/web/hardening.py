"""aiohttp's answer to malformed requests, made safe to show and to log.

For a request its parser refuses (bad header bytes, a header over the size limit, ...)
aiohttp replies with the parser's message and logs the exception; both can quote the
offending header, session cookie included. Script on any proxied tool could pad
``document.cookie`` until the parser refuses it and read the HttpOnly cookie back from the
400 body. The gateway replaces that answer with a fixed text and logs only the error type.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web, web_response
from aiohttp.web_protocol import RequestHandler

from gateway.logs import REQUEST_ID_HEADER, begin_trace, current_trace, new_request_id

log = logging.getLogger("gateway.http")

SERVER_NAME = "hf-gateway"
"""The ``Server`` header of the gateway's own answers: no Python or aiohttp version (which
aiohttp names by default, telling a scanner which advisories apply). An answer relayed
from an upstream keeps the upstream's own header."""


def _safe_handle_error(
    self: RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    """A fixed "status phrase" body; never the parser's message or a traceback."""
    del message
    # A handler that raised has its request's trace; a request the parser refused gets one
    # here, so its answer, this line and its access line share an id.
    trace = current_trace() or begin_trace(new_request_id())
    log.info(
        "refused a malformed request from %s: %s %s",
        request.remote,
        status,
        type(exc).__name__ if exc else "",
    )
    if request.writer.output_size > 0:
        raise ConnectionError("response already started; cannot send an error page")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    response = web.Response(status=status, text=f"{status} {phrase}\n", content_type="text/plain")
    response.headers[REQUEST_ID_HEADER] = trace.id
    response.force_close()
    return response


def install_safe_error_answers() -> None:
    """Make every aiohttp server in this process answer parse errors with fixed text, and
    name itself ``hf-gateway`` without versions (aiohttp sets ``Server`` by default to
    ``Python/3.x aiohttp/3.x`` on every answer that has none)."""
    RequestHandler.handle_error = _safe_handle_error  # type: ignore[method-assign]
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
