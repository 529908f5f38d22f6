"""Forged identity, forwarding and cookie headers never reach an upstream.

SECURITY.md §3 (identity-header smuggling), §10 (hop-by-hop headers) and §11 (cookies),
over real HTTP: the requests are written byte for byte on a raw socket so that case,
underscores and duplicated lines arrive at the gateway exactly as an attacker sends them,
and the echo upstream reports what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from multidict import CIMultiDict

from tests.integration.conftest import StartGateway
from tests.support.harness import API, GatewayHarness, base_raw_config

ALICE = {
    "x-forwarded-user": ["alice"],
    "x-forwarded-user-id": ["3f501019b1460301dacf1e59"],
    "x-forwarded-email": ["alice@example.com"],
    "x-forwarded-name": ["Alice Liddell"],
    "x-forwarded-groups": ["acme,hf-tools"],
    "x-gateway-assertion": ["<jwt for alice>"],
    "x-forwarded-access-token": [""],
}
"""What the upstream must see for alice in the gateway's own identity headers."""

ANONYMOUS = {name: [""] for name in ALICE}
"""On public paths every identity header is present and empty."""

FORWARDING_NEVER_SET = ("forwarded", "x-real-ip", "x-original-url", "x-original-uri")
"""Forwarding headers the gateway strips and does not set itself."""

ALL_FORGED = (
    "X-Forwarded-User: evil\r\n"
    "X_Forwarded_User: evil\r\n"
    "X-Forwarded-User-Id: evil\r\n"
    "X-Forwarded-Email: evil@evil.example\r\n"
    "X-Forwarded-Name: evil\r\n"
    "X-Forwarded-Groups: evil\r\n"
    "X-Gateway-Assertion: evil.evil.evil\r\n"
    "X-Forwarded-Access-Token: hf_evil\r\n"
    "X-Forwarded-For: 6.6.6.6\r\n"
    "X-Forwarded-Proto: evil\r\n"
    "X-Forwarded-Host: evil.example\r\n"
    "Forwarded: for=6.6.6.6;proto=https;host=evil.example\r\n"
    "X-Real-IP: 6.6.6.6\r\n"
    "X-Original-URL: /evil\r\n"
)


@dataclass
class RawResponse:
    """An HTTP/1.1 response as it came off the socket."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body += data[:size]
        data = data[size + 2 :]


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name, value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(int(status_line.split()[1]), headers, body)


async def raw_exchange(harness: GatewayHarness, request: str) -> RawResponse:
    """Write ``request`` verbatim on a new connection and read the answer until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return parse_response(data)


def get(harness: GatewayHarness, target: str, extra: str = "", cookie: str | None = None) -> str:
    """A raw GET with ``extra`` header lines (each ending in CRLF) and Connection: close."""
    cookie_line = f"Cookie: hf_gateway={cookie}\r\n" if cookie else ""
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
        f"Accept: application/json\r\n{cookie_line}{extra}Connection: close\r\n\r\n"
    )


async def signed_in_cookie(harness: GatewayHarness) -> str:
    """The session cookie value of a fresh sign-in as alice."""
    async with harness.browser() as http:
        await harness.sign_in(http, "alice")
        return harness.session_cookie(http)


def upstream_headers(response: RawResponse) -> list[tuple[str, str]]:
    assert response.status == 200, response.body[:300]
    return [(k, v) for k, v in response.json()["headers"]]


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")


async def assertion_username(harness: GatewayHarness, token: str) -> str:
    """Verify an assertion JWT with the gateway's JWKS and return its username."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{harness.url}/_gateway/jwks.json") as r:
            jwks = await r.json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="tool", issuer=harness.url)
    return str(claims["preferred_username"])


async def identity_view(
    harness: GatewayHarness, headers: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """Every line the upstream got for each owned identity header, by canonical name.

    A non-empty assertion is verified and shown as ``<jwt for USER>``.
    """
    view: dict[str, list[str]] = {name: [] for name in ALICE}
    for name, value in headers:
        key = canonical(name)
        if key not in view:
            continue
        if key == "x-gateway-assertion" and value:
            value = f"<jwt for {await assertion_username(harness, value)}>"
        view[key].append(value)
    return view


def forwarding_view(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    names = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", *FORWARDING_NEVER_SET)
    view: dict[str, list[str]] = {name: [] for name in names}
    for name, value in headers:
        if canonical(name) in view:
            view[canonical(name)].append(value)
    return view


def expected_forwarding(harness: GatewayHarness, chain: str = "127.0.0.1") -> dict[str, list[str]]:
    return {
        "x-forwarded-for": [chain],
        "x-forwarded-proto": ["http"],
        "x-forwarded-host": [f"127.0.0.1:{harness.port}"],
        **{name: [] for name in FORWARDING_NEVER_SET},
    }


FORGED_VARIANTS = [
    pytest.param("X-Forwarded-User: evil\r\n", id="canonical-case"),
    pytest.param("x-forwarded-user: evil\r\n", id="lower-case"),
    pytest.param("X_Forwarded_User: evil\r\n", id="underscores"),
    pytest.param("X-FORWARDED_USER: evil\r\n", id="upper-case-mixed-separators"),
    pytest.param("x_forwarded_user:evil\r\n", id="no-space-after-colon"),
    pytest.param("X-Forwarded-User: evil\r\nX-Forwarded-User: evil2\r\n", id="duplicated-line"),
    pytest.param("X_Forwarded_User: evil\r\nx-forwarded-user: evil2\r\n", id="duplicated-mixed"),
    pytest.param("X-Forwarded-User-Id: evil\r\n", id="user-id"),
    pytest.param("X-Forwarded-Name: evil\r\n", id="name"),
    pytest.param("X-Forwarded-Email: evil@evil.example\r\n", id="email"),
    pytest.param("X_Forwarded_Email: evil@evil.example\r\n", id="email-underscores"),
    pytest.param("X-Forwarded-Groups: evil-admins\r\n", id="groups"),
    pytest.param("X-Forwarded-Groups: acme\r\nX-Forwarded-Groups: evil\r\n", id="groups-twice"),
    pytest.param("X-Gateway-Assertion: evil.evil.evil\r\n", id="assertion"),
    pytest.param("x_gateway_assertion: evil.evil.evil\r\n", id="assertion-underscores"),
    pytest.param("X-Forwarded-Access-Token: hf_evil\r\n", id="access-token"),
    pytest.param("X-Forwarded-Access_Token: hf_evil\r\n", id="access-token-underscore"),
    pytest.param("X-Forwarded-For: 6.6.6.6\r\n", id="forwarded-for"),
    pytest.param("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n", id="forwarded-for-2"),
    pytest.param("X-Forwarded-Proto: https\r\n", id="forwarded-proto"),
    pytest.param("X-Forwarded-Host: evil.example\r\n", id="forwarded-host"),
    pytest.param("X_Forwarded_Host: evil.example\r\n", id="forwarded-host-underscores"),
    pytest.param("Forwarded: for=6.6.6.6;proto=https;host=evil.example\r\n", id="forwarded"),
    pytest.param("X-Real-IP: 6.6.6.6\r\n", id="real-ip"),
    pytest.param("X-Original-URL: /evil\r\n", id="original-url"),
    pytest.param("X-Original-URI: /evil\r\n", id="original-uri"),
    pytest.param(ALL_FORGED, id="all-at-once"),
]


@pytest.mark.parametrize("forged", FORGED_VARIANTS)
async def test_forged_header_never_reaches_the_upstream(
    gateway: GatewayHarness, forged: str
) -> None:
    """The upstream sees exactly one line of each gateway header, with alice's values."""
    cookie = await signed_in_cookie(gateway)
    response = await raw_exchange(
        gateway, get(gateway, "/api/echo", forged + "X-Control: passes\r\n", cookie)
    )
    headers = upstream_headers(response)
    assert await identity_view(gateway, headers) == ALICE
    assert forwarding_view(headers) == expected_forwarding(gateway)
    assert ("X-Control", "passes") in headers
    assert not [(k, v) for k, v in headers if "evil" in v or "6.6.6.6" in v]


FOREIGN_FAMILIES = [
    pytest.param("Remote-User: evil\r\n", id="authelia-user"),
    pytest.param("Remote-Groups: evil\r\n", id="authelia-groups"),
    pytest.param("Remote-Email: evil@evil.example\r\n", id="authelia-email"),
    pytest.param("Remote-Name: evil\r\n", id="authelia-name"),
    pytest.param("remote_groups: evil\r\n", id="authelia-underscores"),
    pytest.param("X-Auth-Request-Email: evil\r\n", id="oauth2-proxy-email"),
    pytest.param("X-Auth-Request-Groups: evil\r\n", id="oauth2-proxy-groups"),
    pytest.param("x_auth_request_user: evil\r\n", id="oauth2-proxy-underscores"),
    pytest.param("X-Pomerium-Claim-Email: evil\r\n", id="pomerium-claim"),
    pytest.param("X-Pomerium-Jwt-Assertion: evil\r\n", id="pomerium-jwt"),
    pytest.param("X-Vouch-User: evil\r\n", id="vouch-user"),
    pytest.param("X-Vouch-IdP-Claims-Groups: evil\r\n", id="vouch-claims"),
    pytest.param("X-authentik-username: evil\r\n", id="authentik"),
    pytest.param("X-WEBAUTH-USER: evil\r\n", id="grafana-auth-proxy"),
    pytest.param("X-Amzn-Oidc-Identity: evil\r\n", id="aws-alb"),
    pytest.param("Cf-Access-Authenticated-User-Email: evil\r\n", id="cloudflare-access"),
    pytest.param("X-Goog-Authenticated-User-Email: evil\r\n", id="google-iap"),
    pytest.param("X-MS-CLIENT-PRINCIPAL-NAME: evil\r\n", id="azure-easyauth"),
    pytest.param("X-Forwarded-Preferred-Username: evil\r\n", id="preferred-username"),
    pytest.param("X-Corp-User-Id: evil\r\nX-Tenant: evil\r\n", id="configured-extras"),
]


@pytest.mark.parametrize("forged", FOREIGN_FAMILIES)
async def test_identity_headers_of_other_gateways_never_reach_the_upstream(
    start_gateway: StartGateway, forged: str
) -> None:
    """Headers other gateways use for identity (and the configured strip_headers) are
    removed in any spelling, while headers that merely look alike pass."""
    gateway = await start_gateway({"identity": {"strip_headers": ["X-Corp-User-*", "X-Tenant"]}})
    cookie = await signed_in_cookie(gateway)
    lookalikes = "Remoteness: passes\r\nX-Corp-Team: passes\r\nX-Tenants: passes\r\n"
    response = await raw_exchange(gateway, get(gateway, "/api/echo", forged + lookalikes, cookie))
    headers = upstream_headers(response)
    assert not [(k, v) for k, v in headers if "evil" in v]
    for name in ("Remoteness", "X-Corp-Team", "X-Tenants"):
        assert (name, "passes") in headers


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param("X-Forwarded-User : evil\r\n", id="space-before-colon"),
        pytest.param("X-Forwarded-User\t: evil\r\n", id="tab-before-colon"),
        pytest.param("X-Control: a\r\n X-Forwarded-User: evil\r\n", id="obs-fold"),
        pytest.param("X-Forwarded-User\x00: evil\r\n", id="nul-in-name"),
        pytest.param("X-Forwarded-User: evil\n", id="bare-lf"),
        pytest.param("X-Forwarded-User: evil\rX-Control: a\r\n", id="bare-cr"),
        pytest.param("X-Forwarded-Us\xe9r: evil\r\n", id="non-ascii-name"),
    ],
)
async def test_malformed_header_lines_are_rejected(gateway: GatewayHarness, malformed: str) -> None:
    """A header line that a lenient parser could read as an owned header gets 400."""
    cookie = await signed_in_cookie(gateway)
    response = await raw_exchange(gateway, get(gateway, "/api/echo", malformed, cookie))
    assert response.status == 400
    fine = await raw_exchange(gateway, get(gateway, "/api/echo", "X-Control: a\r\n", cookie))
    assert ("X-Forwarded-User", "alice") in upstream_headers(fine)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/api/echo/public", id="public-path"),
        pytest.param("/pub/api/echo", id="public-route"),
    ],
)
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
async def test_public_requests_carry_empty_identity_headers(
    start_gateway: StartGateway, upstream: str, target: str, signed_in: bool
) -> None:
    """On a public path or route every identity header is present, empty, and unforgeable."""
    routes = base_raw_config(0, "http://unused", upstream)["routes"]
    routes[0]["public_paths"] = ["/public", "/api/echo/public"]
    public_route = {"name": "pub", "path": "/pub", "upstream": upstream, "policy": "public"}
    harness = await start_gateway({"routes": [{**public_route, "strip_prefix": True}, *routes]})
    cookie = await signed_in_cookie(harness) if signed_in else None
    response = await raw_exchange(harness, get(harness, target, ALL_FORGED, cookie))
    headers = upstream_headers(response)
    assert await identity_view(harness, headers) == ANONYMOUS
    assert forwarding_view(headers) == expected_forwarding(harness)
    assert not [(k, v) for k, v in headers if "evil" in v or "6.6.6.6" in v]


async def test_the_real_access_token_replaces_a_forged_one(
    start_gateway: StartGateway, upstream: str
) -> None:
    """With pass_access_token the upstream gets alice's own token, never the client's."""
    harness = await start_gateway({"identity": {"pass_access_token": True}})
    cookie = await signed_in_cookie(harness)
    forged = "X-Forwarded-Access-Token: hf_oauth_evil\r\nx_forwarded_access_token: hf_evil\r\n"
    headers = upstream_headers(
        await raw_exchange(harness, get(harness, "/api/echo", forged, cookie))
    )
    tokens = [v for k, v in headers if canonical(k) == "x-forwarded-access-token"]
    assert len(tokens) == 1 and tokens[0].startswith("hf_oauth_") and "evil" not in tokens[0]
    async with aiohttp.ClientSession() as http:
        whoami = f"{harness.fake.issuer}/api/whoami-v2"
        async with http.get(whoami, headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
            assert r.status == 200
            assert (await r.json())["name"] == "alice"


@pytest.mark.parametrize(
    ("cookie_lines", "expected"),
    [
        pytest.param(
            "Cookie: theme=dark; hf_gateway={session}; hf_gateway_login=forged; lang=en\r\n",
            ["theme=dark; lang=en"],
            id="mixed-in-one-line",
        ),
        pytest.param(
            "Cookie: hf_gateway={session}\r\nCookie: hf_gateway_login=forged;theme=dark\r\n",
            ["theme=dark"],
            id="spread-over-two-lines",
        ),
        pytest.param(
            "Cookie: hf_gateway={session}; hf_gateway_login=x\r\n", [], id="only-gateway-cookies"
        ),
    ],
)
async def test_gateway_cookies_are_removed_from_the_upstream_request(
    gateway: GatewayHarness, cookie_lines: str, expected: list[str]
) -> None:
    """The session and login cookies are used by the gateway and never forwarded."""
    cookie = await signed_in_cookie(gateway)
    request = get(gateway, "/api/echo", cookie_lines.format(session=cookie))
    headers = upstream_headers(await raw_exchange(gateway, request))
    assert ("X-Forwarded-User", "alice") in headers
    assert [v for k, v in headers if k.lower() == "cookie"] == expected
    assert not [v for _, v in headers if cookie in v or "hf_gateway" in v]


async def test_upstream_cannot_set_the_gateway_cookies(gateway: GatewayHarness) -> None:
    """Set-Cookie for the gateway's cookie names is dropped; other cookies reach the client."""
    set_cookies = [
        "hf_gateway=evil; Path=/",
        "theme=light; Path=/",
        "hf_gateway_login=evil; Path=/",
        " hf_gateway =evil2; Path=/",
        "lang=en",
    ]
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        session = gateway.session_cookie(http)
        params = [("cookie", c) for c in set_cookies]
        async with http.get(f"{gateway.url}/api/set-cookie", params=params, headers=API) as r:
            assert r.status == 200
            assert r.headers.getall("Set-Cookie") == ["theme=light; Path=/", "lang=en"]
        assert gateway.session_cookie(http) == session
        async with http.get(f"{gateway.url}/api/echo", headers=API) as r:
            headers = (await r.json())["headers"]
        assert ["X-Forwarded-User", "alice"] in headers


@pytest.mark.parametrize(
    ("trusted", "incoming", "chain", "proto"),
    [
        pytest.param([], "", "127.0.0.1", "http", id="untrusted-no-header"),
        pytest.param(
            [],
            "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n",
            "127.0.0.1",
            "http",
            id="untrusted-replaced",
        ),
        pytest.param(["127.0.0.1/32"], "", "127.0.0.1", "http", id="trusted-no-header"),
        pytest.param(
            ["127.0.0.1/32"],
            "X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\n",
            "203.0.113.7, 10.0.0.2, 127.0.0.1",
            "https",
            id="trusted-extended",
        ),
        pytest.param(
            ["127.0.0.1/32"],
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7\r\n",
            "6.6.6.6, 203.0.113.7, 127.0.0.1",
            "http",
            id="trusted-two-lines",
        ),
        pytest.param(
            ["127.0.0.1/32"],
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n",
            "203.0.113.7, 127.0.0.1",
            "http",
            id="trusted-proxy-appended-its-scheme",
        ),
        pytest.param(
            ["10.0.0.0/8"],
            "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n",
            "127.0.0.1",
            "http",
            id="other-network-trusted",
        ),
    ],
)
async def test_forwarded_for_is_extended_only_for_trusted_proxies(
    start_gateway: StartGateway, trusted: list[str], incoming: str, chain: str, proto: str
) -> None:
    """A trusted peer's chain is extended with its address and its own (rightmost) scheme
    is believed; anyone else's chain and scheme are replaced by the connection's."""
    harness = await start_gateway({"server": {"trusted_proxies": trusted}})
    cookie = await signed_in_cookie(harness)
    headers = upstream_headers(
        await raw_exchange(harness, get(harness, "/api/echo", incoming, cookie))
    )
    view = forwarding_view(headers)
    assert view["x-forwarded-for"] == [chain]
    assert view["x-forwarded-proto"] == [proto]
    assert ("X-Forwarded-User", "alice") in headers


async def test_request_hop_by_hop_headers_are_not_forwarded(gateway: GatewayHarness) -> None:
    """Connection, the headers it lists, Keep-Alive, TE, Trailer, Proxy-* stay at the gateway."""
    cookie = await signed_in_cookie(gateway)
    hop = (
        "X-Secret-Hop: listed\r\n"
        "Keep-Alive: timeout=300\r\n"
        "TE: trailers\r\n"
        "Trailer: X-Checksum\r\n"
        "Proxy-Authorization: Basic ZXZpbDpldmls\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "X-End-To-End: kept\r\n"
    )
    request = get(gateway, "/api/echo", hop, cookie).replace(
        "Connection: close", "Connection: close, X-Secret-Hop"
    )
    headers = upstream_headers(await raw_exchange(gateway, request))
    names = {k.lower() for k, _ in headers}
    assert ("X-End-To-End", "kept") in headers
    assert ("X-Forwarded-User", "alice") in headers
    dropped = {"x-secret-hop", "keep-alive", "te", "trailer", "proxy-authorization"}
    assert not names & (dropped | {"proxy-connection"})
    assert not [v for k, v in headers if k.lower() == "connection" and "secret" in v.lower()]


async def test_response_hop_by_hop_headers_are_not_returned(gateway: GatewayHarness) -> None:
    """The upstream's hop-by-hop headers, and those its Connection lists, stop at the gateway."""
    cookie = await signed_in_cookie(gateway)
    response = await raw_exchange(gateway, get(gateway, "/api/hop-headers", cookie=cookie))
    assert response.status == 200
    assert response.body == b"hop"
    assert response.headers.getall("X-End-To-End") == ["kept"]
    for name in ("X-Hop-Listed", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection"):
        assert name not in response.headers
    for name in ("Trailer", "Upgrade"):
        assert name not in response.headers
    assert "x-hop-listed" not in response.headers.get("Connection", "").lower()
