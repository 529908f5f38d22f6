"""The pages over real HTTP (issue 11): robots.txt, Server, whoami, 403 next steps, 502
words, branding and skip_sign_in_page, each beside its twin."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import raw_request
from tests.support.redis_server import free_port

CONTACT = {"branding": {"support_contact": "it-help@acme.test", "app_name": "Acme Tools"}}


async def test_robots_txt_is_answered_instead_of_a_sign_in_redirect(
    gateway: GatewayHarness,
) -> None:
    async with gateway.browser() as http:
        for headers in (BROWSER, API, {}):
            async with http.get(
                f"{gateway.url}/robots.txt", headers=headers, allow_redirects=False
            ) as r:
                assert r.status == 200
                assert r.content_type == "text/plain"
                assert await r.text() == "User-agent: *\nDisallow: /\n"
        # Only a read: a POST asks for sign-in as any other request.
        async with http.post(f"{gateway.url}/robots.txt", headers=API) as r:
            assert r.status == 401
        async with http.head(f"{gateway.url}/robots.txt", headers=BROWSER) as r:
            assert r.status == 200
        # Any other protected path still asks for sign-in.
        async with http.get(f"{gateway.url}/x.txt", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302


async def test_a_public_robots_txt_reaches_the_upstream(
    start_gateway: StartGateway, upstream: str
) -> None:
    """The twin: the gateway answers only what would otherwise need sign-in."""
    gateway = await start_gateway(
        {
            "routes": [
                {
                    "name": "tool",
                    "path": "/",
                    "upstream": upstream,
                    "policy": "authenticated",
                    "public_paths": ["/robots.txt"],
                }
            ]
        }
    )
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/robots.txt", headers=API) as r:
            assert r.status == 200
            assert "Disallow" not in await r.text()  # the echo upstream's own answer


async def test_no_answer_names_python_or_aiohttp(gateway: GatewayHarness) -> None:
    async with gateway.browser() as http:
        for path in ("/_gateway/healthz", "/_gateway/sign_in", "/_gateway/nope", "/x"):
            async with http.get(f"{gateway.url}{path}", allow_redirects=False) as r:
                server = r.headers.get("Server", "")
                assert server == "hf-gateway", (path, server)


async def test_a_request_the_parser_refuses_names_no_version_either(
    gateway: GatewayHarness,
) -> None:
    """aiohttp's own answer to a malformed request (hardening.py) says hf-gateway too."""
    refused = await raw_request(gateway.port, "/x", [("X-Bad\x00Name", "1")])
    assert refused.status == 400
    assert refused.header("Server") == "hf-gateway"
    fine = await raw_request(gateway.port, "/_gateway/healthz")
    assert fine.status == 200
    assert fine.header("Server") == "hf-gateway"


async def test_whoami_shows_the_signed_in_account(gateway: GatewayHarness) -> None:
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/_gateway/whoami", headers=BROWSER) as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            assert r.headers["Referrer-Policy"] == "same-origin"  # its sign-out form
            page = await r.text()
        async with http.get(f"{gateway.url}/_gateway/whoami", headers=API) as r:
            as_json = await r.json()
        async with http.get(f"{gateway.url}/_gateway/userinfo", headers=API) as r:
            userinfo = await r.json()
    assert "alice" in page and "acme" in page and "Session ends" in page
    assert 'action="/_gateway/logout"' in page
    assert 'href="/_gateway/userinfo"' in page
    assert "sign out on" in page  # the provider keeps its own session
    assert as_json == userinfo  # one JSON contract: userinfo's


async def test_whoami_sends_an_anonymous_browser_to_sign_in_and_back(
    gateway: GatewayHarness,
) -> None:
    """The twin: no session, no page; the sign-in returns to whoami. JSON gets 401."""
    async with gateway.browser() as http:
        async with http.get(
            f"{gateway.url}/_gateway/whoami", headers=BROWSER, allow_redirects=False
        ) as r:
            assert r.status == 302
            location = urlsplit(r.headers["Location"])
            assert location.path == "/_gateway/sign_in"
            assert parse_qs(location.query)["rd"] == ["/_gateway/whoami"]
        async with http.get(f"{gateway.url}/_gateway/whoami", headers=API) as r:
            assert r.status == 401


async def _bob_denied(gateway: GatewayHarness) -> tuple[str, dict[str, object]]:
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        async with http.get(f"{gateway.url}/admin/", headers=BROWSER) as r:
            assert r.status == 403
            page = await r.text()
        async with http.get(f"{gateway.url}/admin/", headers=API) as r:
            body = await r.json()
    return page, body


async def test_a_403_says_whom_to_ask_and_offers_to_switch_account(
    start_gateway: StartGateway,
) -> None:
    page, body = await _bob_denied(await start_gateway(CONTACT))
    assert 'href="mailto:it-help@acme.test"' in page
    assert "but Acme Tools does not let this account in" in page
    assert "Switch account" in page
    assert 'href="/_gateway/whoami">What this site sees of your account' in page
    assert "%2F_gateway%2Fsign_in%3Frd%3D%252Fadmin%252F" in page  # back to sign-in for /admin/
    # Rule paths only in the administrators' disclosure, once each.
    head, _, disclosure = page.partition("<details")
    assert "allow[" not in head and "allow[0]" in disclosure
    assert body["support_contact"] == "it-help@acme.test"


async def test_a_403_without_a_contact_says_to_ask_the_site_owner(
    gateway: GatewayHarness,
) -> None:
    page, body = await _bob_denied(gateway)
    assert "mailto:" not in page
    assert "Ask the person who runs this site for access" in page
    assert "support_contact" not in body


async def test_the_grant_button_appears_when_an_org_was_not_granted(
    start_gateway: StartGateway,
) -> None:
    """Without read-memberships alice's acme role shows only once acme is granted: the
    403 offers "Grant access on Hugging Face" leading to the login with the org id."""
    gateway = await start_gateway({"provider": {"scopes": ["openid", "profile", "email"]}})
    page = await _page_for(gateway, "alice", "/writers/")
    assert "Grant access on Hugging Face" in page
    assert "/_gateway/login?rd=%2Fwriters%2F&amp;org=" in page
    assert "tick the organization or permission" in page


async def test_no_grant_button_when_a_grant_cannot_help(gateway: GatewayHarness) -> None:
    """The twin: bob's acme role is known and too low; no consent would change that."""
    page = await _page_for(gateway, "bob", "/writers/")
    assert "Grant access on Hugging Face" not in page
    assert "Role below write" in page


async def _page_for(gateway: GatewayHarness, user: str, path: str) -> str:
    async with gateway.browser() as http:
        await gateway.sign_in(http, user)
        async with http.get(f"{gateway.url}{path}", headers=BROWSER) as r:
            assert r.status == 403
            return await r.text()


async def test_a_502_names_no_exception_and_links_back(start_gateway: StartGateway) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    gateway = await start_gateway(CONTACT, upstream_url=dead)
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice", rd="/_gateway/whoami")
        async with http.get(f"{gateway.url}/dash?a=1", headers=BROWSER) as r:
            assert r.status == 502
            page = await r.text()
        async with http.get(f"{gateway.url}/dash", headers=API) as r:
            assert r.status == 502
            body = await r.json()
    for leak in ("Error", "Exception", "errno", "Connect", "(", "Traceback"):
        assert leak not in body["message"], body
    assert "ConnectionRefused" not in page and "OSError" not in page
    assert "The tool is not answering" in page
    assert 'href="/dash?a=1">Try again' in page
    assert 'href="/">Back to the home page' in page
    assert "it-help@acme.test" in page


async def test_skip_sign_in_page_goes_straight_to_hugging_face(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway({"branding": {"skip_sign_in_page": True}})
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/dash", headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302
            login = urlsplit(r.headers["Location"])
        assert login.path == "/_gateway/login"
        assert parse_qs(login.query)["rd"] == ["/dash"]
        async with http.get(
            f"{gateway.url}/_gateway/sign_in?rd=/dash", headers=BROWSER, allow_redirects=False
        ) as r:
            assert r.status == 302
            assert urlsplit(r.headers["Location"]).path == "/_gateway/login"
        async with http.get(r.headers["Location"], headers=BROWSER, allow_redirects=False) as r:
            assert r.status == 302
            authorize = parse_qs(urlsplit(r.headers["Location"]).query)
        # state, nonce and PKCE as with the page; and the sign-in still completes.
        assert authorize["state"] and authorize["nonce"] and authorize["code_challenge"]
        assert authorize["code_challenge_method"] == ["S256"]
        await gateway.sign_in(http, "alice", rd="/dash")
        async with http.get(f"{gateway.url}/dash", headers=API) as r:
            assert r.status == 200


async def test_without_skip_and_inside_a_frame_the_sign_in_page_is_shown(
    start_gateway: StartGateway,
) -> None:
    """The twins: the default shows the page; skip inside an allowed frame shows it too
    (Hugging Face refuses to be framed; the page's button leaves the frame)."""
    plain = await start_gateway()
    framed = await start_gateway(
        {
            "branding": {"skip_sign_in_page": True},
            "server": {"frame_ancestors": ["https://huggingface.co"]},
        }
    )
    frame = {**BROWSER, "Sec-Fetch-Dest": "iframe"}
    for gateway, headers in ((plain, BROWSER), (framed, frame)):
        async with gateway.browser() as http:
            async with http.get(f"{gateway.url}/dash", headers=headers, allow_redirects=False) as r:
                assert r.status == 302
                assert urlsplit(r.headers["Location"]).path == "/_gateway/sign_in"


async def test_branding_reaches_the_pages_and_the_csp_admits_only_the_logo_origin(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(
        {
            "branding": {
                "app_name": "Acme Tools",
                "logo_url": "https://cdn.acme.test/logo.svg",
                "accent_color": "#0055AA",
                "help_text": "Use your acme account.",
            }
        }
    )
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/_gateway/sign_in", headers=BROWSER) as r:
            page = await r.text()
            csp = r.headers["Content-Security-Policy"]
        async with http.get(f"{gateway.url}/_gateway/brand.css?c=0055aa") as r:
            css = await r.text()
            assert r.content_type == "text/css"
    assert "Sign in to Acme Tools" in page and "Use your acme account." in page
    assert 'src="https://cdn.acme.test/logo.svg"' in page
    assert "img-src 'self' https://cdn.acme.test data:;" in csp
    assert "--accent: #0055aa" in css


async def test_without_a_logo_the_csp_stays_self_only(gateway: GatewayHarness) -> None:
    async with gateway.browser() as http:
        async with http.get(f"{gateway.url}/_gateway/sign_in", headers=BROWSER) as r:
            assert "img-src 'self' data:;" in r.headers["Content-Security-Policy"]
            assert "brand.css" not in await r.text()
        async with http.get(f"{gateway.url}/_gateway/brand.css") as r:
            assert await r.text() == ""
