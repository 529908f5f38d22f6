"""The gateway's own HTML pages: escaping, accessibility, CSP-friendliness, static files."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gateway.web import pages

HOSTILE = "\"><script>alert(1)</script><img src=x onerror=alert(2)>'"
ESCAPED_HOSTILE = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
STATIC = "/_gateway/static"
SVG_NS = "{http://www.w3.org/2000/svg}"
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


# A small DOM built with the stdlib parser, enough to ask what a browser would see.


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str | None]
    parent: Element | None
    text: str = ""  # text content, leaving out aria-hidden subtrees (what a screen reader reads)
    children: list[Element] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The accessible name: aria-label if given, else the visible text."""
        label = self.attrs.get("aria-label")
        return label if label is not None else " ".join(self.text.split())

    def ancestors(self) -> list[Element]:
        found, node = [], self.parent
        while node is not None:
            found.append(node)
            node = node.parent
        return found


class Document(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []
        self.nesting_errors: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.stack[-1] if self.stack else None)
        if element.parent is not None:
            element.parent.children.append(element)
        self.elements.append(element)
        if tag not in VOID_ELEMENTS:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1].tag != tag:
            open_tag = self.stack[-1].tag if self.stack else None
            self.nesting_errors.append(f"</{tag}> closes <{open_tag}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if any(e.attrs.get("aria-hidden") == "true" for e in self.stack):
            return
        for element in self.stack:
            element.text += data

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def text(self) -> str:
        return self.one("body").name

    def controls(self) -> dict[str, Element]:
        """Links and buttons by accessible name."""
        return {e.name: e for e in self.elements if e.tag in ("a", "button")}


def sign_in(**overrides: str | None) -> str:
    kwargs: dict[str, str | None] = {
        "login_url": "/_gateway/login?rd=%2Fdash",
        "static_prefix": STATIC,
    }
    kwargs.update(overrides)
    return pages.render_sign_in(**kwargs)  # type: ignore[arg-type]


def error(**overrides: object) -> str:
    kwargs: dict[str, object] = {
        "status": 403,
        "title": "You don't have access",
        "message": "This tool's policy does not allow your account.",
        "static_prefix": STATIC,
    }
    kwargs.update(overrides)
    return pages.render_error(**kwargs)  # type: ignore[arg-type]


def signed_out(**overrides: str) -> str:
    kwargs = {"sign_in_url": "/_gateway/sign_in", "static_prefix": STATIC}
    kwargs.update(overrides)
    return pages.render_signed_out(**kwargs)  # type: ignore[arg-type]


def sign_out(**overrides: str) -> str:
    kwargs = {
        "action": "/_gateway/logout?rd=%2Fdash",
        "cancel_url": "/dash",
        "static_prefix": STATIC,
    }
    kwargs.update(overrides)
    return pages.render_sign_out(**kwargs)  # type: ignore[arg-type]


FULL_ERROR = {
    "details": ["You need the write role in acme", "Members of acme-research are allowed"],
    "username": "alice",
    "sign_in_url": "/_gateway/login?rd=%2F",
    "sign_out_url": "/_gateway/logout?rd=%2F",
    "consent_url": "https://huggingface.co/settings/connected-applications",
    "request_id": "req-0123456789abcdef",
}

ALL_PAGES: dict[str, Callable[[], str]] = {
    "sign-in": lambda: sign_in(target_host="grafana.example", app_name="acme gateway"),
    "sign-in without host": sign_in,
    "error with everything": lambda: error(**FULL_ERROR),
    "error, bare": lambda: error(status=502, title="Bad gateway", message="Upstream is down."),
    "signed-out": signed_out,
    "sign-out confirmation": sign_out,
}


@pytest.fixture(params=list(ALL_PAGES), ids=list(ALL_PAGES))
def rendered(request: pytest.FixtureRequest) -> str:
    return ALL_PAGES[request.param]()


# Escaping


HOSTILE_FIELDS: list[tuple[str, Callable[[], str]]] = [
    ("sign-in login_url", lambda: sign_in(login_url=HOSTILE)),
    ("sign-in app_name", lambda: sign_in(app_name=HOSTILE)),
    ("sign-in target_host", lambda: sign_in(target_host=HOSTILE)),
    ("sign-in static_prefix", lambda: sign_in(static_prefix=HOSTILE)),
    ("error title", lambda: error(title=HOSTILE)),
    ("error message", lambda: error(message=HOSTILE)),
    ("error details", lambda: error(details=["fine", HOSTILE])),
    ("error username", lambda: error(username=HOSTILE)),
    ("error sign_in_url", lambda: error(sign_in_url=HOSTILE)),
    ("error sign_out_url", lambda: error(sign_out_url=HOSTILE)),
    ("error consent_url", lambda: error(consent_url=HOSTILE)),
    ("error request_id", lambda: error(request_id=HOSTILE)),
    ("error static_prefix", lambda: error(static_prefix=HOSTILE)),
    ("signed-out sign_in_url", lambda: signed_out(sign_in_url=HOSTILE)),
    ("signed-out static_prefix", lambda: signed_out(static_prefix=HOSTILE)),
    ("sign-out action", lambda: sign_out(action=HOSTILE)),
    ("sign-out cancel_url", lambda: sign_out(cancel_url=HOSTILE)),
    ("sign-out static_prefix", lambda: sign_out(static_prefix=HOSTILE)),
]


@pytest.mark.parametrize(
    "render", [r for _, r in HOSTILE_FIELDS], ids=[name for name, _ in HOSTILE_FIELDS]
)
def test_hostile_input_is_escaped_in_every_field(render: Callable[[], str]) -> None:
    """Markup in any value is shown as text: it opens no tag and breaks out of no attribute."""
    page = render()
    assert ESCAPED_HOSTILE in page
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    doc = Document(page)
    assert not doc.nesting_errors
    assert not doc.all("script")
    assert not doc.all("img")
    assert all(not name.startswith("on") for e in doc.elements for name in e.attrs)


@pytest.mark.parametrize(
    ("render", "attribute"),
    [
        (lambda: sign_in(login_url=HOSTILE), ("a", "href")),
        (lambda: error(sign_in_url=HOSTILE), ("a", "href")),
        (lambda: error(sign_out_url=HOSTILE), ("form", "action")),
        (lambda: signed_out(sign_in_url=HOSTILE), ("a", "href")),
        (lambda: sign_out(action=HOSTILE), ("form", "action")),
        (lambda: sign_out(cancel_url=HOSTILE), ("a", "href")),
    ],
    ids=[
        "sign-in login_url",
        "error sign_in_url",
        "error sign_out_url",
        "signed-out",
        "sign-out action",
        "sign-out cancel_url",
    ],
)
def test_urls_survive_escaping_unchanged(
    render: Callable[[], str], attribute: tuple[str, str]
) -> None:
    """A browser decodes an escaped URL attribute back to exactly the URL given."""
    tag, name = attribute
    elements = Document(render()).all(tag)
    values = [
        e.attrs.get(name) for e in elements if "text-link" not in (e.attrs.get("class") or "")
    ]
    assert values == [HOSTILE]


def test_query_string_ampersands_are_escaped_in_links() -> None:
    """`&` in a URL is written as `&amp;`, and the link still points at the original URL."""
    url = "/_gateway/login?rd=%2Fa&x=1&copy=2"
    page = sign_in(login_url=url)
    assert 'href="/_gateway/login?rd=%2Fa&amp;x=1&amp;copy=2"' in page
    assert Document(page).controls()["Sign in with Hugging Face"].attrs["href"] == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "  javascript:alert(1)",
        "\x01javascript:alert(1)",
        "java\tscript:alert(1)",
        "jav\nascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
    ],
)
def test_links_with_script_schemes_are_refused(url: str) -> None:
    """A URL a browser would run or open as a document is refused, however it is disguised."""
    with pytest.raises(ValueError, match="scheme"):
        sign_in(login_url=url)
    with pytest.raises(ValueError, match="scheme"):
        error(consent_url=url)
    with pytest.raises(ValueError, match="scheme"):
        error(sign_out_url=url)
    with pytest.raises(ValueError, match="scheme"):
        sign_out(cancel_url=url)
    with pytest.raises(ValueError, match="scheme"):
        signed_out(sign_in_url=url)


@pytest.mark.parametrize(
    "url",
    ["https://huggingface.co/oauth/authorize?x=1", "http://localhost:8080/login", "/login", "?a=1"],
)
def test_relative_and_http_links_are_allowed(url: str) -> None:
    """Relative URLs and http(s) URLs are linked as given."""
    assert Document(sign_in(login_url=url)).controls()[pages.SIGN_IN_LABEL].attrs["href"] == url


# Strict-CSP friendliness


def test_pages_have_no_inline_script_or_style(rendered: str) -> None:
    """No <script>, <style>, style= or on*= handler: the pages work under a no-inline CSP."""
    assert not re.search(r"<script\b", rendered, re.IGNORECASE)
    assert not re.search(r"<style\b", rendered, re.IGNORECASE)
    assert not re.search(r"\sstyle\s*=", rendered, re.IGNORECASE)
    assert not re.search(r"\son[a-z]+\s*=", rendered, re.IGNORECASE)
    assert "javascript:" not in rendered.lower()


def test_pages_load_resources_only_from_the_static_prefix(rendered: str) -> None:
    """Stylesheet and icon come from the gateway's static folder: nothing external is fetched."""
    doc = Document(rendered)
    assert doc.one("link", rel="stylesheet").attrs["href"] == f"{STATIC}/gateway.css"
    loaded = [e.attrs.get("href") for e in doc.all("link")] + [
        e.attrs.get("src") for e in doc.elements if "src" in e.attrs
    ]
    for url in loaded:
        assert url is not None and url.startswith(f"{STATIC}/"), url
        assert url.removeprefix(f"{STATIC}/") in pages.STATIC_FILES
    assert not doc.all("script") and not doc.all("iframe") and not doc.all("object")


@pytest.mark.parametrize("prefix", ["/gw/static", "/gw/static/", "https://gw.example/s"])
def test_stylesheet_link_uses_the_static_prefix(prefix: str) -> None:
    """The stylesheet is linked under static_prefix, with exactly one slash before the name."""
    expected = prefix.rstrip("/") + "/gateway.css"
    for page in (
        sign_in(static_prefix=prefix),
        error(static_prefix=prefix),
        signed_out(static_prefix=prefix),
    ):
        assert Document(page).one("link", rel="stylesheet").attrs["href"] == expected


def test_content_security_policy_forbids_scripts_and_inline_styles() -> None:
    """The advertised CSP allows no script and only same-origin stylesheets."""
    directives = dict(d.strip().split(" ", 1) for d in pages.CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["style-src"] == "'self'"
    assert "script-src" not in directives
    assert directives["frame-ancestors"] == "'none'"


# Structure and accessibility


def test_pages_are_complete_well_nested_documents(rendered: str) -> None:
    """Every page is a full HTML document whose elements close in order, with landmarks."""
    assert rendered.startswith("<!doctype html>")
    doc = Document(rendered)
    assert not doc.nesting_errors
    assert not doc.stack
    assert doc.one("html").attrs["lang"] == "en"
    assert (
        doc.one("meta", name="viewport").attrs["content"] == "width=device-width, initial-scale=1"
    )
    assert doc.one("meta", charset="utf-8").parent is doc.one("head")
    assert doc.one("main").parent is doc.one("body")
    assert doc.one("footer").parent is doc.one("body")
    assert doc.one("title").name
    assert doc.one("h1").name


def test_inline_svgs_are_hidden_from_assistive_technology(rendered: str) -> None:
    """The logos are decoration: every inline <svg> is aria-hidden and not focusable."""
    for svg in Document(rendered).all("svg"):
        assert svg.attrs.get("aria-hidden") == "true"
        assert svg.attrs.get("focusable") == "false"


def test_sign_in_page_has_the_branded_button_linking_to_login() -> None:
    """One link named exactly "Sign in with Hugging Face" leads to login_url, logo inside."""
    doc = Document(sign_in(login_url="/_gateway/login?rd=%2Fboard"))
    links = [e for e in doc.all("a") if e.name == "Sign in with Hugging Face"]
    assert len(links) == 1
    button = links[0]
    assert button.attrs["href"] == "/_gateway/login?rd=%2Fboard"
    assert "button--hf" in (button.attrs.get("class") or "").split()
    assert [child.tag for child in button.children][0] == "svg"


def test_sign_in_page_names_the_protected_host() -> None:
    """The explanation names the protected host, and the title the gateway's name."""
    doc = Document(sign_in(target_host="grafana.example", app_name="Acme Gateway"))
    assert (
        "grafana.example is protected. Sign in with your Hugging Face account to continue."
        in doc.text()
    )
    assert "Acme Gateway" in doc.one("title").name
    assert "Protected by Acme Gateway" in doc.one("footer").name


def test_sign_in_page_without_a_host_speaks_of_this_site() -> None:
    """With no target_host the explanation still reads as a sentence."""
    assert (
        "This site is protected. Sign in with your Hugging Face account to continue."
        in Document(sign_in()).text()
    )


def test_signed_out_page_offers_to_sign_in_again() -> None:
    """The signed-out page says so and links to sign_in_url."""
    doc = Document(signed_out(sign_in_url="/_gateway/sign_in?rd=%2F"))
    assert doc.one("h1").name == "You have been signed out"
    assert doc.controls()[pages.SIGN_IN_LABEL].attrs["href"] == "/_gateway/sign_in?rd=%2F"


def test_sign_out_confirmation_posts_the_sign_out_and_offers_a_way_back() -> None:
    """A GET of /_gateway/logout only shows this page: "Sign out" submits a POST form to
    the action (rd carried along), and "Stay signed in" links back to the target."""
    doc = Document(sign_out())
    assert doc.one("h1").name == "Sign out?"
    button = doc.controls()["Sign out"]
    assert (button.tag, button.attrs.get("type")) == ("button", "submit")
    form = next(a for a in button.ancestors() if a.tag == "form")
    assert form.attrs.get("method") == "post"
    assert form.attrs.get("action") == "/_gateway/logout?rd=%2Fdash"
    assert doc.controls()["Stay signed in"].attrs["href"] == "/dash"
    assert not [a for a in doc.all("a") if "logout" in (a.attrs.get("href") or "")]


# Error page


@pytest.mark.parametrize(
    ("status", "phrase", "kind"),
    [
        (400, "Bad Request", "client"),
        (401, "Unauthorized", "client"),
        (403, "Forbidden", "client"),
        (404, "Not Found", "client"),
        (502, "Bad Gateway", "server"),
        (503, "Service Unavailable", "server"),
        (504, "Gateway Timeout", "server"),
    ],
)
def test_error_page_shows_status_title_and_message(status: int, phrase: str, kind: str) -> None:
    """The status code and its phrase, the title as heading, and the message are shown."""
    doc = Document(error(status=status, title="Something happened", message="Details here."))
    badge = doc.one("p", class_=f"status status--{kind}")
    assert badge.name == f"{status} {phrase}"
    assert doc.one("h1").name == "Something happened"
    assert "Details here." in doc.text()
    assert str(status) in doc.one("title").name


def test_error_page_with_an_unknown_status_shows_only_the_code() -> None:
    """A status without a standard phrase still renders."""
    assert Document(error(status=499)).one("p", class_="status status--client").name == "499"


def test_error_details_are_a_bulleted_list() -> None:
    """Each detail is one list item, in order; no list is drawn without details."""
    doc = Document(error(details=["You need the write role in acme", "Not before 09:00"]))
    assert [li.name for li in doc.all("li")] == [
        "You need the write role in acme",
        "Not before 09:00",
    ]
    assert not Document(error()).all("ul")


def test_a_lone_detail_string_is_one_item_not_one_per_character() -> None:
    """Passing a str as details gives one bullet."""
    assert [li.name for li in Document(error(details="only one")).all("li")] == ["only one"]


def test_error_page_names_the_signed_in_user_only_when_given() -> None:
    """ "Signed in as <username>" appears with a username and not without."""
    assert "Signed in as alice" in Document(error(username="alice")).text()
    assert "Signed in as" not in Document(error()).text()


def test_request_id_is_shown_only_when_given() -> None:
    """The request id goes in the footer so a user can quote it."""
    assert "Request ID: req-42" in Document(error(request_id="req-42")).one("footer").name
    assert "Request ID" not in error()


URL_ARGS = {
    "consent_url": ("Grant access on Hugging Face", "https://huggingface.co/oauth/authorize?x=1"),
    "sign_in_url": ("Sign in again", "/_gateway/login?rd=%2Fx"),
    "sign_out_url": ("Sign out", "/_gateway/logout"),
}
BACK = "Back to the home page"
URL_COMBINATIONS = [
    combo for size in range(len(URL_ARGS) + 1) for combo in itertools.combinations(URL_ARGS, size)
]


@pytest.mark.parametrize("given", URL_COMBINATIONS, ids=lambda c: "+".join(c) or "none")
def test_error_page_shows_a_control_for_each_url_given_and_no_other(
    given: tuple[str, ...],
) -> None:
    """Exactly the buttons whose URL was passed are drawn, each pointing at its URL."""
    doc = Document(error(**{arg: URL_ARGS[arg][1] for arg in given}))
    controls = doc.controls()
    assert set(controls) == {URL_ARGS[arg][0] for arg in given} | {BACK}
    assert controls[BACK].attrs.get("href") == "/"
    for arg in given:
        label, url = URL_ARGS[arg]
        control = controls[label]
        target = control.attrs.get("href") if control.tag == "a" else None
        if control.tag == "button":
            form = next(a for a in control.ancestors() if a.tag == "form")
            target = form.attrs.get("action")
        assert target == url
    assert bool(doc.all("div", class_="actions")) == bool(given)


def test_sign_out_is_a_post_form_not_a_link() -> None:
    """Logout only accepts POST, so "Sign out" submits a form; no link points at it."""
    doc = Document(error(sign_out_url="/_gateway/logout?rd=%2F"))
    button = doc.controls()["Sign out"]
    assert button.tag == "button"
    assert button.attrs.get("type") == "submit"
    form = next(a for a in button.ancestors() if a.tag == "form")
    assert form.attrs.get("method") == "post"
    assert form.attrs.get("action") == "/_gateway/logout?rd=%2F"
    assert not [a for a in doc.all("a") if "logout" in (a.attrs.get("href") or "")]


def test_only_the_first_provider_action_is_the_branded_primary_button() -> None:
    """With consent and sign-in links, "Grant access" is the yellow one and sign-in secondary."""
    controls = Document(error(**FULL_ERROR)).controls()
    assert "button--hf" in (controls["Grant access on Hugging Face"].attrs["class"] or "")
    assert "button--secondary" in (controls["Sign in again"].attrs["class"] or "")
    only_sign_in = Document(error(sign_in_url="/login")).controls()
    assert "button--hf" in (only_sign_in["Sign in again"].attrs["class"] or "")


# Static files and templates


def test_static_files_lists_exactly_the_files_in_the_static_folder() -> None:
    """The server serves what the folder holds: nothing missing, nothing unlisted."""
    on_disk = {p.name for p in pages.STATIC_DIR.iterdir() if p.is_file()}
    assert set(pages.STATIC_FILES) == on_disk
    assert {"gateway.css", "hf-logo.svg", "sign-in-with-hf-light.svg"} <= on_disk
    assert "sign-in-with-hf-dark.svg" in on_disk


@pytest.mark.parametrize("name", sorted(pages.STATIC_FILES))
def test_static_files_have_the_content_type_of_their_extension(name: str) -> None:
    """CSS is served as text/css, SVG as image/svg+xml."""
    expected = {".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
    assert pages.STATIC_FILES[name] == expected[Path(name).suffix]


@pytest.mark.parametrize("name", sorted(n for n in pages.STATIC_FILES if n.endswith(".svg")))
def test_static_svgs_are_well_formed_svg_documents(name: str) -> None:
    """Each SVG parses as XML with an <svg> root, a viewBox, a title, and no script."""
    root = ET.parse(pages.STATIC_DIR / name).getroot()  # noqa: S314 - our own files
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("viewBox")
    assert root.find(f"{SVG_NS}title") is not None
    assert not list(root.iter(f"{SVG_NS}script"))
    assert not list(root.iter(f"{SVG_NS}foreignObject"))
    assert all(not a.startswith("on") for e in root.iter() for a in e.attrib)


@pytest.mark.parametrize(
    ("name", "background", "text"),
    [
        ("sign-in-with-hf-light.svg", "#FFD21E", "#000000"),
        ("sign-in-with-hf-dark.svg", "#0B0F19", "#FFFFFF"),
    ],
)
def test_badges_are_the_brand_button_in_both_variants(
    name: str, background: str, text: str
) -> None:
    """Light badge: HF yellow with black text; dark badge: near-black with white text."""
    root = ET.parse(pages.STATIC_DIR / name).getroot()  # noqa: S314 - our own files
    assert root.get("aria-label") == "Sign in with Hugging Face"
    rect = root.find(f"{SVG_NS}rect")
    label = root.find(f"{SVG_NS}text")
    assert rect is not None and rect.get("fill") == background
    assert label is not None and label.text == "Sign in with Hugging Face"
    assert label.get("fill") == text
    assert root.find(f"{SVG_NS}svg") is not None, "the badge carries the logo"


def test_stylesheet_fetches_nothing_external() -> None:
    """gateway.css imports nothing and loads no fonts or images from the network."""
    css = (pages.STATIC_DIR / "gateway.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert "@font-face" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    assert "prefers-color-scheme: dark" in css
    assert ":focus-visible" in css


def test_rendering_reads_no_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Templates and the logo are loaded once at import, not on every request."""

    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("a page read a file while rendering")

    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    for render in ALL_PAGES.values():
        assert render().startswith("<!doctype html>")


# Branding, next steps, "who am I" (issue 11)

BRAND = pages.Brand(
    app_name="Acme Tools",
    logo_url="https://cdn.acme.test/logo.svg",
    accent_color="#0055aa",
    help_text="Use your acme account.",
    support_contact="it-help@acme.test",
)


def test_branding_reaches_the_sign_in_page() -> None:
    """App name in the heading and title, the logo instead of HF's, help text, contact."""
    doc = Document(sign_in(brand=BRAND))  # type: ignore[arg-type]
    assert doc.one("h1").name == "Sign in to Acme Tools"
    assert "Acme Tools" in doc.one("title").name
    logo = doc.one("img", class_="brand-logo")
    assert logo.attrs["src"] == "https://cdn.acme.test/logo.svg"
    assert logo.attrs["alt"] == "Acme Tools"
    assert "Use your acme account." in doc.text()
    contact = next(a for a in doc.all("a") if a.name == "it-help@acme.test")
    assert contact.attrs["href"] == "mailto:it-help@acme.test"
    assert '/_gateway/brand.css?c=0055aa"' in sign_in(brand=BRAND)  # type: ignore[arg-type]
    # The HF button keeps its label and HF's look whatever the branding.
    assert "button--hf" in (doc.controls()[pages.SIGN_IN_LABEL].attrs["class"] or "")


def test_without_branding_the_sign_in_page_is_the_plain_one() -> None:
    """The twin: no logo image, no help text, no contact, no accent stylesheet."""
    page = sign_in()
    doc = Document(page)
    assert doc.one("h1").name == "Sign in"
    assert not doc.all("img")
    assert "brand.css" not in page
    assert "Trouble signing in" not in doc.text()


def test_a_contact_url_is_linked_as_it_is() -> None:
    brand = pages.Brand(support_contact="https://help.acme.test/access")
    doc = Document(error(ask_for_access=True, brand=brand))
    link = next(a for a in doc.all("a") if a.name == "https://help.acme.test/access")
    assert link.attrs["href"] == "https://help.acme.test/access"


def test_a_403_names_whom_to_ask_when_a_contact_is_configured() -> None:
    doc = Document(error(ask_for_access=True, brand=BRAND))
    steps = [li.name for li in doc.one("ul", class_="steps").children]
    assert steps == ["Ask it-help@acme.test for access, and quote the request ID below."]


def test_a_403_without_a_contact_says_to_ask_the_site_owner() -> None:
    """The twin: the step is still there, naming no address."""
    doc = Document(error(ask_for_access=True))
    steps = [li.name for li in doc.one("ul", class_="steps").children]
    assert steps == [
        "Ask the person who runs this site for access, and quote the request ID below."
    ]
    assert not [a for a in doc.all("a") if (a.attrs.get("href") or "").startswith("mailto:")]


def test_server_errors_name_the_contact_only_when_there_is_one() -> None:
    with_contact = Document(error(status=502, title="t", message="m", brand=BRAND)).text()
    assert "If this keeps happening, tell it-help@acme.test" in with_contact
    assert "What you can do" not in Document(error(status=502, title="t", message="m")).text()


SWITCH = pages.SwitchAccount(
    "/_gateway/logout?rd=%2F_gateway%2Fsign_in%3Frd%3D%252F",
    "Hugging Face",
    "https://huggingface.co",
)


def test_switch_account_signs_out_and_says_hf_may_need_a_sign_out_too() -> None:
    doc = Document(error(username="bob", switch_account=SWITCH))
    button = doc.controls()["Switch account"]
    form = next(a for a in button.ancestors() if a.tag == "form")
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == SWITCH.action
    text = doc.text()
    assert "Signed in as bob. Wrong account?" in text
    assert "sign out on Hugging Face first" in text
    assert doc.controls()["Hugging Face"].attrs["href"] == "https://huggingface.co"
    assert "Sign out" not in doc.controls(), "no sign_out_url, no plain sign-out"
    assert "What this site sees of your account" not in doc.controls()
    linked = pages.SwitchAccount(SWITCH.action, whoami_url="/_gateway/whoami")
    controls = Document(error(username="bob", switch_account=linked)).controls()
    assert controls["What this site sees of your account"].attrs["href"] == "/_gateway/whoami"


def test_without_switch_account_the_page_offers_the_plain_sign_out() -> None:
    doc = Document(error(username="bob", sign_out_url="/_gateway/logout"))
    assert "Switch account" not in doc.controls()
    assert "Sign out" in doc.controls()
    assert "keeps you signed in" not in doc.text()


def test_rule_paths_sit_only_in_the_administrators_disclosure() -> None:
    page = error(
        details=["Not a member of acme."], admin_details=["rule_failed allow[0].org not a member"]
    )
    doc = Document(page)
    disclosure = doc.one("details", class_="admin")
    assert "administrators" in disclosure.name
    assert "allow[0].org" in disclosure.name
    assert page.count("allow[0]") == 1
    assert "<details" not in error(details=["Not a member of acme."])


def test_every_error_page_links_back_and_a_server_error_can_retry() -> None:
    doc = Document(error(status=502, title="t", message="m", retry_url="/dash?x=1"))
    assert doc.controls()["Back to the home page"].attrs["href"] == "/"
    assert doc.controls()["Try again"].attrs["href"] == "/dash?x=1"
    assert "Try again" not in Document(error()).controls()


def test_brand_css_colours_only_edges_and_focus_never_text() -> None:
    css = pages.brand_css("#0055aa")
    assert "--accent: #0055aa" in css
    assert "color: var(--accent)" not in css.replace("decoration-color", "")
    assert "button--hf" not in css
    assert "#ffd21e" in pages.brand_css("red;}body{display:none")


def whoami(**overrides: object) -> str:
    kwargs: dict[str, object] = {
        "username": "alice",
        "name": "Alice A.",
        "email": "alice@acme.test",
        "orgs": [("acme", "write"), ("beta", "not granted to this app")],
        "scopes": ["openid", "profile"],
        "session_expires": "2026-12-05 20:00 UTC",
        "static_prefix": STATIC,
        "sign_out_url": "/_gateway/logout",
        "json_url": "/_gateway/userinfo",
        "switch_account": SWITCH,
    }
    kwargs.update(overrides)
    return pages.render_whoami(**kwargs)  # type: ignore[arg-type]


def test_whoami_shows_the_account_orgs_scopes_expiry_and_sign_out() -> None:
    doc = Document(whoami())
    text = doc.text()
    for expected in ("alice", "Alice A.", "alice@acme.test", "2026-12-05 20:00 UTC"):
        assert expected in text
    orgs = [li.name for li in doc.one("ul", aria_label="Organizations").children]
    assert orgs == ["acme write", "beta not granted to this app"]
    scopes = [li.name for li in doc.one("ul", aria_label="Permissions").children]
    assert scopes == ["openid", "profile"]
    sign_out = doc.controls()["Sign out"]
    assert next(a for a in sign_out.ancestors() if a.tag == "form").attrs["method"] == "post"
    assert doc.controls()["/_gateway/userinfo"].attrs["href"] == "/_gateway/userinfo"


def test_whoami_without_orgs_or_scopes_says_so() -> None:
    text = Document(whoami(orgs=[], scopes=[], email=None, session_expires=None)).text()
    assert "No organizations." in text
    assert "No permissions granted." in text
    assert "Session ends" not in text


def test_whoami_escapes_what_it_shows() -> None:
    page = whoami(username=HOSTILE, orgs=[(HOSTILE, HOSTILE)], scopes=[HOSTILE])
    assert ESCAPED_HOSTILE in page
    assert "<script" not in page.lower()
