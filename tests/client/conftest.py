"""Fixtures for hf_gateway_client: the gateway's own signer and a real JWKS server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gateway.assertion import AssertionSigner, SigningKey, generate_signing_key
from gateway.identity import Identity, Org

ISSUER = "https://tools.example.com"
ROUTE = "notebooks"

ALICE = Identity(
    sub="3f501019b1460301dacf1e59",
    username="alice",
    name="Alice Liddell",
    email="alice@example.com",
    email_verified=True,
    orgs=(
        Org(sub="6650a1c2e3f4a5b6c7d8e9f0", slug="acme", name="Acme Corp", role="admin"),
        Org(sub="9af218e6c4d13b02d0fafdf1", slug="hf-tools", role="read"),
        Org(sub="77aa", slug="secure-corp", role="write", security_restrictions=("sso",)),
    ),
    scopes=frozenset({"openid", "profile", "email", "read-memberships"}),
)


@dataclass
class JWKSServer:
    """A real HTTP server answering GET /jwks.json with ``document``; counts requests."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    requests: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def publish(self, *signers: AssertionSigner) -> None:
        self.document = {"keys": [k for s in signers for k in s.jwks()["keys"]]}

    def start(self) -> JWKSServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.requests += 1
                body = json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def signing_key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture
def signer(signing_key: SigningKey) -> AssertionSigner:
    return AssertionSigner([signing_key], issuer=ISSUER, ttl=60)


@pytest.fixture
def jwks_server(signer: AssertionSigner) -> Iterator[JWKSServer]:
    server = JWKSServer().start()
    server.publish(signer)
    yield server
    server.stop()
