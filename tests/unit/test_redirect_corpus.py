"""Open-redirect corpus for ``gateway.routing.RedirectPolicy``.

SECURITY.md section 1 and DESIGN.md section 4a: a post-login target is kept only when it is
a same-origin path or an absolute http(s) URL on public_url's host or an allowed host
(compared on label boundaries); anything else becomes ``/``.

Payloads live in ``tests/unit/data/``:

* ``redirect_attacks.txt``: every payload must become ``/``. It holds the minimum list from
  SECURITY.md, our own families (whitespace, backslashes, layered encoding, schemes, host
  confusion, IP literals, Unicode look-alikes, userinfo, http downgrade) and oauth2-proxy's
  ``testdata/openredirects.txt`` adapted to our host names.
* ``redirect_same_origin.txt``: payloads that look like open redirects but that browsers
  resolve on our own origin. The policy may keep or reject them; they must never resolve
  anywhere but an allowed host.

File format (also in each file's header): one payload per line, ``# `` starts a comment,
blank lines are skipped, and every payload line is decoded with
``codecs.decode(line, "unicode_escape")`` so the files stay printable ASCII: a literal
backslash is ``\\\\``, a tab ``\\t``, U+FF0F ``\\uff0f``. Payloads that do not fit on a line
(the empty string, targets longer than 2048 characters) and ``None`` are built here.
"""

from __future__ import annotations

import codecs
import unicodedata
import warnings
from pathlib import Path
from urllib.parse import unquote_plus, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing import RedirectPolicy

DATA = Path(__file__).parent / "data"

PUBLIC_URL = "https://tools.example.com"
HOSTS = ("grafana.example.com", "*.apps.example.com")
POLICY = RedirectPolicy(PUBLIC_URL, hosts=HOSTS)

# The demo runs on plain http and a loopback address.
LOOPBACK_URL = "http://127.0.0.1:8080"
LOOPBACK = RedirectPolicy(LOOPBACK_URL)


def load_payloads(name: str) -> list[str]:
    """Decode a payload file (format in the module docstring); fail loudly on a bad line."""
    payloads: list[str] = []
    text = (DATA / name).read_text(encoding="ascii")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line == "#" or line.startswith("# "):
            continue
        if not line.isprintable() or line != line.strip():
            # A raw tab, CR (a CRLF checkout) or stray space would silently change a payload.
            raise ValueError(f"{name}:{number}: write invisible characters as escapes")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an invalid escape such as "\e" is an error
            payloads.append(codecs.decode(line, "unicode_escape"))
    return payloads


def case_id(index: int, payload: str) -> str:
    """A short, unique, printable-ASCII test id."""
    return f"{index:04d}:{ascii(payload)[1:-1][:48]}"


def params(payloads: list[str]) -> list[object]:
    return [pytest.param(p, id=case_id(i, p)) for i, p in enumerate(payloads)]


ATTACKS = load_payloads("redirect_attacks.txt")
SAME_ORIGIN = load_payloads("redirect_same_origin.txt")

# Attacks that cannot be written on a line of the data file.
GENERATED_ATTACKS = [
    "",
    "/" + "a" * RedirectPolicy.MAX_LENGTH,
    "/dashboard?q=" + "a" * 4096,
    "https://tools.example.com/" + "a" * RedirectPolicy.MAX_LENGTH,
    "https://grafana.example.com/?q=" + "x" * 3000,
    "//evil.com/" + "a" * 3000,
    "/" + "%25" * 700 + "2f/evil.com",
]

# The minimum list from SECURITY.md section 1 and the brief; must stay in the data file.
REQUIRED = [
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\/evil.com",
    "/%5cevil.com",
    "/%2f%2fevil.com",
    "/%09/evil.com",
    "/%0a/evil.com",
    "/%0d/evil.com",
    "/%0b/evil.com",
    "/%0c/evil.com",
    "/%20/evil.com",
    "/\t/evil.com",
    "/./\\evil",
    "https:evil.com",
    "http://evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,x",
    "https://tools.example.com@evil.com",
    "https://evil.com#@tools.example.com",
    "https://tools.example.com.evil.com",
    "https://eviltools.example.com",
    "https://evilexample.com",
    "https://apps.example.com",
    "https://EVIL.COM",
    "https://evil.com.",
    "http://2130706433/",
    "http://0x7f000001/",
    "/\uff0fevil.com",
    "\uff0f\uff0fevil.com",
    "http://tools.example.com/",
    "http://grafana.example.com/",
    " //evil.com",
    "/%252f%252fevil.com",
    "/%25252f%25252fevil.com",
]

LEGITIMATE = [
    # Same-origin paths, with queries and fragments.
    "/",
    "/dashboard",
    "/a/b/c",
    "/a/b/c/",
    "/d/abc-123/my-dashboard?orgId=1&from=now-6h&to=now",
    "/search?q=a%20b",
    "/search?q=a+b&page=2",
    "/search?q=%E2%9C%93",
    "/%7Euser/files",
    "/a.b/c-d_e~f",
    "/a;jsessionid=1",
    "/api/v1/items?ids=1,2,3&sort=-created",
    "/#/route/x",
    "/app#section-2",
    "/a?b=c#d",
    "/?",
    "/#",
    # A URL in the query or fragment is data, not where the browser goes.
    "/x?next=https://evil.com",
    "/x?next=//evil.com",
    "/x?redirect=%2F%2Fevil.com",
    "/x#//evil.com",
    # Absolute URLs on public_url's host.
    "https://tools.example.com",
    "https://tools.example.com/",
    "https://tools.example.com/x?y=1#z",
    "https://tools.example.com/search?q=a%20b",
    "https://tools.example.com/x?next=https://evil.com",
    # Route hosts and allowed hosts, exact and under the wildcard (any depth).
    "https://grafana.example.com",
    "https://grafana.example.com/d/abc?orgId=1&var-host=web%2D01",
    "https://grafana.example.com?x=1",
    "https://grafana.example.com#frag",
    "https://x.apps.example.com/",
    "https://x.apps.example.com/x?y=1",
    "https://my-app-1.apps.example.com/",
    "https://a1.apps.example.com/",
    "https://a.b.apps.example.com/",
    "https://a.b.c.apps.example.com/deep/path?q=1#f",
    # Upper-case hosts and schemes.
    "https://TOOLS.EXAMPLE.COM/",
    "https://Tools.Example.Com/x",
    "https://GRAFANA.EXAMPLE.COM/d/abc",
    "https://X.APPS.EXAMPLE.COM/",
    "https://Deep.Sub.Apps.Example.Com/",
    "HTTPS://tools.example.com/",
    "Https://grafana.example.com/",
    # Explicit ports.
    "https://tools.example.com:443/x",
    "https://tools.example.com:8443/x",
    "https://grafana.example.com:3000/login",
    "https://x.apps.example.com:8443/",
    # Exactly MAX_LENGTH characters is still fine.
    "/" + "a" * (RedirectPolicy.MAX_LENGTH - 1),
]

LOOPBACK_LEGITIMATE = [
    "/",
    "/x",
    "/x?y=1#z",
    "/search?q=a%20b",
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8080/",
    "http://127.0.0.1:8080/x",
    "http://127.0.0.1:8080/x?y=1#z",
]

LOOPBACK_ATTACKS = [
    "http://127.0.0.1.evil.com/",
    "http://127.0.0.1.evil.com:8080/x",
    "//127.0.0.1.evil.com",
    "//127.0.0.1:8080",
    "//evil.com",
    "http://evil.com/",
    "http://127.0.0.1:8080@evil.com/",
    "http://127.0.0.1@evil.com",
    "http://evil.com#@127.0.0.1:8080",
    "http://evil.com?@127.0.0.1:8080",
    "http://127.0.0.1%2eevil.com/",
    "http://127.0.0.1:8080\\@evil.com",
    "http://127.0.0.1:8080:80/",
    "http://2130706433:8080/",
    "http://0x7f000001:8080/",
    "http://0177.0.0.1:8080/",
    "http://127.1:8080/",
    "http://localhost:8080/",
    "http://[::1]:8080/",
    "http://[::ffff:127.0.0.1]:8080/",
    "http://[127.0.0.1]:8080/",
    "http://127.0.0.1.:8080/",
    "http://127.0.0.10:8080/",
    "http://1127.0.0.1:8080/",
    "http://x127.0.0.1:8080/",
    "http:127.0.0.1:8080",
    "http:/127.0.0.1:8080",
    "/\\evil.com",
    "/%09/evil.com",
    "/%2f%2fevil.com",
    "javascript:alert(1)",
    "data:text/html,x",
]


# --- what "never leaves our origin" means -------------------------------------------------


def _allowed_host(host: str | None, base: str) -> bool:
    """The allowed hosts, restated independently of gateway.routing.host_matches."""
    if host is None:
        return False
    if base == LOOPBACK_URL:
        return host == "127.0.0.1"
    return host in ("tools.example.com", "grafana.example.com") or (
        host.endswith(".apps.example.com") and not host.startswith(".")
    )


def assert_stays_on_allowed_hosts(policy: RedirectPolicy, base: str, target: str) -> None:
    """sanitize() keeps ``target`` or returns "/", and the result resolves on an allowed host.

    Browsers drop tabs and newlines anywhere in a URL, strip leading/trailing C0 controls
    and spaces and read "\\" as "/", so a returned value must contain none of those; then
    urljoin, which resolves "/x" and "http(s)://host/x" the way browsers do, is a faithful
    stand-in for the browser.
    """
    result = policy.sanitize(target)
    assert result in ("/", target)
    assert policy.is_safe(target) == (result == target)
    assert "\\" not in result, f"backslash in {result!r}"
    for char in result:
        assert not char.isspace(), f"whitespace in {result!r}"
        assert unicodedata.category(char) != "Cc", f"control character in {result!r}"
    # Only shapes where urljoin and browsers agree: a rooted path or an absolute http(s) URL.
    is_path = result.startswith("/") and not result.startswith("//")
    assert is_path or result.lower().startswith(("https://", "http://")), result
    resolved = urlsplit(urljoin(base + "/", result))
    assert _allowed_host(resolved.hostname, base), f"{target!r} -> {urljoin(base, result)!r}"
    assert resolved.port is None or 0 < resolved.port < 65536
    if base.startswith("https:"):
        assert resolved.scheme == "https", f"{target!r} downgrades to http"


# --- the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", params(ATTACKS + GENERATED_ATTACKS))
def test_attack_becomes_root(payload: str) -> None:
    assert POLICY.sanitize(payload) == "/"
    assert POLICY.is_safe(payload) is False


@pytest.mark.parametrize("payload", params(SAME_ORIGIN))
def test_same_origin_lookalike_never_leaves_origin(payload: str) -> None:
    assert_stays_on_allowed_hosts(POLICY, PUBLIC_URL, payload)


def test_query_decoded_attacks_never_leave_origin() -> None:
    # The rd parameter reaches sanitize() already decoded once by the query parser, so an
    # attacker can deliver either spelling of a payload. Some decoded spellings are plain
    # same-origin paths (/%68ttp... becomes /http://evil.com), so the check is the origin
    # invariant rather than "/".
    variants = {unquote_plus(p) for p in ATTACKS} - set(ATTACKS)
    assert len(variants) > 100
    for variant in sorted(variants):
        assert_stays_on_allowed_hosts(POLICY, PUBLIC_URL, variant)


@pytest.mark.parametrize("target", params(LEGITIMATE))
def test_legitimate_target_is_kept(target: str) -> None:
    assert POLICY.sanitize(target) == target
    assert POLICY.is_safe(target) is True
    assert_stays_on_allowed_hosts(POLICY, PUBLIC_URL, target)


def test_none_becomes_root() -> None:
    assert POLICY.sanitize(None) == "/"
    assert POLICY.is_safe(None) is False
    assert LOOPBACK.sanitize(None) == "/"


def test_length_limit_is_exact() -> None:
    longest = "/" + "a" * (RedirectPolicy.MAX_LENGTH - 1)
    assert POLICY.sanitize(longest) == longest
    assert POLICY.sanitize(longest + "a") == "/"


@pytest.mark.parametrize("target", params(LOOPBACK_LEGITIMATE))
def test_loopback_demo_target_is_kept(target: str) -> None:
    assert LOOPBACK.sanitize(target) == target
    assert_stays_on_allowed_hosts(LOOPBACK, LOOPBACK_URL, target)


@pytest.mark.parametrize("payload", params(LOOPBACK_ATTACKS))
def test_loopback_demo_attack_becomes_root(payload: str) -> None:
    assert LOOPBACK.sanitize(payload) == "/"


# --- the corpus itself ---------------------------------------------------------------------


def test_corpus_is_large_and_holds_the_required_payloads() -> None:
    assert len(ATTACKS) >= 300
    missing = [p for p in REQUIRED if p not in ATTACKS]
    assert not missing, f"required payloads missing from redirect_attacks.txt: {missing}"
    for generated in GENERATED_ATTACKS[1:]:
        assert len(generated) > RedirectPolicy.MAX_LENGTH


def test_payload_files_have_no_duplicates_or_overlap() -> None:
    assert len(set(ATTACKS)) == len(ATTACKS)
    assert len(set(SAME_ORIGIN)) == len(SAME_ORIGIN)
    assert not set(ATTACKS) & set(SAME_ORIGIN)
    assert not set(ATTACKS) & set(LEGITIMATE)


def test_case_ids_are_printable_ascii_and_unique() -> None:
    corpora = (
        ATTACKS + GENERATED_ATTACKS,
        SAME_ORIGIN,
        LEGITIMATE,
        LOOPBACK_LEGITIMATE,
        LOOPBACK_ATTACKS,
    )
    for corpus in corpora:
        ids = [case_id(i, p) for i, p in enumerate(corpus)]
        assert len(set(ids)) == len(ids)
        assert all(i.isascii() and i.isprintable() for i in ids)


# --- properties ----------------------------------------------------------------------------

# Pieces that make random strings look like the payloads above, so Hypothesis reaches the
# absolute-URL and encoded-path branches instead of only rejecting noise.
_PIECES = [
    "https://",
    "http://",
    "HTTPS://",
    "javascript:",
    "data:",
    "//",
    "/",
    "\\",
    "%2f",
    "%2F",
    "%5c",
    "%25",
    "%2e",
    "%09",
    "%0a",
    "%00",
    "%40",
    "@",
    "#",
    "?",
    ":",
    ";",
    ".",
    "..",
    "[",
    "]",
    ":443",
    ":8080",
    ":99999",
    "tools.example.com",
    "grafana.example.com",
    "apps.example.com",
    "x.apps.example.com",
    "example.com",
    "evil.com",
    "127.0.0.1",
    "v1.",
    "\t",
    " ",
    "\n",
    "\x00",
    "\uff0f",
    "\u3002",
    "x",
]
_URL_LIKE = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=2)), max_size=12).map(
    "".join
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _URL_LIKE))
def test_sanitize_never_leaves_allowed_hosts(target: str) -> None:
    assert_stays_on_allowed_hosts(POLICY, PUBLIC_URL, target)
    assert_stays_on_allowed_hosts(LOOPBACK, LOOPBACK_URL, target)
