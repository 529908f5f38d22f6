"""Forwarded headers and health checks never open a door (SECURITY.md §2 and §6).

The gateway serves two hosts: ``open.example.test`` (policy public) and
``tools.example.test`` (signed-in users, with ``/public/`` public and ``/admin`` for acme
admins). Requests are written byte for byte with any Host and header a client likes; the
upstream records everything it receives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import (
    RawResponse,
    RecordingUpstream,
    raw_request,
    recording_upstream,
)

OPEN = "open.example.test"
TOOLS = "tools.example.test"
JSON = list(API.items())


def _overrides(upstream: str, **server: Any) -> dict[str, Any]:
    return {
        # The public host must sit under cookie_domain; requests name their hosts raw.
        "server": {"public_url": "http://login.example.test", **server},
        "session": {"cookie_domain": ".example.test"},
        "routes": [
            {"name": "open", "host": OPEN, "path": "/", "upstream": upstream, "policy": "public"},
            {
                "name": "tools",
                "host": TOOLS,
                "path": "/",
                "upstream": upstream,
                "policy": "authenticated",
                "public_paths": ["/public/"],
            },
            {
                "name": "admin",
                "host": TOOLS,
                "path": "/admin",
                "upstream": upstream,
                "policy": "admins",
            },
        ],
    }


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running:
        yield running


@pytest.fixture
def upstream(recorder: RecordingUpstream) -> str:
    """The gateway forwards to the recording upstream (overrides the plain echo)."""
    return recorder.url


@pytest.fixture
async def gateway(start_gateway: StartGateway, upstream: str) -> GatewayHarness:
    """A gateway that trusts no proxy (the default)."""
    return await start_gateway(_overrides(upstream))


async def _get(
    gateway: GatewayHarness, target: str, headers: list[tuple[str, str]], host: str = TOOLS
) -> RawResponse:
    return await raw_request(gateway.port, target, headers, host=host)


SPOOFED = [
    pytest.param([("X-Forwarded-Uri", "/public")], id="X-Forwarded-Uri public prefix"),
    pytest.param([("X-Forwarded-Uri", "/public/x")], id="X-Forwarded-Uri public page"),
    pytest.param([("X-Original-URL", "/public/")], id="X-Original-URL"),
    pytest.param([("X-Original-URI", "/public/")], id="X-Original-URI"),
    pytest.param([("X-Rewrite-URL", "/public/")], id="X-Rewrite-URL"),
    pytest.param([("X-Envoy-Original-Path", "/public/")], id="X-Envoy-Original-Path"),
    pytest.param([("X-Forwarded-Prefix", "/public")], id="X-Forwarded-Prefix"),
    pytest.param([("X-Forwarded-Host", OPEN)], id="X-Forwarded-Host of the public route"),
    pytest.param([("X-Forwarded-Server", OPEN)], id="X-Forwarded-Server of the public route"),
    pytest.param([("X-Host", OPEN)], id="X-Host of the public route"),
    pytest.param([("Forwarded", f"host={OPEN}")], id="Forwarded host of the public route"),
    pytest.param(
        [("Forwarded", f'for=10.0.0.1;host="{OPEN}";proto=https')],
        id="Forwarded with every parameter",
    ),
    pytest.param([("X-Forwarded-Proto", "https")], id="X-Forwarded-Proto"),
    pytest.param([("X-Forwarded-Port", "443")], id="X-Forwarded-Port"),
    pytest.param([("X-Forwarded-For", "127.0.0.1")], id="X-Forwarded-For loopback"),
    pytest.param([("X-Real-IP", "10.0.0.1")], id="X-Real-IP"),
    pytest.param([("X-Client-IP", "127.0.0.1")], id="X-Client-IP"),
    pytest.param(
        [
            ("X-Forwarded-Uri", "/public/"),
            ("X-Original-URL", "/public/"),
            ("X-Forwarded-Host", OPEN),
            ("Forwarded", f"host={OPEN};proto=https"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Real-IP", "127.0.0.1"),
        ],
        id="all of them at once",
    ),
]


@pytest.mark.parametrize("spoofed", SPOOFED)
async def test_forwarded_headers_do_not_change_the_decision(
    gateway: GatewayHarness, recorder: RecordingUpstream, spoofed: list[tuple[str, str]]
) -> None:
    """An anonymous GET /admin from an untrusted peer is 401 whatever it claims."""
    response = await _get(gateway, "/admin", [*JSON, *spoofed])
    assert response.status == 401
    assert response.json()["error"] == "unauthenticated"
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("host", "target"),
    [
        pytest.param(OPEN, "/admin", id="the public route's host"),
        pytest.param(TOOLS, "/public/x", id="the public path"),
    ],
)
async def test_the_real_host_and_path_are_what_open_the_door(
    gateway: GatewayHarness, recorder: RecordingUpstream, host: str, target: str
) -> None:
    """The positive case: what the headers above pretend to be is proxied anonymously."""
    response = await _get(gateway, target, JSON, host=host)
    assert response.status == 200
    assert recorder.paths() == [target]


async def test_a_browser_redirect_names_the_real_host(gateway: GatewayHarness) -> None:
    """The sign-in target is built from the Host and path, never from forwarded headers."""
    headers = [
        *BROWSER.items(),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "host=evil.example;proto=https"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Uri", "/elsewhere"),
    ]
    response = await _get(gateway, "/admin/page?x=1", headers)
    assert response.status == 302
    location = response.header("Location") or ""
    assert location.startswith("http://login.example.test/_gateway/sign_in?")
    assert parse_qs(urlsplit(location).query)["rd"] == [f"http://{TOOLS}/admin/page?x=1"]


async def test_an_untrusted_peer_cannot_choose_what_the_upstream_is_told(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """X-Forwarded-For is the peer alone, the scheme is the connection's, and the client's
    X-Real-IP, Forwarded and X-Forwarded-Host never reach the upstream."""
    spoofed = [
        ("X-Forwarded-For", "10.9.9.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Real-IP", "10.9.9.9"),
        ("Forwarded", "for=10.9.9.9;proto=https"),
        ("X-Original-URL", "/admin"),
    ]
    response = await _get(gateway, "/public/x", [*JSON, *spoofed])
    assert response.status == 200
    (seen,) = recorder.seen
    assert seen.path == "/public/x"
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("X-Forwarded-Host") == TOOLS
    for name in ("X-Real-IP", "Forwarded", "X-Original-URL"):
        assert seen.header(name) is None, name


async def test_a_trusted_proxy_may_say_who_the_client_is_but_not_skip_sign_in(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """With 127.0.0.1 trusted, its X-Forwarded-For and -Proto are honoured (so the test
    above could fail), and still nothing about the peer skips authentication."""
    gateway = await start_gateway(_overrides(recorder.url, trusted_proxies=["127.0.0.1/32"]))
    headers = [*JSON, ("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Proto", "https")]
    response = await _get(gateway, "/public/x", headers)
    assert response.status == 200
    (seen,) = recorder.seen
    assert seen.header("X-Forwarded-For") == "10.9.9.9, 127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "https"
    denied = await _get(gateway, "/admin", [*headers, ("X-Forwarded-Uri", "/public/")])
    assert denied.status == 401
    assert recorder.paths() == ["/public/x"]


async def test_a_proxy_s_own_forwarded_for_line_is_not_lost(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """A trusted proxy that adds its own X-Forwarded-For and -Proto lines (HAProxy does) is
    heard: the client's forged first lines cannot hide what the proxy saw."""
    gateway = await start_gateway(_overrides(recorder.url, trusted_proxies=["127.0.0.1/32"]))
    lines = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "10.9.9.9"),
        ("X-Forwarded-Proto", "http"),
    ]
    response = await _get(gateway, "/public/x", [*JSON, *lines])
    assert response.status == 200
    (seen,) = recorder.seen
    assert seen.header("X-Forwarded-For") == "6.6.6.6, 10.9.9.9, 127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"


async def test_an_untrusted_peer_s_forwarded_for_lines_are_all_dropped(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """Without trust, however many lines the client sends, the chain is the peer alone."""
    lines = [("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-for", "10.9.9.9")]
    response = await _get(gateway, "/public/x", [*JSON, *lines])
    assert response.status == 200
    (seen,) = recorder.seen
    assert [v for k, v in seen.headers if k.lower() == "x-forwarded-for"] == ["127.0.0.1"]


async def test_a_second_host_header_is_refused(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """Two Host lines could be read differently by two parsers; the request is refused."""
    headers = [("Host", TOOLS), ("Host", OPEN), *JSON]
    response = await raw_request(gateway.port, "/admin", headers)
    assert response.status == 400
    assert recorder.seen == []


HEALTH_AGENTS = [
    pytest.param("kube-probe/1.27", id="kubernetes"),
    pytest.param("ELB-HealthChecker/2.0", id="aws elb"),
    pytest.param("GoogleHC/1.0", id="google cloud"),
    pytest.param("Consul Health Check", id="consul"),
    pytest.param("oauth2-proxy healthcheck", id="oauth2-proxy's own"),
]


@pytest.mark.parametrize("agent", HEALTH_AGENTS)
@pytest.mark.parametrize("target", ["/admin", "/", "/healthz", "/ping", "/ready"])
async def test_a_health_check_user_agent_does_not_skip_authentication(
    gateway: GatewayHarness, recorder: RecordingUpstream, agent: str, target: str
) -> None:
    """Probe User-Agents get the same 401 as anybody on protected paths."""
    response = await _get(gateway, target, [*JSON, ("User-Agent", agent)])
    assert response.status == 401
    assert recorder.seen == []


@pytest.mark.parametrize("agent", HEALTH_AGENTS)
async def test_a_health_check_user_agent_gets_the_health_endpoint(
    gateway: GatewayHarness, recorder: RecordingUpstream, agent: str
) -> None:
    """The positive case: the probe's own path answers 200 for the same User-Agent."""
    response = await _get(gateway, "/_gateway/healthz", [*JSON, ("User-Agent", agent)])
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    assert recorder.seen == []


@pytest.mark.parametrize("host", [TOOLS, OPEN, "unknown.example", "127.0.0.1"])
async def test_healthz_answers_on_every_host_and_authenticates_nobody(
    gateway: GatewayHarness, recorder: RecordingUpstream, host: str
) -> None:
    """Health answers 200 with no session, sets no cookie and forwards nothing."""
    response = await _get(
        gateway, "/_gateway/healthz", [*JSON, ("Cookie", "hf_gateway=v1.forged.value")], host=host
    )
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    assert response.all("Set-Cookie") == []
    assert recorder.seen == []


async def test_healthz_says_nothing_about_a_signed_in_user(
    start_gateway: StartGateway, recorder: RecordingUpstream
) -> None:
    """A valid session changes nothing on the health endpoint: no identity, no cookie."""
    gateway = await start_gateway()  # the harness's single-host config, where login works
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    recorder.seen.clear()  # the login flow itself ended on the upstream's "/"
    response = await raw_request(
        gateway.port, "/_gateway/healthz", [("Cookie", f"hf_gateway={cookie}")]
    )
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    assert "alice" not in response.text
    assert response.all("Set-Cookie") == []
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/_gateway/healthz/../admin", 404, id="dot-dot to a sibling of health"),
        pytest.param("/_gateway/healthz/../../admin", 401, id="dot-dot out of the prefix"),
        pytest.param("/_gateway/healthz/%2e%2e/%2e%2e/admin", 401, id="encoded dot-dots"),
        pytest.param("/_gateway/healthz/..;/..;/admin", 401, id="dot-dots with parameters"),
        pytest.param("/_gateway/healthz%2f..%2fadmin", 400, id="encoded slashes"),
        pytest.param("/_gateway/healthz\\..\\admin", 400, id="backslashes"),
        pytest.param("/_gateway/healthz%23/../admin", 400, id="encoded hash"),
        pytest.param("/admin/_gateway/healthz", 401, id="health path under a route"),
        pytest.param("/admin?/_gateway/healthz", 401, id="health path in the query"),
        pytest.param("/_gateway/healthz/admin", 404, id="below health"),
        pytest.param("/_gateway/healthzadmin", 404, id="health without a boundary"),
        pytest.param("/_gateway/HEALTHZ", 404, id="upper case"),
    ],
)
async def test_only_the_health_path_itself_is_health(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str, status: int
) -> None:
    """Paths that merely mention health are judged as what they normalise to."""
    response = await _get(gateway, target, JSON)
    assert response.status == status
    assert recorder.seen == []


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/_gateway/healthz", id="plain"),
        pytest.param("/_gateway/./healthz", id="dot segment"),
        pytest.param("//_gateway//healthz", id="double slashes"),
        pytest.param("/_gateway/healthz?probe=1", id="with a query"),
    ],
)
async def test_the_health_path_is_found_after_normalisation(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str
) -> None:
    """The positive case of the table above: health is matched on the normalised path."""
    response = await _get(gateway, target, JSON)
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    assert recorder.seen == []
