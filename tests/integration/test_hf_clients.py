"""Hugging Face clients over real HTTP: gradio_client's ``X-HF-Authorization`` header, and
``hf-gateway login`` (the device flow against the fake HF) whose token a script then sends.

gradio_client ``Client(url, token="hf_...")`` moves huggingface_hub's
``authorization: Bearer hf_...`` to ``x-hf-authorization`` (gradio_client/client.py), so the
gateway reads both headers alike and forwards neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import API, GatewayHarness
from tests.support.raw_http import raw_request

Pair = tuple[str, str]
ALICE = "hf_alice_demo_read_token"
BOB = "hf_bob_demo_write_token"
TRUSTED = {"server": {"trusted_proxies": ["127.0.0.1/32"]}}


def open_and_closed(upstream: str) -> dict[str, Any]:
    """/api signed in only; /open/api the same upstream paths, public."""
    return {
        "routes": [
            {"name": "tool", "path": "/api", "upstream": upstream, "policy": "authenticated"},
            {
                "name": "open",
                "path": "/open",
                "upstream": upstream,
                "policy": "public",
                "strip_prefix": True,
            },
        ]
    }


async def call(url: str, headers: Sequence[Pair]) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=[*API.items(), *headers]) as response:
            body = await response.json(content_type=None)
            return response.status, body, dict(response.headers)


def upstream_headers(body: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


# ----------------------------------------------------------------- X-HF-Authorization


async def test_gradio_clients_header_signs_the_script_in_and_stays_with_the_gateway(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """``X-HF-Authorization: Bearer hf_...`` identifies alice as Authorization would, through
    the same cached whoami-v2 lookup; the upstream sees neither the header nor the token."""
    before = fake_hf.whoami_calls
    for _ in range(3):
        status, body, _ = await call(
            f"{gateway.url}/api/echo", [("x-hf-authorization", f"Bearer {ALICE}")]
        )
        assert status == 200
    assert fake_hf.whoami_calls == before + 1
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "alice"
    assert "x-hf-authorization" not in headers
    assert "authorization" not in headers
    assert ALICE not in str(body)


async def test_an_invalid_token_in_the_gradio_header_is_refused(gateway: GatewayHarness) -> None:
    """whoami refuses it: 401 invalid_token, as for Authorization."""
    status, body, headers = await call(
        f"{gateway.url}/api/echo", [("X-HF-Authorization", "Bearer hf_not_a_real_token")]
    )
    assert status == 401
    assert body["error"] == "invalid_token"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


async def test_the_same_token_in_both_headers_is_one_credential(gateway: GatewayHarness) -> None:
    """Positive twin of the ambiguity refusal: what some HF tools send (both headers)."""
    status, body, _ = await call(
        f"{gateway.url}/api/echo",
        [("Authorization", f"Bearer {ALICE}"), ("X-HF-Authorization", f"Bearer {ALICE}")],
    )
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "alice"
    assert "authorization" not in headers
    assert "x-hf-authorization" not in headers


async def test_two_different_hf_tokens_are_refused_as_ambiguous(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """Attack: alice's token in one header, bob's in the other. Which user is meant cannot be
    known, so neither is looked up and nothing is proxied: 400 invalid_request (RFC 6750
    §3.1), like two session cookies."""
    before = fake_hf.whoami_calls
    for first, second in ((ALICE, BOB), (BOB, ALICE)):
        status, body, headers = await call(
            f"{gateway.url}/api/echo",
            [("Authorization", f"Bearer {first}"), ("X-HF-Authorization", f"Bearer {second}")],
        )
        assert status == 400
        assert body["error"] == "invalid_request"
        assert "headers" not in body  # the echo upstream was never reached
        assert 'error="invalid_request"' in headers["WWW-Authenticate"]
    status, body, _ = await call(
        f"{gateway.url}/api/echo",
        [("X-HF-Authorization", f"Bearer {ALICE}"), ("X-HF-Authorization", f"Bearer {BOB}")],
    )
    assert (status, body["error"]) == (400, "invalid_request")
    assert fake_hf.whoami_calls == before


async def test_an_upstream_key_in_authorization_is_left_for_the_upstream(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    """gradio_client with ``headers={"Authorization": ...}`` for the app itself: the HF token
    in X-HF-Authorization signs alice in, and the app's own key reaches the app untouched
    (the gateway consumes only what it reads). Alone, that key is anonymous (401)."""
    status, body, _ = await call(
        f"{gateway.url}/api/echo",
        [("Authorization", "Bearer app_key_1234"), ("X-HF-Authorization", f"Bearer {ALICE}")],
    )
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "alice"
    assert headers["authorization"] == "Bearer app_key_1234"
    assert "x-hf-authorization" not in headers
    before = fake_hf.whoami_calls
    status, body, _ = await call(
        f"{gateway.url}/api/echo", [("Authorization", "Bearer app_key_1234")]
    )
    assert (status, body["error"]) == (401, "unauthenticated")
    assert fake_hf.whoami_calls == before


async def test_a_forged_gradio_header_never_reaches_an_upstream(
    start_gateway: StartGateway, upstream: str
) -> None:
    """Attack: the header in any spelling on a public path and beside a session cookie is
    stripped (an owned header), so an upstream never receives a token meant for the gateway;
    the signed-in request itself still passes."""
    gateway = await start_gateway(open_and_closed(upstream))
    spellings = [("X-HF-Authorization", "Bearer hf_x"), ("x_hf_authorization", "Bearer hf_y")]
    status, body, _ = await call(f"{gateway.url}/open/api/echo", spellings)
    assert status == 200
    assert not {"x-hf-authorization", "x_hf_authorization"} & upstream_headers(body).keys()
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob", rd="/api/echo")
        async with http.get(
            f"{gateway.url}/api/echo", headers={**API, "X-HF-Authorization": f"Bearer {ALICE}"}
        ) as response:
            assert response.status == 200
            seen = upstream_headers(await response.json())
    assert seen["x-forwarded-user"] == "bob"  # the session wins, as with Authorization
    assert "x-hf-authorization" not in seen


async def test_the_gradio_header_is_ignored_when_bearer_tokens_are_off(
    start_gateway: StartGateway, fake_hf: FakeHF, upstream: str
) -> None:
    """provider.bearer_tokens: false switches both headers off (401, no lookup); the header
    is still not forwarded. Twin: the same token passes where bearer tokens are on."""
    gateway = await start_gateway(
        {"provider": {"bearer_tokens": False}, **open_and_closed(upstream)}
    )
    before = fake_hf.whoami_calls
    status, body, _ = await call(
        f"{gateway.url}/api/echo", [("X-HF-Authorization", f"Bearer {ALICE}")]
    )
    assert (status, body["error"]) == (401, "unauthenticated")
    status, body, _ = await call(
        f"{gateway.url}/open/api/echo", [("X-HF-Authorization", f"Bearer {ALICE}")]
    )
    assert status == 200
    assert "x-hf-authorization" not in upstream_headers(body)
    assert fake_hf.whoami_calls == before
    enabled = await start_gateway()
    status, _, _ = await call(
        f"{enabled.url}/api/echo", [("X-HF-Authorization", f"Bearer {ALICE}")]
    )
    assert status == 200


async def test_forward_auth_reads_the_gradio_header_too(start_gateway: StartGateway) -> None:
    """/_gateway/auth decides with the same code: X-HF-Authorization grants alice (200 with
    her identity headers), two different tokens are a 400, no token a 401."""
    gateway = await start_gateway(TRUSTED)
    asked = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", f"127.0.0.1:{gateway.port}"),
        ("X-Forwarded-Uri", "/api/echo"),
        *API.items(),
    ]
    granted = await raw_request(
        gateway.port, "/_gateway/auth", [*asked, ("X-HF-Authorization", f"Bearer {ALICE}")]
    )
    assert granted.status == 200, granted.body
    assert granted.header("X-Forwarded-User") == "alice"
    ambiguous = await raw_request(
        gateway.port,
        "/_gateway/auth",
        [*asked, ("Authorization", f"Bearer {BOB}"), ("X-HF-Authorization", f"Bearer {ALICE}")],
    )
    assert ambiguous.status == 400
    assert ambiguous.header("X-Forwarded-User") is None
    assert (await raw_request(gateway.port, "/_gateway/auth", asked)).status == 401
