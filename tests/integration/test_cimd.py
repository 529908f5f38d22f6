"""Zero-registration sign-in (docs/cimd.md): provider.client_id auto, over real HTTP.

The gateway serves its Client ID Metadata Document; the fake Hugging Face fetches it from
the gateway (a real request) and checks it as HF does. The fake's own checks are driven
with a small document server that serves whatever document a test writes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER
from tests.support.redis_server import free_port

AUTO = {"provider": {"client_id": "auto", "client_secret": None}}
CIMD_PATH = "/.well-known/oauth-cimd"


def well_known_routes(upstream: str) -> dict[str, Any]:
    """A public route of the tool's own /.well-known/ files beside the protected tool."""
    return {
        "routes": [
            {"name": "wk", "path": "/.well-known", "upstream": upstream, "policy": "public"},
            {"name": "tool", "path": "/", "upstream": upstream, "policy": "authenticated"},
        ]
    }


async def _any_path(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "path": request.path})


@pytest.fixture
async def tool() -> AsyncIterator[str]:
    """An upstream that answers every path with its method and path as JSON (a tool with
    /.well-known/ files of its own)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ the gateway


async def test_sign_in_with_client_id_auto_needs_no_registered_app(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """With client_id auto the whole sign-in works against an HF that has never heard of
    the gateway: HF fetched the gateway's document, the token request sent no secret."""
    gateway = await start_gateway(AUTO)
    document_url = gateway.url + CIMD_PATH
    assert document_url not in fake_hf.clients  # no registered app
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 200
            echoed = await r.json()
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-forwarded-user"] == "alice"
    assert fake_hf.cimd_fetches == [document_url]
    assert fake_hf.authorize_requests[-1]["client_id"] == document_url
    assert fake_hf.authorize_requests[-1]["code_challenge_method"] == "S256"
    exchange = fake_hf.token_requests[-1]
    assert (exchange["grant_type"], exchange["auth"]) == ("authorization_code", "none")
    assert exchange["form"]["client_id"] == document_url
    assert exchange["form"]["code_verifier"]


async def test_a_cimd_session_refreshes_as_a_public_client(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """Revalidation refreshes with the document URL as client id and no secret (HF's rule
    for public clients), and the session lives on with the rotated token."""
    fake_hf.settings.expires_in = 2  # so the revalidation must refresh
    gateway = await start_gateway({**AUTO, "session": {"revalidate_after": 1}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        start = len(fake_hf.token_requests)
        await asyncio.sleep(1.2)
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 200
    refreshes = [r for r in fake_hf.token_requests[start:] if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1
    assert (refreshes[0]["auth"], refreshes[0]["client_id"]) == ("none", gateway.url + CIMD_PATH)


async def test_the_document_names_the_gateway_as_a_public_client(
    start_gateway: StartGateway, tool: str
) -> None:
    """The exact document: client id = its own URL, the callback as the only redirect,
    auth method none; served by the gateway even where a route covers /.well-known/."""
    gateway = await start_gateway(
        {
            **AUTO,
            **well_known_routes(tool),
            "provider": {
                **AUTO["provider"],
                "client_name": "Acme tools",
                "client_logo_uri": "https://cdn.example.com/acme.png",
            },
        }
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + CIMD_PATH) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert r.headers["Cache-Control"] == "public, max-age=300"
            document = await r.json()
        async with http.head(gateway.url + CIMD_PATH) as r:
            assert r.status == 200
    assert document == {
        "client_id": gateway.url + CIMD_PATH,
        "client_name": "Acme tools",
        "client_uri": gateway.url,
        "redirect_uris": [gateway.url + "/_gateway/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile email read-memberships",
        "scopes": "openid profile email read-memberships",
        "logo_uri": "https://cdn.example.com/acme.png",
    }


async def test_the_document_names_the_host_when_no_client_name_is_set(
    start_gateway: StartGateway,
) -> None:
    """Without client_name the consent screen gets public_url's host; no logo is made up."""
    gateway = await start_gateway(AUTO)
    async with aiohttp.ClientSession() as http, http.get(gateway.url + CIMD_PATH) as r:
        document = await r.json()
    assert document["client_name"] == "127.0.0.1"
    assert "logo_uri" not in document


async def test_other_well_known_paths_and_methods_still_reach_the_route(
    start_gateway: StartGateway, tool: str
) -> None:
    """Only GET/HEAD of the exact path are the gateway's: a tool's own /.well-known/ files
    and a POST to the document's path go to the route as before."""
    gateway = await start_gateway({**AUTO, **well_known_routes(tool)})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/.well-known/security.txt") as r:
            assert r.status == 200
            assert (await r.json())["path"] == "/.well-known/security.txt"
        async with http.post(gateway.url + CIMD_PATH, headers=API) as r:
            assert r.status == 200
            assert (await r.json())["method"] == "POST"


async def test_without_auto_the_document_path_belongs_to_the_routes(
    start_gateway: StartGateway, tool: str
) -> None:
    """A gateway with a registered app serves no document: the path is the tool's."""
    gateway = await start_gateway(well_known_routes(tool))
    async with aiohttp.ClientSession() as http, http.get(gateway.url + CIMD_PATH) as r:
        assert r.status == 200
        assert (await r.json())["path"] == CIMD_PATH


async def test_an_api_client_is_still_asked_to_sign_in_with_auto(
    start_gateway: StartGateway,
) -> None:
    """client_id auto changes who the app is, not the gate: anonymous callers get 401/302."""
    gateway = await start_gateway(AUTO)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            assert r.status == 401
        async with http.get(f"{gateway.url}/api/echo", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302


# ------------------------------------------------------- the fake HF's checks


@dataclass
class DocumentServer:
    """Serves ``document`` at /.well-known/oauth-cimd (or a redirect, or raw text)."""

    port: int = field(default_factory=free_port)
    document: dict[str, Any] = field(default_factory=dict)
    redirect_to: str | None = None
    raw: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CIMD_PATH}"

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def good_document(self) -> dict[str, Any]:
        return {
            "client_id": self.url,
            "client_name": "Doc app",
            "redirect_uris": [self.callback],
            "token_endpoint_auth_method": "none",
        }

    async def handle(self, request: web.Request) -> web.Response:
        del request
        if self.redirect_to is not None:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        if self.raw is not None:
            return web.Response(text=self.raw, content_type="application/json")
        return web.json_response(self.document)


@pytest.fixture
async def documents() -> AsyncIterator[DocumentServer]:
    server = DocumentServer()
    server.document = server.good_document()
    app = web.Application()
    app.router.add_get(CIMD_PATH, server.handle)
    app.router.add_get("/elsewhere", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _authorize(
    fake: FakeHF, client_id: str, redirect_uri: str, *, pkce: bool = True
) -> tuple[int, dict[str, str]]:
    """GET /oauth/authorize as alice; the status and the redirect's query (if any)."""
    fake.settings.auto_login = "alice"
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid profile",
        "state": "st-1",
    }
    if pkce:
        params |= {"code_challenge": _pkce()[1], "code_challenge_method": "S256"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.issuer}/oauth/authorize", params=params, allow_redirects=False) as r,
    ):
        location = r.headers.get("Location", "")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        return r.status, query


async def test_the_fake_accepts_a_valid_document_and_issues_tokens_for_it(
    fake_hf: FakeHF, documents: DocumentServer
) -> None:
    """The positive twin: a good document gets a code, and the code a token pair whose ID
    token is for the document's URL, with no client authentication but PKCE."""
    fake_hf.settings.auto_login = "alice"
    verifier, challenge = _pkce()
    params = {
        "client_id": documents.url,
        "redirect_uri": documents.callback,
        "response_type": "code",
        "scope": "openid profile",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n-1",
    }
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{fake_hf.issuer}/oauth/authorize", params=params, allow_redirects=False
        ) as r:
            assert r.status == 303
            code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": documents.callback,
            "client_id": documents.url,
            "code_verifier": verifier,
        }
        async with http.post(f"{fake_hf.issuer}/oauth/token", data=form) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["aud"] == documents.url
    assert fake_hf.cimd_fetches == [documents.url]
    assert fake_hf.clients[documents.url].display_name == "Doc app (127.0.0.1)"


BAD_DOCUMENTS = [
    pytest.param({"client_id": "http://127.0.0.1:1/.well-known/oauth-cimd"}, id="other client_id"),
    pytest.param({"client_id": None}, id="no client_id"),
    pytest.param({"token_endpoint_auth_method": "client_secret_basic"}, id="auth method basic"),
    pytest.param({"token_endpoint_auth_method": None}, id="no auth method"),
    pytest.param({"client_secret": "s3cret"}, id="carries a client_secret"),
    pytest.param({"redirect_uris": []}, id="no redirect_uris"),
    pytest.param({"redirect_uris": "http://127.0.0.1/callback"}, id="redirect_uris not a list"),
]


@pytest.mark.parametrize("change", BAD_DOCUMENTS)
async def test_the_fake_refuses_a_document_hf_would_refuse(
    fake_hf: FakeHF, documents: DocumentServer, change: dict[str, Any]
) -> None:
    """A wrong client_id, auth method, secret or redirect list: HF's 400 page, no code,
    no redirect to the app, and no app left behind for the token endpoint."""
    documents.document = {
        k: v for k, v in {**documents.good_document(), **change}.items() if v is not None
    }
    status, query = await _authorize(fake_hf, documents.url, documents.callback)
    assert (status, query) == (400, {})
    assert documents.url not in fake_hf.clients
    assert fake_hf.cimd_fetches == [documents.url]


async def test_the_fake_refuses_a_redirect_uri_the_document_does_not_list(
    fake_hf: FakeHF, documents: DocumentServer
) -> None:
    """The document is valid but lists another callback: the 400 page, never a redirect
    to the URI the request named (an attacker's)."""
    status, query = await _authorize(fake_hf, documents.url, "http://127.0.0.1:1/steal")
    assert (status, query) == (400, {})
    status, query = await _authorize(fake_hf, documents.url, documents.callback)
    assert status == 303 and "code" in query  # the twin: the listed one works


@pytest.mark.parametrize(
    ("served", "why"),
    [
        pytest.param({"redirect_to": "/elsewhere"}, "redirect", id="a redirect is not followed"),
        pytest.param({"raw": "not json"}, "json", id="not JSON"),
        pytest.param({"raw": "[1, 2]"}, "object", id="not an object"),
        pytest.param({"raw": '{"x": "' + "a" * 6000 + '"}'}, "large", id="over 5 KiB"),
    ],
)
async def test_the_fake_refuses_an_unusable_answer(
    fake_hf: FakeHF, documents: DocumentServer, served: dict[str, Any], why: str
) -> None:
    """What the document URL answers must be the document itself, JSON, small."""
    del why
    for key, value in served.items():
        setattr(documents, key, value)
    status, _ = await _authorize(fake_hf, documents.url, documents.callback)
    assert status == 400


@pytest.mark.parametrize(
    "client_id",
    [
        pytest.param("http://tools.example.com/.well-known/oauth-cimd", id="http off loopback"),
        pytest.param("https://user:pw@tools.example.com/.well-known/oauth-cimd", id="userinfo"),
        pytest.param("https://tools.example.com/", id="no path"),
        pytest.param("https://tools.example.com/x#frag", id="fragment"),
    ],
)
async def test_the_fake_refuses_a_url_hf_would_not_fetch(fake_hf: FakeHF, client_id: str) -> None:
    """https, or http on loopback only; no userinfo, fragment or empty path. Nothing is
    fetched for such a URL."""
    status, _ = await _authorize(fake_hf, client_id, "https://tools.example.com/callback")
    assert status == 400
    assert fake_hf.cimd_fetches == []


async def test_a_document_client_must_use_pkce(fake_hf: FakeHF, documents: DocumentServer) -> None:
    """A CIMD app has no secret, so an authorization without PKCE is refused."""
    status, query = await _authorize(fake_hf, documents.url, documents.callback, pkce=False)
    assert status == 303 and query["error"] == "invalid_request"
    status, query = await _authorize(fake_hf, documents.url, documents.callback)
    assert status == 303 and "code" in query
