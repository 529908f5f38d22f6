"""The request-level series the pipeline records (gateway/web/middleware.py, proxy.py):
answers by route, method and status class; decisions by outcome and reason; upstream
latency by route. Read from the gateway's own registry after real requests."""

from __future__ import annotations

import aiohttp

from gateway.metrics import REGISTRY
from tests.integration.test_proxy_http import alice
from tests.support.harness import API, GatewayHarness


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url, headers=API, allow_redirects=False) as response:
        await response.read()
        return response.status


async def test_answers_decisions_and_upstream_time_are_counted(gateway: GatewayHarness) -> None:
    """Each kind of answer moves its own series by exactly what was sent."""
    before = {
        "open": value("hf_gateway_requests_total", route="open", method="GET", status="2xx"),
        "tool_401": value("hf_gateway_requests_total", route="tool", method="GET", status="4xx"),
        "unauth": value(
            "hf_gateway_decisions_total",
            route="tool",
            decision="unauthenticated",
            reason="unauthenticated",
        ),
        "public": value(
            "hf_gateway_decisions_total", route="open", decision="allow", reason="public"
        ),
        "allowed": value(
            "hf_gateway_decisions_total", route="tool", decision="allow", reason="allowed"
        ),
        "denied": value(
            "hf_gateway_decisions_total", route="admin", decision="deny", reason="no_matching_allow"
        ),
        "gateway": value("hf_gateway_requests_total", route="_gateway", method="GET", status="2xx"),
        "upstream": value("hf_gateway_upstream_duration_seconds_count", route="open"),
    }
    async with aiohttp.ClientSession() as anonymous:
        for _ in range(3):
            assert await status_of(anonymous, f"{gateway.url}/open/x") == 200
        assert await status_of(anonymous, f"{gateway.url}/private") == 401
        assert await status_of(anonymous, f"{gateway.url}/_gateway/healthz") == 200
    async with alice(gateway) as http:
        assert await status_of(http, f"{gateway.url}/private") == 200
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob:
        await gateway.sign_in(bob, "bob")
        assert await status_of(bob, f"{gateway.url}/admin/x") == 403
    after = {
        "open": value("hf_gateway_requests_total", route="open", method="GET", status="2xx"),
        "tool_401": value("hf_gateway_requests_total", route="tool", method="GET", status="4xx"),
        "unauth": value(
            "hf_gateway_decisions_total",
            route="tool",
            decision="unauthenticated",
            reason="unauthenticated",
        ),
        "public": value(
            "hf_gateway_decisions_total", route="open", decision="allow", reason="public"
        ),
        "allowed": value(
            "hf_gateway_decisions_total", route="tool", decision="allow", reason="allowed"
        ),
        "denied": value(
            "hf_gateway_decisions_total", route="admin", decision="deny", reason="no_matching_allow"
        ),
        "gateway": value("hf_gateway_requests_total", route="_gateway", method="GET", status="2xx"),
        "upstream": value("hf_gateway_upstream_duration_seconds_count", route="open"),
    }
    moved = {key: after[key] - before[key] for key in before}
    assert moved["open"] == 3 and moved["public"] == 3 and moved["upstream"] == 3
    assert moved["tool_401"] == 1 and moved["unauth"] == 1
    assert moved["allowed"] >= 1  # the sign-in's own landing request is allowed too
    assert moved["denied"] == 1
    assert moved["gateway"] >= 1
