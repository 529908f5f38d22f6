"""Hugging Face clients over real HTTP: gradio_client's ``X-HF-Authorization`` header, and
``hf-gateway login`` (the device flow against the fake HF) whose token a script then sends.

gradio_client ``Client(url, token="hf_...")`` moves huggingface_hub's
``authorization: Bearer hf_...`` to ``x-hf-authorization`` (gradio_client/client.py), so the
gateway reads both headers alike and forwards neither.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from gateway.devtools.fake_hf import FakeHF
from gateway.devtools.fake_hf_model import FakeClient
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


# ------------------------------------------------------------------ hf-gateway login

CLI_APP = "hf-gateway-cli-test"


async def run_login(
    gateway: GatewayHarness,
    fake_hf: FakeHF,
    token_file: Path,
    *extra: str,
    approve: bool,
    issuer: bool = True,
    client_id: bool = True,
) -> tuple[int, str, str]:
    """``hf-gateway login`` as a real process; alice approves the code it prints on the
    fake's device page (what her browser would post), unless ``approve`` is False. Without
    ``issuer`` the CLI finds the provider in the gateway's RFC 9728 metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "login",
        gateway.url,
        *(("--client-id", CLI_APP) if client_id else ()),
        *(("--issuer", fake_hf.issuer) if issuer else ()),
        "--token-file",
        str(token_file),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None and process.stdout is not None
    err = ""
    if approve:
        while "enter the code:" not in err:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, err
            err += line.decode()
        code_line = (await process.stderr.readline()).decode()
        err += code_line
        form = {"user_code": code_line.strip(), "username": "alice", "action": "approve"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{fake_hf.issuer}/oauth/device/verify", data=form) as r:
                assert r.status == 200
    out, rest = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, out.decode(), err + rest.decode()


async def test_login_prints_a_code_and_saves_a_token_the_gateway_accepts(
    gateway: GatewayHarness, fake_hf: FakeHF, tmp_path: Path
) -> None:
    """The whole loop: device flow against the fake HF, alice approves, the CLI checks the
    token with the gateway and saves it 0600; a script's request with it is alice's 200.
    The token is printed nowhere but on stdout with --print-token, which then answers
    from the file without a new login."""
    fake_hf.clients[CLI_APP] = FakeClient(CLI_APP, None, [], name="hf-gateway CLI")
    fake_hf.settings.device_interval = 1
    token_file = tmp_path / "tokens.json"
    code, out, err = await run_login(gateway, fake_hf, token_file, approve=True)
    assert code == 0, err
    assert out == ""
    assert f"Signed in to {gateway.url} as alice" in err
    saved = json.loads(token_file.read_text())[gateway.url]
    token = saved["access_token"]
    assert token.startswith("hf_oauth_") and token not in err
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    status, body, _ = await call(f"{gateway.url}/api/echo", [("Authorization", f"Bearer {token}")])
    assert status == 200
    assert upstream_headers(body)["x-forwarded-user"] == "alice"
    code, out, err = await run_login(gateway, fake_hf, token_file, "--print-token", approve=False)
    assert (code, out.strip()) == (0, token)
    assert "enter the code" not in err


async def test_login_finds_the_provider_in_the_gateways_metadata(
    gateway: GatewayHarness, fake_hf: FakeHF, tmp_path: Path
) -> None:
    """No --issuer: the gateway's /.well-known/oauth-protected-resource names the fake HF
    as its authorization server, and the login completes there."""
    fake_hf.clients[CLI_APP] = FakeClient(CLI_APP, None, [], name="hf-gateway CLI")
    fake_hf.settings.device_interval = 1
    token_file = tmp_path / "tokens.json"
    code, _, err = await run_login(gateway, fake_hf, token_file, approve=True, issuer=False)
    assert code == 0, err
    assert f"Open {fake_hf.issuer}/oauth/device" in err
    assert json.loads(token_file.read_text())[gateway.url]["username"] == "alice"


async def test_the_gateway_offers_its_device_app(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """/_gateway/device names the issuer, provider.device_client_id and the scopes (nothing
    secret); 404 where no device-flow app is configured."""
    gateway = await start_gateway({"provider": {"device_client_id": CLI_APP}})
    status, body, headers = await call(f"{gateway.url}/_gateway/device", [])
    assert status == 200
    assert body == {
        "issuer": fake_hf.issuer,
        "client_id": CLI_APP,
        "scopes": ["openid", "profile", "email", "read-memberships"],
    }
    assert "secret" not in json.dumps(body)
    plain = await start_gateway()
    status, body, _ = await call(f"{plain.url}/_gateway/device", [])
    assert (status, body["error"]) == (404, "not_found")


async def test_login_needs_nothing_but_the_url_where_the_gateway_offers_an_app(
    start_gateway: StartGateway, fake_hf: FakeHF, tmp_path: Path
) -> None:
    """No --client-id, no --issuer: both come from /_gateway/device."""
    gateway = await start_gateway({"provider": {"device_client_id": CLI_APP}})
    fake_hf.clients[CLI_APP] = FakeClient(CLI_APP, None, [], name="hf-gateway CLI")
    fake_hf.settings.device_interval = 1
    token_file = tmp_path / "tokens.json"
    code, _, err = await run_login(
        gateway, fake_hf, token_file, approve=True, issuer=False, client_id=False
    )
    assert code == 0, err
    assert json.loads(token_file.read_text())[gateway.url]["username"] == "alice"


async def test_a_denied_login_saves_nothing(
    gateway: GatewayHarness, fake_hf: FakeHF, tmp_path: Path
) -> None:
    """Twin of the loop above: the user presses Deny (the fake's deny switch), the CLI
    exits 1 with access_denied and no token file appears."""
    fake_hf.clients[CLI_APP] = FakeClient(CLI_APP, None, [], name="hf-gateway CLI")
    fake_hf.settings.device_interval = 1
    fake_hf.settings.deny = True
    token_file = tmp_path / "tokens.json"
    code, out, err = await run_login(gateway, fake_hf, token_file, approve=False)
    assert code == 1
    assert "access_denied" in err
    assert out == ""
    assert not token_file.exists()


async def test_login_without_a_client_id_is_a_usage_error(
    gateway: GatewayHarness, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_GATEWAY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "login",
        gateway.url,
        "--token-file",
        str(tmp_path / "t.json"),
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert "--client-id" in err.decode()


async def test_a_session_makes_an_hf_token_in_authorization_go_no_further(
    gateway: GatewayHarness,
) -> None:
    """Signed in by cookie and also sending ``Authorization: Bearer hf_...`` (a script that
    adds the user's token everywhere): the session decides, and the Hub token, the user's
    credential, is not handed to the tool. The twin: any other Authorization reaches it."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        cookie = gateway.session_cookie(http)
    session = ("Cookie", f"hf_gateway={cookie}")
    status, body, _ = await call(
        f"{gateway.url}/api/echo", [session, ("Authorization", f"Bearer {ALICE}")]
    )
    assert status == 200
    headers = upstream_headers(body)
    assert headers["x-forwarded-user"] == "bob"  # the session, not alice's token
    assert "authorization" not in headers
    status, body, _ = await call(
        f"{gateway.url}/api/echo", [session, ("Authorization", "Bearer app_key_1234")]
    )
    assert status == 200
    assert upstream_headers(body)["authorization"] == "Bearer app_key_1234"
