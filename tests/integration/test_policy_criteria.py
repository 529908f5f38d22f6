"""Policy criteria through a running gateway, the fake HF and a real echo upstream.

Each refusal sits beside the request that passes: the same route, one fact changed.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import StartGateway

ALICE_READ = "hf_alice_demo_read_token"  # alice is an acme admin; this token is read-only
BOB_WRITE = "hf_bob_demo_write_token"  # bob is an acme reader with a write token


async def call(
    url: str,
    token: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {"Accept": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, headers=sent) as response:
            return response.status, await response.json(content_type=None)


def _route(upstream: str, policy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "routes": [{"name": "tool", "path": "/", "upstream": upstream, "policy": policy, **extra}]
    }


async def test_a_read_token_of_an_org_admin_cannot_write_but_her_session_can(
    start_gateway: StartGateway, upstream: str
) -> None:
    """{org: acme, min_role: write}: alice (acme admin) passes signed in, not with a read token."""
    gateway = await start_gateway(
        _route(upstream, {"allow": [{"org": "acme", "min_role": "write"}]})
    )
    status, body = await call(f"{gateway.url}/api/echo", ALICE_READ, "POST")
    assert status == 403
    assert "a read token acts as read at most, below write" in str(body["reasons"])
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.post(
            f"{gateway.url}/api/echo", headers={"Accept": "application/json"}
        ) as r:
            assert r.status == 200
            assert (await r.json())["method"] == "POST"


async def test_a_rule_naming_token_roles_admits_the_read_token_of_a_writer(
    start_gateway: StartGateway, upstream: str
) -> None:
    """token_role: any opts into the membership role alone; a reader's write token still fails."""
    policy = {"allow": [{"org": "acme", "min_role": "write", "token_role": "any"}]}
    gateway = await start_gateway(_route(upstream, policy))
    assert (await call(f"{gateway.url}/api/echo", ALICE_READ, "POST"))[0] == 200
    assert (await call(f"{gateway.url}/api/echo", BOB_WRITE, "POST"))[0] == 403
