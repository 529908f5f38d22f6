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


async def test_source_ip_admits_listed_networks_only(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The peer (127.0.0.1) is in 127.0.0.0/8, not in 192.0.2.0/24."""
    policy = {"allow": [{"org": "acme", "source_ip": ["127.0.0.0/8"]}]}
    gateway = await start_gateway(_route(upstream, policy))
    assert (await call(f"{gateway.url}/api/echo", ALICE_READ))[0] == 200
    policy = {"allow": [{"org": "acme", "source_ip": ["192.0.2.0/24"]}]}
    other = await start_gateway(_route(upstream, policy))
    status, body = await call(f"{other.url}/api/echo", ALICE_READ)
    assert status == 403
    assert "client address 127.0.0.1 is not in these networks" in str(body["reasons"])


async def test_source_ip_reads_x_forwarded_for_only_from_trusted_proxies(
    start_gateway: StartGateway, upstream: str
) -> None:
    forged = {"X-Forwarded-For": "192.0.2.7"}
    policy = {"allow": [{"org": "acme", "source_ip": ["192.0.2.0/24"]}]}
    untrusting = await start_gateway(_route(upstream, policy))
    assert (await call(f"{untrusting.url}/api/echo", ALICE_READ, headers=forged))[0] == 403
    trusting = await start_gateway(
        {**_route(upstream, policy), "server": {"trusted_proxies": ["127.0.0.1/32"]}}
    )
    assert (await call(f"{trusting.url}/api/echo", ALICE_READ, headers=forged))[0] == 200
    # The same decision is not remembered for another client address (memo key).
    assert (
        await call(
            f"{trusting.url}/api/echo", ALICE_READ, headers={"X-Forwarded-For": "198.51.100.1"}
        )
    )[0] == 403


async def test_email_lists_admit_the_verified_address_exactly(
    start_gateway: StartGateway, upstream: str
) -> None:
    gateway = await start_gateway(_route(upstream, {"allow": [{"email": "ALICE@example.com"}]}))
    assert (await call(f"{gateway.url}/api/echo", ALICE_READ))[0] == 200
    assert (await call(f"{gateway.url}/api/echo", BOB_WRITE))[0] == 403


async def test_path_inside_a_rule_admits_its_paths_only(
    start_gateway: StartGateway, upstream: str
) -> None:
    policy = {"allow": [{"org": "acme", "path": "/api/echo/*/x"}]}
    gateway = await start_gateway(_route(upstream, policy))
    assert (await call(f"{gateway.url}/api/echo/v1/x", ALICE_READ))[0] == 200
    status, body = await call(f"{gateway.url}/api/echo/v1/v2/x", ALICE_READ)
    assert status == 403
    assert "path /api/echo/v1/v2/x is not listed" in str(body["reasons"])
    # Dot segments are resolved before the rule sees the path.
    assert (await call(f"{gateway.url}/api/echo/v1/y/../x", ALICE_READ))[0] == 200
