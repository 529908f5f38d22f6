"""The one aiohttp handler: every request starts here, on the live context.

It takes the context a reload last installed, once, and the request keeps it to the end
(``CONTEXT``), so a reload never changes the configuration under a request in flight. It
counts the request on that context, which lets a replaced context be closed after its
last request, and lets a drain wait for the requests still running.
"""

from __future__ import annotations

from aiohttp import web

from gateway.web.context import CONTEXT, LIVE
from gateway.web.middleware import handle


async def entry(request: web.Request) -> web.StreamResponse:
    live = request.app[LIVE]
    flight = live.enter(request)
    request[CONTEXT] = flight.ctx
    try:
        response = await handle(request)
        if live.draining:  # the client should open its next request elsewhere
            response.force_close()
        return response
    finally:
        live.leave(flight)
