"""The compose example's sample tool: gateway/devtools/echo_upstream.py, which shows the
identity headers and the assertion JWT the gateway sent it. Put your own tool here."""

from __future__ import annotations

import os

from aiohttp import web

from gateway.devtools.echo_upstream import create_echo_app


def main() -> None:
    print("sample tool (echo upstream) listening", flush=True)
    web.run_app(
        create_echo_app(),
        host=os.environ.get("TOOL_HOST", "0.0.0.0"),  # noqa: S104 - reached over the compose network
        port=int(os.environ.get("TOOL_PORT", "8000")),
        print=None,
    )


if __name__ == "__main__":
    main()
