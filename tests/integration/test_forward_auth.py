"""``/_gateway/auth`` (forward-auth) over real HTTP, the way a front proxy asks.

Requests are written byte for byte (raw sockets), as nginx, Traefik or Caddy would send
them: the original request in X-Forwarded-Method/-Proto/-Host/-Uri or
X-Original-Method/-URL, plus the client's own headers (cookie, Authorization, Accept). The
gateway trusts 127.0.0.1 as its proxy, except where a test says otherwise. The upstream
records every request: forward-auth never makes an upstream hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import yaml

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.integration.test_paths import ATTACKS
from tests.integration.test_paths import _routes as path_routes
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import RawResponse, RecordingUpstream, raw_request, recording_upstream

Pair = tuple[str, str]
TRUSTED = {"server": {"trusted_proxies": ["127.0.0.1/32"]}}
ALICE_TOKEN = "hf_alice_demo_read_token"
IDENTITY_HEADERS = (
    "X-Forwarded-User",
    "X-Forwarded-User-Id",
    "X-Forwarded-Email",
    "X-Forwarded-Name",
    "X-Forwarded-Groups",
    "X-Gateway-Assertion",
    "X-Forwarded-Access-Token",
)


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as running:
        yield running


@pytest.fixture
def upstream(recorder: RecordingUpstream) -> str:
    return recorder.url


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> GatewayHarness:
    """The harness's routes (/ signed in, /public public, /writers write in acme, /admin
    acme admins, /open public), 127.0.0.1 trusted as the front proxy."""
    return await start_gateway(TRUSTED)


def forwarded(gateway: GatewayHarness, uri: str, method: str = "GET") -> list[Pair]:
    """What Traefik and Caddy send."""
    return [
        ("X-Forwarded-Method", method),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", f"127.0.0.1:{gateway.port}"),
        ("X-Forwarded-Uri", uri),
    ]


def original(gateway: GatewayHarness, uri: str, method: str = "GET") -> list[Pair]:
    """What nginx (as the guide configures it) and ingress-nginx send."""
    return [
        ("X-Original-Method", method),
        ("X-Original-URL", f"http://127.0.0.1:{gateway.port}{uri}"),
    ]


async def ask(
    gateway: GatewayHarness,
    headers: Sequence[Pair],
    *,
    cookie: str | None = None,
    token: str | None = None,
    accept: dict[str, str] = API,
    query: str = "",
) -> RawResponse:
    sent = [*headers, *accept.items()]
    if cookie is not None:
        sent.append(("Cookie", f"hf_gateway={cookie}"))
    if token is not None:
        sent.append(("Authorization", f"Bearer {token}"))
    return await raw_request(gateway.port, "/_gateway/auth" + query, sent)


async def cookie_of(gateway: GatewayHarness, username: str) -> str:
    async with gateway.browser() as http:
        await gateway.sign_in(http, username)
        return gateway.session_cookie(http)


async def verified(gateway: GatewayHarness, token: str, audience: str) -> dict[str, Any]:
    jwks = (await raw_request(gateway.port, "/_gateway/jwks.json")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["ES256"], audience=audience, issuer=gateway.url
    )
    return claims


def rd_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["rd"][0]


# --------------------------------------------------------------------------- answers


async def test_alice_is_granted_with_every_identity_header_and_a_verifiable_assertion(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """200 with no body and no-store; her identity headers and an assertion for the route
    the original URI names; the access token header present and empty; no upstream hop."""
    cookie = await cookie_of(gateway, "alice")
    recorder.seen.clear()
    response = await ask(gateway, forwarded(gateway, "/api/echo?x=1"), cookie=cookie)
    assert response.status == 200, response.body
    assert response.body == b""
    assert response.header("Cache-Control") == "no-store"
    assert response.all("Set-Cookie") == []
    assert {name: len(response.all(name)) for name in IDENTITY_HEADERS} == dict.fromkeys(
        IDENTITY_HEADERS, 1
    )
    assert response.header("X-Forwarded-User") == "alice"
    assert response.header("X-Forwarded-User-Id") == "3f501019b1460301dacf1e59"
    assert response.header("X-Forwarded-Groups") == "acme,hf-tools"
    assert response.header("X-Forwarded-Email") == "alice@example.com"
    assert response.header("X-Forwarded-Access-Token") == ""
    claims = await verified(gateway, response.header("X-Gateway-Assertion") or "", "tool")
    assert claims["preferred_username"] == "alice"
    assert recorder.seen == []


async def test_the_assertion_audience_is_the_route_of_the_original_uri(
    gateway: GatewayHarness,
) -> None:
    """/writers/... belongs to the writers route: aud = writers (and not tool)."""
    cookie = await cookie_of(gateway, "alice")
    response = await ask(gateway, forwarded(gateway, "/writers/x"), cookie=cookie)
    assert response.status == 200
    token = response.header("X-Gateway-Assertion") or ""
    assert (await verified(gateway, token, "writers"))["aud"] == "writers"
    with pytest.raises(jwt.InvalidAudienceError):
        await verified(gateway, token, "tool")


@pytest.mark.parametrize("style", [forwarded, original], ids=["x-forwarded", "x-original"])
async def test_bob_is_refused_where_the_original_uri_needs_write_and_let_in_elsewhere(
    gateway: GatewayHarness, style: Any
) -> None:
    """The original URI decides: bob (read in acme) gets 403 with the reason on /writers,
    200 with his identity on /; both header styles read the same."""
    cookie = await cookie_of(gateway, "bob")
    refused = await ask(gateway, style(gateway, "/writers/api/echo"), cookie=cookie)
    assert refused.status == 403
    body = refused.json()
    assert body["error"] == "forbidden"
    assert "no_matching_allow" in [r["code"] for r in body["reasons"]]
    assert any("role below write" in d.lower() for d in body["details"])
    assert refused.header("X-Forwarded-User") is None
    assert refused.header("Cache-Control") == "no-store"
    allowed = await ask(gateway, style(gateway, "/api/echo"), cookie=cookie)
    assert allowed.status == 200
    assert allowed.header("X-Forwarded-User") == "bob"


async def test_an_anonymous_api_client_gets_401_with_the_sign_in_url(
    gateway: GatewayHarness,
) -> None:
    """401 JSON (nginx acts only on 2xx/401/403) with the sign-in URL in X-Gateway-Login-Url
    and the body, coming back to the original URI; no Location for a non-browser, even with
    ?redirect=1."""
    for query in ("", "?redirect=1"):
        response = await ask(gateway, forwarded(gateway, "/api/echo?x=1"), query=query)
        assert response.status == 401
        assert response.header("Cache-Control") == "no-store"
        metadata = f"{gateway.url}/.well-known/oauth-protected-resource"  # RFC 9728
        challenge = f'Bearer realm="hf-gateway", resource_metadata="{metadata}"'
        assert response.header("WWW-Authenticate") == challenge
        login = response.header("X-Gateway-Login-Url") or ""
        assert login.startswith(f"{gateway.url}/_gateway/sign_in?")
        assert rd_of(login) == "/api/echo?x=1"
        assert response.json()["login_url"] == login
        assert response.header("Location") is None
        assert response.header("X-Forwarded-User") is None


async def test_an_anonymous_browser_gets_a_location_and_with_redirect_1_a_302(
    gateway: GatewayHarness,
) -> None:
    """A browser navigation: 401 carrying Location (for nginx's error_page), or a 302 to
    the sign-in page with ?redirect=1 (Caddy, Traefik hand it to the browser)."""
    plain = await ask(gateway, forwarded(gateway, "/dash"), accept=BROWSER)
    assert plain.status == 401
    assert plain.header("Location") == plain.header("X-Gateway-Login-Url")
    redirected = await ask(
        gateway, forwarded(gateway, "/dash"), accept=BROWSER, query="?redirect=1"
    )
    assert redirected.status == 302
    assert redirected.header("Cache-Control") == "no-store"
    assert rd_of(redirected.header("Location") or "") == "/dash"
    # The original method counts: a browser's POST is no navigation.
    posted = await ask(
        gateway, forwarded(gateway, "/dash", "POST"), accept=BROWSER, query="?redirect=1"
    )
    assert posted.status == 401


async def test_public_paths_answer_2xx_with_every_identity_header_empty(
    gateway: GatewayHarness,
) -> None:
    """A public path or route is let through with all headers present and empty, even for
    a signed-in caller (as the proxy path sends them), so nothing a client sent survives."""
    cookie = await cookie_of(gateway, "alice")
    for uri, sent in (("/public/x", None), ("/open/y", None), ("/public/x", cookie)):
        response = await ask(gateway, forwarded(gateway, uri), cookie=sent)
        assert response.status == 200, uri
        assert [response.header(name) for name in IDENTITY_HEADERS] == [""] * len(IDENTITY_HEADERS)


async def test_an_hf_bearer_token_is_accepted_as_on_the_proxy_path(
    gateway: GatewayHarness,
) -> None:
    """alice's token lets her in; a token Hugging Face refuses gets 401 invalid_token."""
    allowed = await ask(gateway, forwarded(gateway, "/api/echo"), token=ALICE_TOKEN)
    assert allowed.status == 200
    assert allowed.header("X-Forwarded-User") == "alice"
    refused = await ask(gateway, forwarded(gateway, "/api/echo"), token="hf_not_a_real_token")
    assert refused.status == 401
    assert refused.json()["error"] == "invalid_token"
    assert refused.header("X-Forwarded-User") is None


async def test_pass_access_token_hands_the_token_to_the_front_proxy_only_where_configured(
    start_gateway: StartGateway, upstream: str
) -> None:
    """With pass_access_token on the writers route, its answer carries alice's bearer
    token; the other routes' answers keep the header empty."""
    overrides = {
        **TRUSTED,
        "routes": [
            {"name": "tool", "path": "/", "upstream": upstream, "policy": "authenticated"},
            {
                "name": "writers",
                "path": "/writers",
                "upstream": upstream,
                "policy": "authenticated",
                "pass_access_token": True,
            },
        ],
    }
    gateway = await start_gateway(overrides)
    passed = await ask(gateway, forwarded(gateway, "/writers/x"), token=ALICE_TOKEN)
    assert passed.header("X-Forwarded-Access-Token") == ALICE_TOKEN
    kept = await ask(gateway, forwarded(gateway, "/x"), token=ALICE_TOKEN)
    assert kept.header("X-Forwarded-Access-Token") == ""


async def test_a_session_from_another_site_is_refused_for_unsafe_methods(
    gateway: GatewayHarness,
) -> None:
    """The original method and the browser's Origin count as on the proxy path: a POST
    with alice's session from another site is refused, from our own origin allowed."""
    cookie = await cookie_of(gateway, "alice")
    uri = "/api/echo"
    evil = await ask(
        gateway, [*forwarded(gateway, uri, "POST"), ("Origin", "http://evil.test")], cookie=cookie
    )
    assert evil.status == 403
    assert evil.json()["error"] == "cross_site"
    ours = await ask(
        gateway, [*forwarded(gateway, uri, "POST"), ("Origin", gateway.url)], cookie=cookie
    )
    assert ours.status == 200


# --------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("style", [forwarded, original], ids=["x-forwarded", "x-original"])
async def test_forged_forwarded_headers_from_an_untrusted_peer_are_never_believed(
    start_gateway: StartGateway, gateway: GatewayHarness, style: Any
) -> None:
    """A gateway that trusts no proxy (the default) answers 403 untrusted_proxy whatever
    the headers say, for a public URI and for a signed-in caller; the twin, the trusted
    gateway, answers 200 for the same request."""
    untrusted = await start_gateway()
    cookie = await cookie_of(untrusted, "alice")
    for sent in (None, cookie):
        response = await ask(untrusted, style(untrusted, "/public/x"), cookie=sent)
        assert response.status == 403, response.body
        assert response.json()["error"] == "untrusted_proxy"
        assert response.header("X-Forwarded-User") is None
    assert (await ask(gateway, style(gateway, "/public/x"))).status == 200


POSITIVES = [
    pytest.param("/public/x", 200, id="a public page"),
    pytest.param("/public/", 200, id="the public path itself"),
    pytest.param("/public/a/../b", 200, id="dot-dot staying inside the public path"),
]


@pytest.mark.parametrize(("target", "status"), [*ATTACKS, *POSITIVES])
async def test_forward_auth_reads_every_path_trick_as_the_proxy_path_does(
    start_gateway: StartGateway,
    upstream: str,
    recorder: RecordingUpstream,
    target: str,
    status: int,
) -> None:
    """SECURITY.md §4's corpus as X-Forwarded-Uri: the same answer as when the same target
    is sent to the proxy path (400 refused, 401 protected, 200 public), so ``/public/..;/admin``
    or ``%2F`` tricks cannot differ between forward-auth and proxying."""
    gateway = await start_gateway({**TRUSTED, "routes": path_routes(upstream)})
    proxied = await raw_request(gateway.port, target, list(API.items()))
    asked = await ask(gateway, forwarded(gateway, target))
    assert proxied.status == status
    assert asked.status == status, asked.body
    if status == 200:
        assert asked.header("X-Forwarded-User") == ""
    else:
        assert asked.header("X-Forwarded-User") is None


async def test_a_host_no_route_serves_is_refused(
    start_gateway: StartGateway, upstream: str
) -> None:
    """Hosts route as on the proxy path: an unrouted X-Forwarded-Host (or one hidden in a
    list, or with a path in it) is not let through; the routed host's public path is."""
    tools = "tools.example.test"
    gateway = await start_gateway(
        {
            **TRUSTED,
            "server": {**TRUSTED["server"], "public_url": "http://login.example.test"},
            "session": {"cookie_domain": ".example.test"},
            "routes": [
                {
                    "name": "tools",
                    "host": tools,
                    "path": "/",
                    "upstream": upstream,
                    "policy": "authenticated",
                    "public_paths": ["/public/"],
                },
            ],
        }
    )

    def at(host: str, uri: str = "/public/x") -> list[Pair]:
        return [
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Host", host),
            ("X-Forwarded-Uri", uri),
        ]

    unrouted = await ask(gateway, at("evil.example.test"), token=ALICE_TOKEN)
    assert unrouted.status == 403
    assert unrouted.json()["error"] == "no_route"
    for host in (f"{tools}, evil.example.test", f"{tools}/x", f"user@{tools}", ""):
        assert (await ask(gateway, at(host))).status in (400, 403), host
    assert (await ask(gateway, at(tools))).status == 200
    assert (await ask(gateway, at(f"{tools.upper()}:8443"))).status == 200
    signed_in = await ask(gateway, at(tools, "/x"), token=ALICE_TOKEN)
    assert signed_in.status == 200
    assert signed_in.header("X-Forwarded-User") == "alice"
    # The sign-in comes back to the tool's host, not the login host.
    anonymous = await ask(gateway, at(tools, "/x?y=1"))
    assert rd_of(anonymous.header("X-Gateway-Login-Url") or "") == f"http://{tools}/x?y=1"


CONFLICTS = [
    pytest.param(
        [("X-Original-URL", "http://h/admin/x"), ("X-Forwarded-Uri", "/public/x")],
        id="original URL and forwarded URI disagree",
    ),
    pytest.param(
        [("X-Original-URL", "http://h/public/x"), ("X-Forwarded-Host", "other")],
        id="original URL and forwarded host disagree",
    ),
    pytest.param(
        [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Uri", "/admin")],
        id="forwarded URI twice",
    ),
    pytest.param(
        [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Host", "h"), ("X-Forwarded-Host", "h")],
        id="forwarded host twice",
    ),
    pytest.param([("X-Forwarded-Uri", "/public/x")], id="forwarded URI without a host"),
    pytest.param([("X-Forwarded-Host", "h")], id="no URI at all"),
    pytest.param([("X-Original-URL", "/public/x")], id="original URL that is no absolute URL"),
    pytest.param(
        [("X-Original-URL", "javascript://h/public/x")], id="original URL of another scheme"
    ),
    pytest.param(
        [("X-Original-URL", "http://h/admin#/public/x")], id="original URL with a fragment"
    ),
    pytest.param(
        [("X-Forwarded-Uri", "/public/x"), ("X-Forwarded-Host", "h"), ("X-Forwarded-Proto", "ftp")],
        id="forwarded proto neither http nor https",
    ),
]


@pytest.mark.parametrize("extra", CONFLICTS)
async def test_an_original_request_that_reads_two_ways_is_refused(
    gateway: GatewayHarness, extra: list[Pair]
) -> None:
    """nginx passes every client header to auth_request: a forged header beside the one the
    proxy set makes the request ambiguous, and ambiguity is refused (400), never guessed."""
    response = await ask(gateway, [("X-Forwarded-Method", "GET"), *extra])
    assert response.status == 400, response.body
    assert response.header("X-Forwarded-User") is None


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(None, id="no method"),
        pytest.param("GET, POST", id="a list of methods"),
        pytest.param("GET /x", id="a method with a space"),
    ],
)
async def test_the_original_method_must_be_sent_once_and_agree(
    gateway: GatewayHarness, method: str | None
) -> None:
    """Without a readable method a method rule could be judged for the wrong one: 400. The
    twin: the same URI with GET, and with two method headers that agree, is let through."""
    uri = [("X-Forwarded-Host", f"127.0.0.1:{gateway.port}"), ("X-Forwarded-Uri", "/public/")]
    sent = [("X-Forwarded-Method", method)] if method is not None else []
    assert (await ask(gateway, [*sent, *uri])).status == 400
    assert (await ask(gateway, [("X-Forwarded-Method", "GET"), *uri])).status == 200
    both = [("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET"), *uri]
    assert (await ask(gateway, both)).status == 200
    clash = [("X-Forwarded-Method", "GET"), ("X-Original-Method", "POST"), *uri]
    assert (await ask(gateway, clash)).status == 400


async def test_line_breaks_in_the_original_uri_never_reach_a_header(
    gateway: GatewayHarness,
) -> None:
    """Encoded CR/LF in the original URI stay encoded in the sign-in URL headers; a raw
    line break ends the header line, so what follows is a header of its own, judged as
    one (here a second X-Forwarded-Uri: refused)."""
    uri = "/api/echo%0d%0aX-Injected:%20yes?a=%0d%0aSet-Cookie:%20x=1"
    response = await ask(gateway, forwarded(gateway, uri))
    assert response.status == 401
    assert response.header("X-Injected") is None
    assert response.all("Set-Cookie") == []
    login = response.header("X-Gateway-Login-Url") or ""
    assert "\r" not in login and "\n" not in login
    assert rd_of(login) == uri.replace("%0d%0a", "%0D%0A", 1)  # the path's escapes normalised
    split = await ask(gateway, forwarded(gateway, "/public/x\r\nX-Forwarded-Uri: /admin"))
    assert split.status == 400


@pytest.fixture
async def hostile_hf(tmp_path: Path) -> AsyncIterator[FakeHF]:
    """The demo world plus mallory, whose profile fields carry header line breaks."""
    text = resources.files("gateway.devtools").joinpath("demo_users.yaml").read_text("utf-8")
    world = yaml.safe_load(text)
    world["users"].append(
        {
            "sub": "0123456789abcdef01234567",
            "username": "mallory",
            "name": "Mallory\r\nX-Forwarded-User: admin",
            "email": "mallory@example.com\r\nX-Forwarded-Groups: acme",
        }
    )
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(world))
    fake = FakeHF.from_yaml(path)
    async with fake.serve():
        yield fake


async def test_identity_values_with_line_breaks_stay_inside_their_header(
    hostile_hf: FakeHF, upstream: str
) -> None:
    """mallory's name and email carry CR/LF and a header after them: the answer has one
    X-Forwarded-User (hers), her name percent-encoded, and no forged groups; alice, the
    twin, reads plainly."""
    gateway = GatewayHarness(hostile_hf, upstream, overrides=TRUSTED)
    await gateway.start()
    try:
        mallory = await ask(
            gateway, forwarded(gateway, "/x"), cookie=await cookie_of(gateway, "mallory")
        )
        assert mallory.status == 200
        assert mallory.all("X-Forwarded-User") == ["mallory"]
        assert mallory.all("X-Forwarded-Groups") == [""]
        assert mallory.header("X-Forwarded-Name") == "Mallory%0D%0AX-Forwarded-User: admin"
        alice = await ask(
            gateway, forwarded(gateway, "/x"), cookie=await cookie_of(gateway, "alice")
        )
        assert alice.header("X-Forwarded-Name") == "Alice Liddell"
    finally:
        await gateway.stop()


async def test_the_gateway_s_own_paths_are_not_judged_as_a_tool(
    gateway: GatewayHarness,
) -> None:
    """An original URI under /_gateway/ (also spelled with %5F) is no tool's: 403, so a
    front proxy never sends it to the upstream; the twin /api is judged (401)."""
    for uri in ("/_gateway/userinfo", "/%5Fgateway/userinfo", "/x/../_gateway/auth"):
        response = await ask(gateway, forwarded(gateway, uri), cookie=None)
        assert response.status == 403, uri
        assert response.json()["error"] == "no_route"
    assert (await ask(gateway, forwarded(gateway, "/api"))).status == 401


async def test_a_session_cookie_opens_only_what_its_user_may_open_on_the_asked_route(
    gateway: GatewayHarness,
) -> None:
    """A session is not bound to the route it was made on: bob's cookie, presented for the
    admin route's URI, is judged for that route (403), and for his own (200)."""
    cookie = await cookie_of(gateway, "bob")
    assert (await ask(gateway, forwarded(gateway, "/admin/x"), cookie=cookie)).status == 403
    assert (await ask(gateway, forwarded(gateway, "/x"), cookie=cookie)).status == 200
    forged = (
        "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    )
    assert (await ask(gateway, forwarded(gateway, "/x"), cookie=forged)).status == 401


async def test_the_request_ingress_nginx_sends_is_judged(gateway: GatewayHarness) -> None:
    """The auth request ingress-nginx's template builds for ``auth-url`` (X-Original-URL from
    $http_host, X-Original-Method, X-Auth-Request-Redirect, X-Sent-From, X-Real-IP, an
    emptied X-Forwarded-Proto): alice in, bob out of /writers, anonymous 401; and the
    ``auth-signin`` page keeps the absolute rd the controller appends."""
    here = f"127.0.0.1:{gateway.port}"

    def ingress(uri: str) -> list[Pair]:
        return [
            ("X-Original-URL", f"http://{here}{uri}"),
            ("X-Original-Method", "GET"),
            ("X-Sent-From", "nginx-ingress-controller"),
            ("X-Real-IP", "10.1.2.3"),
            ("X-Forwarded-For", "10.1.2.3"),
            ("X-Auth-Request-Redirect", uri),
            ("X-Forwarded-Proto", ""),
        ]

    alice = await ask(gateway, ingress("/x"), cookie=await cookie_of(gateway, "alice"))
    assert alice.status == 200
    assert alice.header("X-Forwarded-User") == "alice"
    bob = await ask(gateway, ingress("/writers/x"), cookie=await cookie_of(gateway, "bob"))
    assert bob.status == 403
    assert (await ask(gateway, ingress("/x"))).status == 401
    sign_in = await raw_request(
        gateway.port, f"/_gateway/sign_in?rd=http%3A%2F%2F{here}%2Fx%3Fy%3D1", list(BROWSER.items())
    )
    assert sign_in.status == 200
    assert f"rd=http%3A%2F%2F{here.replace(':', '%3A')}%2Fx%3Fy%3D1" in sign_in.text


@pytest.mark.parametrize(
    ("uri", "extra", "accept", "status"),
    [
        pytest.param("/public/x", [], API, 200, id="public"),
        pytest.param("/x", [], API, 401, id="unauthenticated"),
        pytest.param("/x", [], BROWSER, 401, id="unauthenticated browser"),
        pytest.param("/x", [("Authorization", f"Bearer {ALICE_TOKEN}")], API, 200, id="allowed"),
        pytest.param(
            "/x", [("Authorization", "Bearer hf_unknown_token")], API, 401, id="bad token"
        ),
        pytest.param("/x%2F", [], API, 400, id="refused path"),
        pytest.param("/_gateway/x", [], BROWSER, 403, id="no route, as a page"),
    ],
)
async def test_no_answer_may_be_cached(
    gateway: GatewayHarness, uri: str, extra: list[Pair], accept: dict[str, str], status: int
) -> None:
    """Every kind of answer is Cache-Control: no-store, so no cache between the front proxy
    and the gateway can hand one user's decision (or identity headers) to another."""
    response = await ask(gateway, [*forwarded(gateway, uri), *extra], accept=accept)
    assert response.status == status, response.body
    assert response.all("Cache-Control") == ["no-store"]
