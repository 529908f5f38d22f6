"""The compose playground's fake Hugging Face (``--profile playground``).

It shares the gateway container's network namespace, so one URL works for the browser
(through the published port) and for the gateway (over loopback): FAKE_HF_ISSUER,
default http://localhost:9000. The demo app accepts the callback on PUBLIC_URL too.
Development only: made-up users (alice, bob, carol, dave) and a published client secret.
"""

from __future__ import annotations

import os

from aiohttp import web

from gateway.devtools.fake_hf import FakeHF

DEMO_APP = "hf-gateway-demo"


def main() -> None:
    fake = FakeHF.demo()
    fake.issuer = os.environ.get("FAKE_HF_ISSUER", "http://localhost:9000").rstrip("/")
    public_url = os.environ.get("PUBLIC_URL", "http://localhost:8080").rstrip("/")
    callbacks = fake.clients[DEMO_APP].redirect_uris
    if f"{public_url}/_gateway/callback" not in callbacks:
        callbacks.append(f"{public_url}/_gateway/callback")
    print(f"fake Hugging Face: issuer {fake.issuer}, users {', '.join(fake.users)}", flush=True)
    web.run_app(
        fake.app(),
        host=os.environ.get("FAKE_HF_HOST", "0.0.0.0"),  # noqa: S104 - reached via the published port
        port=int(os.environ.get("FAKE_HF_PORT", "9000")),
        access_log=None,  # query strings carry OAuth state
        print=None,
    )


if __name__ == "__main__":
    main()
