"""Ending what would never end by itself when a process stops: event streams.

An EventSource stream (the browser asked with ``Accept: text/event-stream``) stays open
until one side closes it, and the browser opens it again on its own, with the id of the
last event it saw. So when the listener has closed, such a stream is ended cleanly (the
chunked body's last chunk is written, so the browser sees an end, not an error) and the
request's handler is cancelled; the browser reconnects to a process that is still
running. Any other answer still streaming is left to finish within shutdown_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp.http_writer import StreamWriter

from gateway.web.context import Flight

log = logging.getLogger(__name__)

END_TIMEOUT = 1.0
"""How long writing a stream's last chunk may wait for a slow client."""


def is_event_stream(flight: Flight) -> bool:
    request = flight.request
    return request.method == "GET" and "text/event-stream" in request.headers.get("Accept", "")


async def end_event_streams(flights: set[Flight]) -> int:
    """End every EventSource stream in flight; returns how many were ended."""
    ended = 0
    for flight in [f for f in flights if is_event_stream(f)]:
        writer = flight.request.writer
        if isinstance(writer, StreamWriter) and writer.chunked:
            with contextlib.suppress(ConnectionError, TimeoutError, RuntimeError):
                async with asyncio.timeout(END_TIMEOUT):
                    await writer.write_eof()
        if flight.task is not None:
            flight.task.cancel()
        ended += 1
    return ended
