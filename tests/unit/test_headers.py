"""Headers between client, gateway and upstream (SECURITY.md §2, §3 and §10).

Pure functions: header pairs in, header pairs out. A client header the gateway owns is
dropped however it is spelled or repeated, hop-by-hop headers never cross, the gateway
always sets every identity header it owns, and forwarded facts are believed only from
trusted proxies.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.headers import (
    ACCESS_TOKEN_HEADER,
    FORWARDING,
    HOP_BY_HOP,
    ClientFacts,
    IdentityHeaders,
    TrustedProxies,
    canonical,
    client_facts,
    encode_value,
    filter_request_headers,
    filter_response_headers,
    forwarding_headers,
    strip_cookies,
)
from gateway.identity import Identity
from tests.unit.conftest import identity, org

TEMPLATES = {
    "X-Forwarded-User": "{username}",
    "X-Forwarded-User-Id": "{sub}",
    "X-Forwarded-Email": "{email}",
    "X-Forwarded-Name": "{name}",
    "X-Forwarded-Groups": "{orgs}",
}
HEADERS = IdentityHeaders.from_config(TEMPLATES, "X-Gateway-Assertion")
OWNED = HEADERS.owned
GATEWAY_COOKIES = frozenset({"hf_gateway", "__Host-hf_gateway", "hf_gateway_login"})
RAW_GATEWAY_COOKIES = frozenset(name.encode() for name in GATEWAY_COOKIES)


def _filter(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return filter_request_headers(items, owned=OWNED, drop_cookies=GATEWAY_COOKIES)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("X-Forwarded-User", "x-forwarded-user", id="canonical spelling"),
        pytest.param("x-forwarded-user", "x-forwarded-user", id="lower case"),
        pytest.param("X-FORWARDED-USER", "x-forwarded-user", id="upper case"),
        pytest.param("X_Forwarded_User", "x-forwarded-user", id="underscores"),
        pytest.param("x_forwarded-USER", "x-forwarded-user", id="mixed"),
        pytest.param("Host", "host", id="a short name"),
    ],
)
def test_canonical_folds_case_and_reads_underscores_as_dashes(name: str, expected: str) -> None:
    """Two names that some backend could treat alike compare equal."""
    assert canonical(name) == expected


def test_the_gateway_owns_its_identity_assertion_token_and_forwarding_headers() -> None:
    """Owned names are canonical: templates, the assertion, the access token, X-Forwarded-*."""
    assert {canonical(n) for n in TEMPLATES} <= OWNED
    assert "x-gateway-assertion" in OWNED
    assert canonical(ACCESS_TOKEN_HEADER) in OWNED
    assert FORWARDING <= OWNED
    assert {"x-real-ip", "forwarded", "x-original-url", "x-forwarded-uri"} <= OWNED
    assert "authorization" not in OWNED and "x-custom" not in OWNED


# --------------------------------------------------------------------------- request headers

SPELLINGS = [
    pytest.param("X-Forwarded-User", id="exact"),
    pytest.param("x-forwarded-user", id="lower"),
    pytest.param("X-FORWARDED-USER", id="upper"),
    pytest.param("X_Forwarded_User", id="underscores"),
    pytest.param("x_forwarded_user", id="lower underscores"),
    pytest.param("X-Forwarded_User", id="one underscore"),
    pytest.param("X-Gateway-Assertion", id="assertion"),
    pytest.param("x_gateway_assertion", id="assertion underscores"),
    pytest.param("X-Forwarded-Access-Token", id="access token"),
    pytest.param("X_FORWARDED_ACCESS_TOKEN", id="access token underscores"),
    pytest.param("X-Forwarded-Groups", id="groups"),
    pytest.param("X-Forwarded-For", id="forwarded for"),
    pytest.param("X_Real_IP", id="real ip underscores"),
    pytest.param("forwarded", id="Forwarded"),
]


@pytest.mark.parametrize("name", SPELLINGS)
def test_an_owned_header_is_dropped_in_every_spelling(name: str) -> None:
    """A forged identity header never survives, whatever its case or separators."""
    kept = _filter([(name, "mallory"), ("X-Custom", "kept")])
    assert kept == [("X-Custom", "kept")]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X-Forwarded-Userx", id="longer name"),
        pytest.param("X-Forwarded-User-Agent", id="owned name as a prefix"),
        pytest.param("X-Forwarded", id="shorter name"),
        pytest.param("Authorization", id="the user's own credentials"),
        pytest.param("X-Forwarded.User", id="a dot is not a dash"),
    ],
)
def test_a_header_the_gateway_does_not_own_is_kept(name: str) -> None:
    """The positive case: only exact owned names (after folding) are dropped."""
    assert _filter([(name, "value")]) == [(name, "value")]


def test_every_duplicated_line_of_an_owned_header_is_dropped() -> None:
    """Repeated lines, in several spellings, are all removed, not only the first."""
    items = [
        ("X-Forwarded-User", "alice"),
        ("Accept", "*/*"),
        ("x-forwarded-user", "bob"),
        ("X_Forwarded_User", "carol"),
        ("X-FORWARDED-EMAIL", "a@evil.example"),
        ("x_forwarded_email", "b@evil.example"),
    ]
    assert _filter(items) == [("Accept", "*/*")]


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_a_hop_by_hop_header_is_dropped(name: str) -> None:
    """Connection-scoped headers never cross the gateway (SECURITY.md §10)."""
    spelled = name.title()
    assert _filter([(spelled, "x"), ("Accept", "*/*")]) == [("Accept", "*/*")]


def test_headers_listed_in_connection_are_dropped() -> None:
    """Connection names extra hop-by-hop headers, across lines and in any spelling."""
    items = [
        ("Connection", "close, X-Hop"),
        ("connection", "X_Other"),
        ("X-Hop", "1"),
        ("x-other", "2"),
        ("X-End-To-End", "3"),
    ]
    assert _filter(items) == [("X-End-To-End", "3")]


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
def test_the_client_host_header_is_dropped(name: str) -> None:
    """The gateway decides the upstream Host (preserve_host adds it back explicitly)."""
    assert _filter([(name, "evil.example"), ("Accept", "*/*")]) == [("Accept", "*/*")]


def test_the_gateway_cookies_are_removed_and_others_kept() -> None:
    """The session and login cookies never reach the upstream; the tool's cookies do."""
    items = [
        ("Cookie", "theme=dark; hf_gateway=v1.abc.def; lang=en"),
        ("Cookie", "hf_gateway_login=xyz"),
        ("Cookie", "__Host-hf_gateway=v1.x.y;tool=1"),
    ]
    assert _filter(items) == [("Cookie", "theme=dark; lang=en"), ("Cookie", "tool=1")]


def test_request_headers_keep_their_order_and_values() -> None:
    """Everything that is not dropped passes byte for byte, in order."""
    items = [("Accept", "a"), ("X-Custom", "  spaced  "), ("Accept", "b"), ("Authorization", "x")]
    assert _filter(items) == items


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("hf_gateway=v1.a.b", None, id="only ours"),
        pytest.param("a=1; hf_gateway=v1.a.b; b=2", "a=1; b=2", id="ours in the middle"),
        pytest.param("a=1;hf_gateway=x;b=2", "a=1; b=2", id="no spaces"),
        pytest.param(" hf_gateway =x; a=1", "a=1", id="spaces around the name"),
        pytest.param("hf_gateway=1; hf_gateway=2", None, id="ours twice"),
        pytest.param("hf_gateway_login=1; a=1", "a=1", id="login binding"),
        pytest.param("a=1; ; b=2;", "a=1; b=2", id="empty pairs"),
        pytest.param("hf_gatewayx=1", "hf_gatewayx=1", id="a longer name is kept"),
        pytest.param("HF_GATEWAY=1", "HF_GATEWAY=1", id="cookie names are case-sensitive"),
        pytest.param("a=hf_gateway", "a=hf_gateway", id="our name as a value"),
    ],
)
def test_strip_cookies(header: str, expected: str | None) -> None:
    """Only cookies whose name is exactly one of ours are removed."""
    assert strip_cookies(header, GATEWAY_COOKIES) == expected


# --------------------------------------------------------------------------- response headers


def test_response_hop_by_hop_and_connection_listed_headers_are_dropped() -> None:
    """An upstream's connection-scoped headers stop at the gateway."""
    items = [
        (b"Connection", b"X-Hop-Listed, x_other"),
        (b"X-Hop-Listed", b"1"),
        (b"X-Other", b"2"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"h2c"),
        (b"Content-Type", b"text/plain"),
        (b"X-End-To-End", b"kept"),
        (b"X-Latin", b"caf\xe9"),
    ]
    assert filter_response_headers(items, drop_cookies=RAW_GATEWAY_COOKIES) == [
        (b"Content-Type", b"text/plain"),
        (b"X-End-To-End", b"kept"),
        (b"X-Latin", b"caf\xe9"),
    ]


def test_response_headers_named_in_also_are_dropped() -> None:
    """The framing the gateway writes itself (Content-Length) is dropped on request only."""
    items = [(b"content-length", b"5"), (b"ETag", b'"1"')]
    assert filter_response_headers(
        items, drop_cookies=RAW_GATEWAY_COOKIES, also=frozenset({b"content-length"})
    ) == [(b"ETag", b'"1"')]
    assert filter_response_headers(items, drop_cookies=RAW_GATEWAY_COOKIES) == items


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        pytest.param(b"hf_gateway=evil; Path=/", False, id="the session cookie"),
        pytest.param(b"__Host-hf_gateway=evil; Path=/; Secure", False, id="the prefixed cookie"),
        pytest.param(b"hf_gateway_login=evil", False, id="the login binding"),
        pytest.param(b" hf_gateway =evil", False, id="spaces around the name"),
        pytest.param(b"tool_session=1; HttpOnly", True, id="the tool's own cookie"),
        pytest.param(b"hf_gatewayx=1", True, id="a longer name"),
    ],
)
def test_an_upstream_cannot_set_the_gateway_cookies(value: bytes, kept: bool) -> None:
    """Set-Cookie lines for the gateway's cookies are dropped; the tool's own pass."""
    items = [(b"Set-Cookie", value), (b"set-cookie", b"other=1")]
    expected = ([(b"Set-Cookie", value)] if kept else []) + [(b"set-cookie", b"other=1")]
    assert filter_response_headers(items, drop_cookies=RAW_GATEWAY_COOKIES) == expected


# --------------------------------------------------------------------------- identity headers


def test_every_configured_header_is_rendered_for_a_user() -> None:
    """All identity headers are present, in configured order, with the user's values."""
    user = Identity(
        sub="3f50",
        username="alice",
        name="Alice Liddell",
        email="alice@example.com",
        orgs=(org("acme", "admin"), org("hf-tools", "write")),
    )
    assert HEADERS.render(user, "tool") == [
        ("X-Forwarded-User", "alice"),
        ("X-Forwarded-User-Id", "3f50"),
        ("X-Forwarded-Email", "alice@example.com"),
        ("X-Forwarded-Name", "Alice Liddell"),
        ("X-Forwarded-Groups", "acme,hf-tools"),
    ]


def test_every_configured_header_is_rendered_empty_for_anonymous() -> None:
    """Anonymous requests carry every owned header, empty, so no forged value can survive."""
    assert HEADERS.render(None, "tool") == [(name, "") for name in TEMPLATES]


def test_unknown_fields_render_empty() -> None:
    """A user without an email or picture gets empty values, never 'None'."""
    headers = IdentityHeaders.from_config(
        {"X-Email": "{email}", "X-Picture": "{picture}", "X-Groups": "{orgs}"}, "X-A"
    )
    assert headers.render(identity("dave"), "tool") == [
        ("X-Email", ""),
        ("X-Picture", ""),
        ("X-Groups", ""),
    ]


def test_templates_combine_fields_and_text() -> None:
    """A template may mix literal text with fields, including the route name."""
    headers = IdentityHeaders.from_config({"X-Who": "{username}@{route} ({sub})"}, "X-A")
    assert headers.render(identity("alice", sub="u1"), "grafana") == [
        ("X-Who", "alice@grafana (u1)")
    ]


def test_groups_list_only_the_orgs_that_count() -> None:
    """An org with unmet security restrictions (SSO, MFA) is not listed (DESIGN §4a)."""
    user = identity(
        orgs=[
            org("acme", "write"),
            org("secure-corp", "admin", restrictions=["sso"]),
            org("hf-tools", "read"),
            org("mfa-corp", "read", restrictions=["mfa", "ip"]),
        ]
    )
    rendered = dict(HEADERS.render(user, "tool"))
    assert rendered["X-Forwarded-Groups"] == "acme,hf-tools"


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        pytest.param("Zoë", "Zo%C3%AB", id="latin accent"),
        pytest.param("山田", "%E5%B1%B1%E7%94%B0", id="cjk"),
        pytest.param("😀", "%F0%9F%98%80", id="emoji"),
        pytest.param("100% sure", "100%25 sure", id="percent sign"),
        pytest.param("%41", "%2541", id="an escape is not decoded"),
        pytest.param("a\r\nX-Forwarded-User: admin", "a%0D%0AX-Forwarded-User: admin", id="crlf"),
        pytest.param("a\nb", "a%0Ab", id="lf"),
        pytest.param("a\x00b\tc\x7f", "a%00b%09c%7F", id="nul tab del"),
        pytest.param("a\u2028b\x85", "a%E2%80%A8b%C2%85", id="unicode line breaks"),
        pytest.param('Plain Name (ok); "x"', 'Plain Name (ok); "x"', id="printable ascii"),
    ],
)
def test_values_are_percent_encoded_utf8(name: str, encoded: str) -> None:
    """Non-ASCII and control characters are encoded, '%' too, so decoding is exact."""
    user = Identity(sub="s", username="u", name=name)
    rendered = dict(HEADERS.render(user, "tool"))
    assert rendered["X-Forwarded-Name"] == encoded
    assert unquote(encoded) == name


@given(st.text())
def test_an_encoded_value_is_printable_ascii_and_decodes_back(value: str) -> None:
    """No value can carry CR, LF or any byte outside printable ASCII, and none is lost."""
    encoded = encode_value(value)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert unquote(encoded) == value


# --------------------------------------------------------------------------- trusted proxies


def test_nobody_is_trusted_by_default() -> None:
    """An empty trusted set trusts no address at all."""
    nobody = TrustedProxies()
    assert not nobody.trusts("127.0.0.1")
    assert not TrustedProxies.parse([]).trusts("10.0.0.1")


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        pytest.param("10.1.2.3", True, id="inside the v4 network"),
        pytest.param("192.168.0.7", True, id="single host"),
        pytest.param("fd00::1", True, id="inside the v6 network"),
        pytest.param("11.0.0.1", False, id="outside"),
        pytest.param("192.168.0.8", False, id="the next host"),
        pytest.param("10.1.2.3:80", False, id="with a port"),
        pytest.param("not-an-ip", False, id="garbage"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="unknown peer"),
    ],
)
def test_trusted_proxies_match_their_networks(peer: str | None, trusted: bool) -> None:
    """Only addresses inside the configured networks are trusted; anything unreadable is not."""
    proxies = TrustedProxies.parse(["10.0.0.0/8", "192.168.0.7", "fd00::/8"])
    assert proxies.trusts(peer) is trusted


TRUST_LB = TrustedProxies.parse(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("forwarded_for", "forwarded_proto"),
    [
        pytest.param(None, None, id="nothing claimed"),
        pytest.param("1.2.3.4", None, id="a forwarded-for"),
        pytest.param("1.2.3.4, 10.0.0.1", "https", id="a chain and a scheme"),
        pytest.param(None, "https", id="only a scheme"),
    ],
)
def test_an_untrusted_peer_is_the_client_and_its_claims_are_ignored(
    forwarded_for: str | None, forwarded_proto: str | None
) -> None:
    """From an untrusted peer the chain is the peer alone and the scheme the connection's."""
    facts, chain = client_facts(
        peer="203.0.113.9",
        scheme="http",
        host="tools.example.com",
        forwarded_for=forwarded_for,
        forwarded_proto=forwarded_proto,
        trusted=TRUST_LB,
    )
    assert chain == "203.0.113.9"
    assert facts == ClientFacts("203.0.113.9", "http", "tools.example.com")


def test_a_trusted_peer_extends_the_chain_and_names_the_scheme() -> None:
    """The positive case: a trusted load balancer's claims are believed."""
    facts, chain = client_facts(
        peer="10.0.0.2",
        scheme="http",
        host="tools.example.com",
        forwarded_for="198.51.100.7",
        forwarded_proto="HTTPS",
        trusted=TRUST_LB,
    )
    assert chain == "198.51.100.7, 10.0.0.2"
    assert facts == ClientFacts("198.51.100.7", "https", "tools.example.com")


def test_a_trusted_peer_may_name_only_the_scheme() -> None:
    """Without X-Forwarded-For, the chain is the peer and the claimed scheme holds."""
    facts, chain = client_facts(
        peer="10.0.0.2",
        scheme="http",
        host="h",
        forwarded_for=None,
        forwarded_proto="https",
        trusted=TRUST_LB,
    )
    assert chain == "10.0.0.2"
    assert facts.proto == "https"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        pytest.param("198.51.100.7", "198.51.100.7", id="one hop"),
        pytest.param("198.51.100.7, 10.0.0.5", "198.51.100.7", id="through an inner proxy"),
        pytest.param(
            "6.6.6.6, 198.51.100.7, 10.0.0.5", "198.51.100.7", id="a forged entry on the left"
        ),
        pytest.param("6.6.6.6,198.51.100.7", "198.51.100.7", id="no spaces"),
        pytest.param("garbage, 198.51.100.7", "198.51.100.7", id="garbage on the left"),
        pytest.param("198.51.100.7, garbage", "garbage", id="garbage is not trusted"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    forwarded_for: str, client: str
) -> None:
    """Entries a client wrote itself sit left of the first untrusted hop and are ignored."""
    facts, chain = client_facts(
        peer="10.0.0.2",
        scheme="https",
        host="h",
        forwarded_for=forwarded_for,
        forwarded_proto=None,
        trusted=TRUST_LB,
    )
    assert facts.ip == client
    assert chain.endswith(", 10.0.0.2")
    assert facts.proto == "https"


def test_a_scheme_the_client_prepended_is_not_believed() -> None:
    """Behind a proxy that appends, 'https, http' means the client spoke plain http."""
    facts, _ = client_facts(
        peer="10.0.0.2",
        scheme="http",
        host="h",
        forwarded_for="198.51.100.7",
        forwarded_proto="https, http",
        trusted=TRUST_LB,
    )
    assert facts.proto == "http"


def test_a_scheme_on_its_own_line_is_the_proxy_s() -> None:
    """The positive case: the trusted hop's own (rightmost) value is believed."""
    facts, _ = client_facts(
        peer="10.0.0.2",
        scheme="http",
        host="h",
        forwarded_for=None,
        forwarded_proto="http, https",
        trusted=TRUST_LB,
    )
    assert facts.proto == "https"


def test_forwarding_headers_are_the_chain_scheme_and_host() -> None:
    """The gateway sets X-Forwarded-For, -Proto and -Host from its own facts."""
    facts = ClientFacts("198.51.100.7", "https", "tools.example.com")
    assert forwarding_headers("198.51.100.7, 10.0.0.2", facts) == [
        ("X-Forwarded-For", "198.51.100.7, 10.0.0.2"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "tools.example.com"),
    ]


@pytest.mark.parametrize(
    "name", ["X-Forwarded-User", "x_forwarded_email", "X-Auth-Request-User", "Remote-User"]
)
def test_default_identity_names_are_stripped_even_when_the_config_renames_ours(name: str) -> None:
    """An upstream that still trusts a default header name never sees a client's forgery."""
    custom = IdentityHeaders.from_config({"X-Tool-User": "{username}"}, "X-Tool-Assertion")
    kept = filter_request_headers(
        [(name, "mallory"), ("X-Other", "1")], owned=custom.owned, drop_cookies=frozenset()
    )
    assert kept == [("X-Other", "1")]


def test_a_lone_surrogate_in_an_identity_value_becomes_a_replacement_character() -> None:
    """A value JSON allowed but UTF-8 cannot encode is sent as U+FFFD, never a crash."""
    headers = IdentityHeaders.from_config({"X-Name": "{name}"}, "X-Gateway-Assertion")
    who = Identity(sub="1", username="eve", name="Eve \ud800")
    assert headers.render(who, "r") == [("X-Name", "Eve %EF%BF%BD")]


def test_a_trusted_proxy_may_name_the_original_host_and_others_may_not() -> None:
    """X-Forwarded-Host is believed from a trusted peer only (its rightmost entry)."""
    trusted = TrustedProxies.parse(["10.0.0.0/8"])
    facts, _ = client_facts(
        peer="10.0.0.5",
        scheme="http",
        host="gw:8080",
        forwarded_for=None,
        forwarded_proto=None,
        forwarded_host="evil.example, tools.example.com",
        trusted=trusted,
    )
    assert facts.host == "tools.example.com"
    facts, _ = client_facts(
        peer="192.0.2.1",
        scheme="http",
        host="gw:8080",
        forwarded_for=None,
        forwarded_proto=None,
        forwarded_host="evil.example",
        trusted=trusted,
    )
    assert facts.host == "gw:8080"
