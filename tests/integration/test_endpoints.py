"""The gateway's own endpoints and answers over real HTTP (DESIGN.md §4a and §5).

Health, readiness, the JWKS, static files, the sign-in page, 404/405, and the answer an
unauthenticated or forbidden caller gets: a redirect or page for browsers, JSON for
everyone else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from gateway.web import pages
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import raw_request
from tests.support.redis_server import free_port

WS_UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


class PageParser(HTMLParser):
    """The parts of a gateway page the tests look at: links, forms, list items."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.forms: list[dict[str, str]] = []  # method, action, button text
        self.items: list[str] = []
        self.tags: set[str] = set()
        self.style_attributes = 0
        self._open: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.style_attributes += "style" in attributes
        if tag == "a":
            self.links.append((attributes.get("href", ""), ""))
        elif tag == "form":
            self.forms.append(
                {"method": attributes.get("method", "").lower(), "action": attributes["action"]}
            )
        if tag in ("a", "li", "button"):
            self._open.append(tag)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1] != tag:
            return
        self._open.pop()
        text = " ".join("".join(self._text).split())
        if tag == "a":
            self.links[-1] = (self.links[-1][0], text)
        elif tag == "li":
            self.items.append(text)
        elif tag == "button" and self.forms:
            self.forms[-1]["button"] = text

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def assert_strict_csp(headers: Any) -> None:
    """The page policy forbids inline script and style and framing."""
    csp = headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives  # so scripts fall back to 'none'
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --------------------------------------------------------------------------- health


async def test_healthz_answers_200_json(gateway: GatewayHarness) -> None:
    """Liveness is a tiny JSON document that is never cached."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/healthz") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert r.headers["Cache-Control"] == "no-store"
            assert await r.json() == {"status": "ok"}
        async with http.head(f"{gateway.url}/_gateway/healthz") as r:
            assert r.status == 200


async def test_readyz_answers_200_with_its_checks_when_ready(gateway: GatewayHarness) -> None:
    """Ready: the store answers and the provider's metadata has loaded."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/readyz") as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            assert await r.json() == {
                "status": "ready",
                "checks": {"store": "ok", "provider": "ok"},
            }


class UnreadyHarness(GatewayHarness):
    """A harness that does not wait for readiness (which will never come)."""

    async def wait_ready(self) -> None:
        return None


@pytest.mark.parametrize(
    ("overrides", "checks"),
    [
        pytest.param(
            {"provider": {"issuer": "http://127.0.0.1:CLOSED"}},
            {"store": "ok", "provider": "metadata not loaded"},
            id="provider metadata not loaded",
        ),
        pytest.param(
            {"session": {"store": "redis", "redis_url": "redis://127.0.0.1:CLOSED/0"}},
            {"store": "unreachable", "provider": "ok"},
            id="store unreachable",
        ),
    ],
)
async def test_readyz_answers_503_when_a_dependency_is_missing(
    gateway: GatewayHarness, upstream: str, overrides: dict[str, Any], checks: dict[str, str]
) -> None:
    """Readiness names the failing check; liveness stays 200 (the process is up).

    ``gateway`` is the ready counterpart, started first so the fake provider has loaded.
    """
    closed = str(free_port())
    overrides = json.loads(json.dumps(overrides).replace("CLOSED", closed))
    harness = UnreadyHarness(gateway.fake, upstream, overrides=overrides)
    await harness.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{harness.url}/_gateway/readyz") as r:
                assert r.status == 503
                assert await r.json() == {"status": "not ready", "checks": checks}
            async with http.get(f"{harness.url}/_gateway/healthz") as r:
                assert r.status == 200
    finally:
        await harness.stop()


# --------------------------------------------------------------------------- jwks


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3.1 written out by hand: required members in lexical order, no spaces."""
    canonical = f'{{"crv":"{jwk["crv"]}","kty":"{jwk["kty"]}","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def test_jwks_publishes_the_public_signing_key(gateway: GatewayHarness) -> None:
    """One ES256 key on P-256, its kid the RFC 7638 thumbprint, no private member."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/jwks.json") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            jwks = await r.json()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["alg"] == "ES256"
    assert key["use"] == "sig"
    assert "d" not in key
    assert key["kid"] == _thumbprint(key)


# --------------------------------------------------------------------------- static files


@pytest.mark.parametrize(("name", "content_type"), sorted(pages.STATIC_FILES.items()))
async def test_each_static_file_is_served_with_its_type(
    gateway: GatewayHarness, name: str, content_type: str
) -> None:
    """Static files come back byte for byte with their type and nosniff."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/static/{name}") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == content_type
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert await r.read() == (pages.STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/_gateway/static/missing.css", id="unknown file"),
        pytest.param("/_gateway/static/", id="the folder"),
        pytest.param("/_gateway/static/../templates/layout.html", id="a template"),
        pytest.param("/_gateway/static/%2e%2e/templates/sign_in.html", id="encoded dot-dot"),
        pytest.param("/_gateway/static/GATEWAY.CSS", id="upper case"),
        pytest.param("/_gateway/x", id="unknown gateway page"),
        pytest.param("/_gateway", id="the prefix itself"),
        pytest.param("/_gateway/", id="the prefix with a slash"),
        pytest.param("/_gateway/auth/../x", id="unknown after normalisation"),
    ],
)
async def test_unknown_gateway_paths_are_404(gateway: GatewayHarness, target: str) -> None:
    """Only listed files and endpoints exist under /_gateway/; nothing is proxied there."""
    response = await raw_request(gateway.port, target, list(API.items()))
    assert response.status == 404
    assert response.json()["error"] == "not_found"


async def test_an_unknown_gateway_page_is_an_html_404_for_browsers(gateway: GatewayHarness) -> None:
    """Browsers get the 404 as a page under the strict policy."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/nothing", headers=BROWSER) as r:
            assert r.status == 404
            assert r.content_type == "text/html"
            assert_strict_csp(r.headers)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("POST", "/_gateway/healthz", "GET, HEAD", id="POST healthz"),
        pytest.param("DELETE", "/_gateway/readyz", "GET, HEAD", id="DELETE readyz"),
        pytest.param("PUT", "/_gateway/jwks.json", "GET, HEAD", id="PUT jwks"),
        pytest.param("POST", "/_gateway/sign_in", "GET, HEAD", id="POST sign_in"),
        pytest.param("POST", "/_gateway/callback", "GET, HEAD", id="POST callback"),
        pytest.param("DELETE", "/_gateway/logout", "GET, HEAD, POST", id="DELETE logout"),
        pytest.param("POST", "/_gateway/static/gateway.css", "GET, HEAD", id="POST static"),
    ],
)
async def test_a_wrong_method_is_405_with_allow(
    gateway: GatewayHarness, method: str, path: str, allow: str
) -> None:
    """A known endpoint refuses other methods and says which it accepts."""
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{gateway.url}{path}", headers=API) as r:
            assert r.status == 405
            assert r.headers["Allow"] == allow
            assert (await r.json())["error"] == "method_not_allowed"


# --------------------------------------------------------------------------- sign-in page


async def test_the_sign_in_page_links_to_login_with_the_target(gateway: GatewayHarness) -> None:
    """The redirect's rd reaches the page, and the branded button carries it to login."""
    async with gateway.browser() as http:
        async with http.get(
            f"{gateway.url}/dash/board?x=1", headers=BROWSER, allow_redirects=False
        ) as r:
            assert r.status == 302
            sign_in = r.headers["Location"]
        async with http.get(sign_in, headers=BROWSER) as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            assert_strict_csp(r.headers)
            assert r.headers["X-Frame-Options"] == "DENY"
            page = parse_page(await r.text())
    buttons = [href for href, text in page.links if text == "Sign in with Hugging Face"]
    assert len(buttons) == 1
    login = urlsplit(buttons[0])
    assert f"{login.scheme}://{login.netloc}{login.path}" == f"{gateway.url}/_gateway/login"
    assert query_of(buttons[0]) == {"rd": ["/dash/board?x=1"]}
    assert "script" not in page.tags and "style" not in page.tags
    assert page.style_attributes == 0


HOSTILE_RD = [
    pytest.param("//evil.com/", id="protocol-relative"),
    pytest.param("/\\evil.com", id="slash backslash"),
    pytest.param("/%09/evil.com", id="encoded tab"),
    pytest.param("https://evil.com/", id="foreign origin"),
    pytest.param("https://127.0.0.1.evil.com/", id="our host as a prefix"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:text/html,x", id="data"),
]


@pytest.mark.parametrize("rd", HOSTILE_RD)
async def test_a_hostile_rd_on_the_sign_in_page_becomes_the_root(
    gateway: GatewayHarness, rd: str
) -> None:
    """The page never links to login with a target it would refuse to redirect to."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/sign_in", params={"rd": rd}) as r:
            assert r.status == 200
            page = parse_page(await r.text())
    (button,) = [href for href, text in page.links if text == "Sign in with Hugging Face"]
    assert query_of(button) == {"rd": ["/"]}


@pytest.mark.parametrize("rd", ["/dash", "/a/b?c=d", "/"])
async def test_a_same_origin_rd_on_the_sign_in_page_is_kept(
    gateway: GatewayHarness, rd: str
) -> None:
    """The positive case of the table above: safe targets are carried unchanged."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/_gateway/sign_in", params={"rd": rd}) as r:
            page = parse_page(await r.text())
    (button,) = [href for href, text in page.links if text == "Sign in with Hugging Face"]
    assert query_of(button) == {"rd": [rd]}


# --------------------------------------------------------------------------- browser or not

BROWSERS = [
    pytest.param("GET", {"Accept": "text/html,application/xhtml+xml"}, id="GET accepting html"),
    pytest.param("GET", {"Accept": "*/*", "Sec-Fetch-Mode": "navigate"}, id="GET navigate"),
    pytest.param("HEAD", {"Accept": "text/html"}, id="HEAD accepting html"),
    pytest.param("GET", BROWSER, id="a real browser's navigation"),
]
NOT_BROWSERS = [
    pytest.param("GET", {"Accept": "*/*", "X-Requested-With": "XMLHttpRequest"}, id="XHR (jQuery)"),
    pytest.param(
        "GET", {"Accept": "application/json", "Sec-Fetch-Mode": "cors"}, id="fetch for JSON"
    ),
    pytest.param("GET", {"Accept": "application/json"}, id="API client"),
    pytest.param("GET", {"Accept": "*/*"}, id="curl"),
    pytest.param("GET", {}, id="no Accept at all"),
    pytest.param("POST", {"Accept": "text/html"}, id="POST accepting html"),
    pytest.param("PUT", {"Accept": "text/html"}, id="PUT accepting html"),
    pytest.param("DELETE", BROWSER, id="DELETE from a browser"),
    pytest.param("HEAD", {"Accept": "*/*"}, id="HEAD without html"),
    pytest.param(
        "GET", {**BROWSER, "Authorization": "Bearer upstream-api-key"}, id="with Authorization"
    ),
    pytest.param("GET", {**BROWSER, **WS_UPGRADE}, id="websocket upgrade"),
]


@pytest.mark.parametrize(("method", "headers"), BROWSERS)
async def test_an_unauthenticated_browser_is_redirected_to_sign_in(
    gateway: GatewayHarness, method: str, headers: dict[str, str]
) -> None:
    """Top-level navigations get a 302 to the sign-in page, carrying where they were going."""
    response = await raw_request(gateway.port, "/dash?x=1", list(headers.items()), method=method)
    assert response.status == 302
    location = response.header("Location") or ""
    assert location.startswith(f"{gateway.url}/_gateway/sign_in?")
    assert query_of(location) == {"rd": ["/dash?x=1"]}
    assert response.header("Cache-Control") == "no-store"


@pytest.mark.parametrize(("method", "headers"), NOT_BROWSERS)
async def test_an_unauthenticated_non_browser_gets_401_json(
    gateway: GatewayHarness, method: str, headers: dict[str, str]
) -> None:
    """API, XHR, unsafe-method and websocket callers get 401 JSON they can act on."""
    response = await raw_request(gateway.port, "/dash?x=1", list(headers.items()), method=method)
    assert response.status == 401
    assert response.header("WWW-Authenticate") == (
        f'Bearer realm="hf-gateway", resource_metadata="{gateway.url}'
        '/.well-known/oauth-protected-resource"'
    )
    assert response.header("Location") is None
    if method == "HEAD":
        return
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert body["login_url"].startswith(f"{gateway.url}/_gateway/sign_in?")
    assert query_of(body["login_url"]) == {"rd": ["/dash?x=1"]}


async def test_a_websocket_upgrade_is_refused_before_it_reaches_the_upstream(
    gateway: GatewayHarness,
) -> None:
    """aiohttp's own websocket client sees the 401 as a failed handshake."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{gateway.url}/api/ws"):
                pass
    assert refused.value.status == 401


# --------------------------------------------------------------------------- 404 and 403


async def test_a_path_no_route_serves_is_404(start_gateway: StartGateway, upstream: str) -> None:
    """Without a catch-all route, other paths and hosts get 404; the route itself works."""
    gateway = await start_gateway(
        {
            # The public host must sit under cookie_domain; requests below name hosts raw.
            "server": {"public_url": "http://login.example.test"},
            "session": {"cookie_domain": ".example.test"},
            "routes": [
                {"name": "tool", "path": "/tool", "upstream": upstream, "policy": "public"},
                {
                    "name": "hosted",
                    "host": "tools.example.test",
                    "path": "/",
                    "upstream": upstream,
                    "policy": "public",
                },
            ],
        }
    )
    json_headers = list(API.items())
    for target, host, status in [
        ("/tool/api/echo", None, 200),
        ("/elsewhere", None, 404),
        ("/toolbox", None, 404),
        ("/api/echo", "tools.example.test", 200),
        ("/api/echo", "other.example.test", 404),
        ("/api/echo", "tools.example.test.evil.com", 404),
    ]:
        response = await raw_request(gateway.port, target, json_headers, host=host)
        assert response.status == status, (target, host)
        if status == 404:
            assert response.json()["error"] == "not_found"


async def test_the_403_page_for_bob_gives_the_reason_and_a_sign_out_form(
    gateway: GatewayHarness,
) -> None:
    """bob (read in acme) is denied /admin with the failed rule in words and a way out."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        async with http.get(f"{gateway.url}/admin/", headers=BROWSER) as r:
            assert r.status == 403
            assert r.content_type == "text/html"
            assert_strict_csp(r.headers)
            text = await r.text()
        async with http.get(f"{gateway.url}/admin/", headers=API) as r:
            assert r.status == 403
            body = await r.json()
    page = parse_page(text)
    assert "bob" in text
    assert any("role below admin" in item.lower() for item in page.items), page.items
    assert {"method": "post", "action": "/_gateway/logout", "button": "Sign out"} in page.forms
    assert body["error"] == "forbidden"
    assert any("role below admin" in d.lower() for d in body["details"])
    assert {r["code"] for r in body["reasons"]} >= {"no_matching_allow"}


async def test_alice_passes_where_bob_is_denied(gateway: GatewayHarness) -> None:
    """The positive case: an acme admin gets the admin route proxied."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/admin/", headers=BROWSER) as r:
            assert r.status == 200
            assert "Hello, alice!" in await r.text()
