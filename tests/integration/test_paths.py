"""Path normalisation and public paths over real HTTP (SECURITY.md §4).

aiohttp and yarl would tidy these paths before sending them, so every request here is
written byte for byte onto a socket. The upstream records everything it receives: an
attack passes only if the gateway answers 400 (a path it refuses to read) or 401 (a
protected path) and the upstream saw nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness
from tests.support.raw_http import RecordingUpstream, raw_request, recording_upstream

JSON = list(API.items())


def _routes(upstream: str) -> list[dict[str, Any]]:
    """Everything under / needs a session except /public/; /admin is for acme admins."""
    return [
        {
            "name": "site",
            "path": "/",
            "upstream": upstream,
            "policy": "authenticated",
            "public_paths": ["/public/"],
        },
        {"name": "admin", "path": "/admin", "upstream": upstream, "policy": "admins"},
    ]


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
    return await start_gateway({"routes": _routes(upstream)})


def _rd(login_url: str) -> str:
    return parse_qs(urlsplit(login_url).query)["rd"][0]


REFUSED = 400
UNAUTHENTICATED = 401

ATTACKS = [
    # --- SECURITY.md §4 list
    pytest.param("/public/../admin", UNAUTHENTICATED, id="dot-dot out of the public path"),
    pytest.param("/public/%2e%2e/admin", UNAUTHENTICATED, id="encoded dot-dot"),
    pytest.param("/public/%2E%2E/admin", UNAUTHENTICATED, id="encoded dot-dot upper case"),
    pytest.param("/public/.%2e/admin", UNAUTHENTICATED, id="half-encoded dot-dot"),
    pytest.param("/public%2f..%2fadmin", REFUSED, id="encoded slashes"),
    pytest.param("/public%2F..%2Fadmin", REFUSED, id="encoded slashes upper case"),
    pytest.param("//admin", UNAUTHENTICATED, id="leading double slash"),
    pytest.param("/PUBLIC/x", UNAUTHENTICATED, id="upper-case public prefix"),
    pytest.param("/Public/x", UNAUTHENTICATED, id="mixed-case public prefix"),
    pytest.param("/publicity", UNAUTHENTICATED, id="public prefix without a segment boundary"),
    pytest.param("/admin?x=/public/", UNAUTHENTICATED, id="public path in the query"),
    pytest.param("/admin?/public/", UNAUTHENTICATED, id="bare public path as the query"),
    pytest.param("/admin;/public/", UNAUTHENTICATED, id="path parameter hiding a public path"),
    pytest.param("/admin%23/public/", REFUSED, id="encoded hash"),
    pytest.param("/admin#/public/", REFUSED, id="raw hash on the request line"),
    pytest.param("/public/%2e%2e%2fadmin", REFUSED, id="encoded dot-dot and slash"),
    pytest.param("/public/..;/admin", UNAUTHENTICATED, id="dot-dot with a path parameter"),
    pytest.param("/public/..;x=1/admin", UNAUTHENTICATED, id="dot-dot with a valued parameter"),
    # --- path parameters: an upstream that keeps them reads "/public;x" as another segment
    pytest.param("/public;x/secret", UNAUTHENTICATED, id="parameter on the public segment"),
    pytest.param("/public;/secret", UNAUTHENTICATED, id="empty parameter on the public segment"),
    pytest.param("/public;jsessionid=1/x", UNAUTHENTICATED, id="session-id parameter"),
    pytest.param("/public;x", UNAUTHENTICATED, id="parameter on the public path itself"),
    pytest.param("/public/./../admin", UNAUTHENTICATED, id="dot then dot-dot"),
    pytest.param("/public/a/../../admin", UNAUTHENTICATED, id="two levels up"),
    pytest.param("/public/../../../admin", UNAUTHENTICATED, id="above the root"),
    pytest.param("/public/%2e%2e/%2e%2e/admin", UNAUTHENTICATED, id="encoded dot-dot twice"),
    # --- backslashes, NUL and other refused bytes
    pytest.param("/public\\..\\admin", REFUSED, id="raw backslashes"),
    pytest.param("/public/..\\admin", REFUSED, id="dot-dot then raw backslash"),
    pytest.param("/public/%5c..%5cadmin", REFUSED, id="encoded backslashes"),
    pytest.param("/public/%5C../admin", REFUSED, id="encoded backslash upper case"),
    pytest.param("/public/%00", REFUSED, id="encoded NUL"),
    pytest.param("/public/x%00/../../admin", REFUSED, id="encoded NUL before dot-dot"),
    pytest.param("/public/%2", REFUSED, id="truncated escape"),
    pytest.param("/public/%zz", REFUSED, id="malformed escape"),
    pytest.param("/public/\x7f", REFUSED, id="raw DEL"),
    pytest.param("public/x", REFUSED, id="origin form without a leading slash"),
]


@pytest.mark.parametrize(("target", "status"), ATTACKS)
async def test_a_path_trick_never_reaches_the_upstream_as_public(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str, status: int
) -> None:
    """Each trick is refused (400) or judged as the protected path it is (401)."""
    response = await raw_request(gateway.port, target, JSON)
    assert response.status == status, response.body
    assert recorder.seen == []
    if status == UNAUTHENTICATED:
        assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/public/x", id="a page under the public path"),
        pytest.param("/public/", id="the public path itself"),
        pytest.param("/public/a/b/c", id="a deep page"),
    ],
)
async def test_a_public_path_is_proxied_without_a_session(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str
) -> None:
    """The positive case of the table above: public paths do reach the upstream."""
    response = await raw_request(gateway.port, target, JSON)
    assert response.status == 200
    assert recorder.paths() == [target]


@pytest.mark.parametrize(
    ("target", "normalised"),
    [
        pytest.param("/public/./a//b", "/public/a/b", id="dot segment and double slash"),
        pytest.param("/public//x", "/public/x", id="double slash after the prefix"),
        pytest.param("/public/a/../b", "/public/b", id="dot-dot inside the public path"),
        pytest.param("/x/../public/y", "/public/y", id="dot-dot into the public path"),
        pytest.param("//public///y", "/public/y", id="many slashes"),
        pytest.param("/public/%61%62", "/public/ab", id="encoded unreserved letters"),
        pytest.param("/public/%7euser", "/public/~user", id="encoded tilde"),
        pytest.param("/public/caf%c3%a9", "/public/caf%C3%A9", id="escapes upper-cased"),
        pytest.param("/public/a%20b", "/public/a%20b", id="encoded space kept"),
        pytest.param("/public/a;v=1/b", "/public/a;v=1/b", id="path parameters forwarded"),
        pytest.param("/public/a/.", "/public/a/", id="trailing dot"),
    ],
)
async def test_the_upstream_receives_the_normalised_path(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str, normalised: str
) -> None:
    """The path that was judged public is the path that is forwarded, byte for byte."""
    response = await raw_request(gateway.port, target, JSON)
    assert response.status == 200
    assert recorder.paths() == [normalised]


async def test_the_query_is_forwarded_untouched(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """Only the path is normalised; the query string goes upstream as the client sent it."""
    response = await raw_request(gateway.port, "/public/./x?a=/../admin&b=%2F", JSON)
    assert response.status == 200
    assert [s.raw_path for s in recorder.seen] == ["/public/x?a=/../admin&b=%2F"]


async def test_the_sign_in_target_is_the_normalised_path(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """After sign-in the user comes back to the path that was judged, not the raw one."""
    api = await raw_request(gateway.port, "/public/%2e%2e/admin/./x?y=1", JSON)
    assert api.status == 401
    assert _rd(api.json()["login_url"]) == "/admin/x?y=1"
    browser = await raw_request(gateway.port, "/public/../admin", list(BROWSER.items()))
    assert browser.status == 302
    assert _rd(browser.header("Location") or "") == "/admin"
    assert recorder.seen == []


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://evil/admin", id="foreign host"),
        pytest.param("http://evil/public/x", id="foreign host, public path"),
        pytest.param("http://127.0.0.1/public/x", id="our own host, public path"),
        pytest.param("https://evil/public/x", id="https"),
        pytest.param("HTTP://evil/public/x", id="upper-case scheme"),
    ],
)
async def test_an_absolute_form_request_target_is_refused(
    gateway: GatewayHarness, recorder: RecordingUpstream, target: str
) -> None:
    """Only origin-form targets (``/path?query``) are served; the gateway is no forward proxy."""
    response = await raw_request(gateway.port, target, JSON)
    assert response.status == 400
    assert recorder.seen == []


@pytest.mark.parametrize(
    ("method", "target"),
    [
        pytest.param("OPTIONS", "*", id="asterisk form"),
        pytest.param("CONNECT", "evil:443", id="authority form"),
    ],
)
async def test_other_request_target_forms_are_never_proxied(
    gateway: GatewayHarness, recorder: RecordingUpstream, method: str, target: str
) -> None:
    """Targets without a path end in a client error (aiohttp's router answers 404 before
    the gateway's handler runs) and nothing reaches the upstream."""
    response = await raw_request(gateway.port, target, JSON, method=method)
    assert response.status in (400, 404)
    assert recorder.seen == []


async def test_a_signed_in_request_is_routed_judged_and_forwarded_on_one_path(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """``/public/../admin`` is the admin route for alice: its policy, its audience, its path."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        cookie = gateway.session_cookie(http)
    recorder.seen.clear()  # the login flow itself ended on the upstream's "/"
    response = await raw_request(
        gateway.port, "/public/../admin/x", [*JSON, ("Cookie", f"hf_gateway={cookie}")]
    )
    assert response.status == 200
    (seen,) = recorder.seen
    assert seen.path == "/admin/x"
    assert seen.header("X-Forwarded-User") == "alice"
    claims = jwt.decode(
        seen.header("X-Gateway-Assertion") or "", options={"verify_signature": False}
    )
    assert claims["aud"] == "admin"


async def test_a_path_trick_does_not_escape_the_stricter_policy(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """bob may use the site but not /admin; reaching /admin through the public path is 403."""
    async with gateway.browser() as http:
        await gateway.sign_in(http, "bob")
        cookie = gateway.session_cookie(http)
    recorder.seen.clear()  # the login flow itself ended on the upstream's "/"
    headers = [*JSON, ("Cookie", f"hf_gateway={cookie}")]
    allowed = await raw_request(gateway.port, "/elsewhere", headers)
    assert allowed.status == 200
    assert recorder.paths() == ["/elsewhere"]
    denied = await raw_request(gateway.port, "/public/%2e%2e/admin", headers)
    assert denied.status == 403
    assert recorder.paths() == ["/elsewhere"]


async def signed_in_headers(gateway: GatewayHarness, user: str) -> list[tuple[str, str]]:
    async with gateway.browser() as http:
        await gateway.sign_in(http, user)
        return [*JSON, ("Cookie", f"hf_gateway={gateway.session_cookie(http)}")]


async def test_a_path_parameter_on_a_public_segment_still_serves_signed_in_users(
    gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """The positive twin of the parameter attacks: alice gets ``/public;x/secret``, forwarded
    with its parameter, while a parameter inside the public path stays public."""
    headers = await signed_in_headers(gateway, "alice")
    recorder.seen.clear()
    response = await raw_request(gateway.port, "/public;x/secret", headers)
    assert response.status == 200
    assert recorder.paths() == ["/public;x/secret"]
    anonymous = await raw_request(gateway.port, "/public/a;v=1/b", JSON)
    assert anonymous.status == 200


def _case_routes(upstream: str) -> list[dict[str, Any]]:
    """/ex for anyone signed in, /ex/staff for acme admins (an Express-like upstream would
    serve its /ex/staff handler for /ex/STAFF); /ci is a case-insensitive route."""
    return [
        *_routes(upstream),
        {"name": "ex", "path": "/ex", "upstream": upstream, "policy": "authenticated"},
        {"name": "ex-staff", "path": "/ex/staff", "upstream": upstream, "policy": "admins"},
        {
            "name": "ci",
            "path": "/ci",
            "upstream": upstream,
            "policy": "admins",
            "public_paths": ["/ci/public"],
            "case_insensitive": True,
        },
    ]


@pytest.fixture
async def case_gateway(start_gateway: StartGateway, upstream: str) -> GatewayHarness:
    return await start_gateway({"routes": _case_routes(upstream)})


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/ex/STAFF/secret", id="upper-case segment of the stricter route"),
        pytest.param("/ex/Staff", id="mixed case, the route itself"),
        pytest.param("/EX/staff/x", id="upper-case parent, exact stricter segment"),
        pytest.param("/ADMIN/x", id="upper-case admin route under the site route"),
        pytest.param("/ex/STAFF;x/y", id="case and a parameter together"),
    ],
)
async def test_letter_case_never_picks_the_weaker_route(
    case_gateway: GatewayHarness, recorder: RecordingUpstream, target: str
) -> None:
    """bob (acme read) is refused wherever ignoring case would land on an admins-only
    route, and the upstream hears nothing of it."""
    headers = await signed_in_headers(case_gateway, "bob")
    recorder.seen.clear()
    response = await raw_request(case_gateway.port, target, headers)
    assert response.status == 403, response.body
    assert recorder.seen == []


async def test_letter_case_still_serves_those_the_stricter_route_allows(
    case_gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """The twin: alice (acme admin) gets /ex/STAFF/secret, and bob gets the rest of /ex."""
    alice = await signed_in_headers(case_gateway, "alice")
    bob = await signed_in_headers(case_gateway, "bob")
    recorder.seen.clear()
    assert (await raw_request(case_gateway.port, "/ex/STAFF/secret", alice)).status == 200
    assert (await raw_request(case_gateway.port, "/ex/Other", bob)).status == 200
    assert recorder.paths() == ["/ex/STAFF/secret", "/ex/Other"]


async def test_a_case_insensitive_route_matches_its_paths_ignoring_case(
    case_gateway: GatewayHarness, recorder: RecordingUpstream
) -> None:
    """case_insensitive: /CI/x is the ci route (admins only) and /CI/PUBLIC/x its public path."""
    bob = await signed_in_headers(case_gateway, "bob")
    alice = await signed_in_headers(case_gateway, "alice")
    recorder.seen.clear()
    assert (await raw_request(case_gateway.port, "/CI/PUBLIC/x", JSON)).status == 200
    assert (await raw_request(case_gateway.port, "/Ci/private", JSON)).status == 401
    assert (await raw_request(case_gateway.port, "/cI/private", bob)).status == 403
    response = await raw_request(case_gateway.port, "/CI/private", alice)
    assert response.status == 200
    assert recorder.paths() == ["/CI/PUBLIC/x", "/CI/private"]
    (public, private) = recorder.seen
    assert public.header("X-Forwarded-User") == ""
    assert private.header("X-Forwarded-User") == "alice"
