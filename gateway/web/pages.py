"""The HTML pages the gateway renders itself: sign-in, errors and signed-out.

Each ``render_*`` function is pure: keyword arguments in, a complete HTML document out.
Every interpolated value is HTML-escaped with quotes (so it is safe in text and in
attributes), and every URL must be relative or http(s). The pages carry no inline
script, no ``<style>`` and no ``style=``; their only stylesheet and images come from
``STATIC_DIR``, so they render offline and under ``CONTENT_SECURITY_POLICY``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from string import Template

from gateway.web.framing import page_headers

_HERE = Path(__file__).parent
STATIC_DIR: Path = _HERE / "static"
TEMPLATES_DIR: Path = _HERE / "templates"

# The only files the web layer serves under /_gateway/static/ (a test keeps this in step
# with the folder, so a stray file is never published by accident).
STATIC_FILES: dict[str, str] = {
    "gateway.css": "text/css; charset=utf-8",
    "hf-logo.svg": "image/svg+xml",
    "sign-in-with-hf-dark.svg": "image/svg+xml",
    "sign-in-with-hf-light.svg": "image/svg+xml",
}

# A policy every page rendered here works under: no script at all, styles and images from
# the gateway only, forms post back to the gateway only (gateway.web.framing: who may frame).
CONTENT_SECURITY_POLICY = page_headers()["Content-Security-Policy"]

DEFAULT_APP_NAME = "hf-gateway"
# The sign-in button's text and accessible name (HF's branding wording).
SIGN_IN_LABEL = "Sign in with Hugging Face"

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# Browsers drop these anywhere in a URL, and leading C0 controls and spaces, before parsing.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))


def _load(name: str) -> Template:
    return Template((TEMPLATES_DIR / name).read_text(encoding="utf-8"))


def _inline_svg(svg: str, css_class: str) -> str:
    """Turn a standalone SVG file into a decorative inline ``<svg>`` (no title, no ARIA name)."""
    view_box = re.search(r'viewBox="([^"]+)"', svg)
    if view_box is None:
        raise ValueError("an inline SVG needs a viewBox")
    body = svg[svg.index(">", svg.index("<svg")) + 1 : svg.rindex("</svg>")]
    body = re.sub(r"<title>.*?</title>", "", body, flags=re.DOTALL)
    body = re.sub(r">\s+<", "><", body.strip())
    return (
        f'<svg class="{css_class}" viewBox="{view_box.group(1)}" aria-hidden="true" '
        f'focusable="false">{body}</svg>'
    )


_LAYOUT = _load("layout.html")
_SIGN_IN = _load("sign_in.html")
_SIGNED_OUT = _load("signed_out.html")
_SIGN_OUT = _load("sign_out.html")
_ERROR = _load("error.html")
_LOGO = _inline_svg((STATIC_DIR / "hf-logo.svg").read_text(encoding="utf-8"), "hf-logo")

# Links that lead to Hugging Face's authorize page leave any frame: HF's pages refuse to be
# framed. A page that may be framed (server.frame_ancestors) opens them in a new tab, as HF
# advises for Spaces, whose iframe sandbox forbids navigating the top level but lets a
# popup escape the sandbox; any other page opens them at the top (the same tab).
_LINK_BUTTON = Template(
    '    <a class="button $kind" href="$href"$target>$icon<span>$label</span></a>\n'
)
_TOP = ' target="_top"'
_NEW_TAB = ' target="_blank" rel="noopener"'


def _leave_frame(new_tab: bool) -> str:
    return _NEW_TAB if new_tab else _TOP


_POST_BUTTON = Template(
    '    <form class="action-form" method="post" action="$action">'
    '<button class="button button--secondary" type="submit">$label</button></form>\n'
)
_ACTIONS = Template('  <div class="actions">\n$buttons  </div>\n')
_DETAILS = Template('  <ul class="details" aria-label="Details">\n$items  </ul>\n')
_IDENTITY = Template('  <p class="identity">Signed in as <strong>$username</strong></p>\n')
_REQUEST_ID = Template('<p class="footer__request-id">Request ID: <code>$request_id</code></p>')
_PROTECTED_BY = Template('<p class="footer__brand">Protected by $app_name</p>')


def _esc(value: str) -> str:
    return html.escape(value, quote=True)


def _url(url: str) -> str:
    """Escape a URL for an attribute, refusing schemes other than http and https.

    Raises ValueError for ``javascript:``, ``data:`` and the like, however they are
    disguised with whitespace or case, because a browser would run or open them.
    """
    probe = _URL_IGNORED.sub("", url).lstrip(_C0_AND_SPACE)
    scheme = _SCHEME.match(probe)
    if scheme is not None and scheme.group(1).lower() not in _ALLOWED_SCHEMES:
        raise ValueError(f"refusing to render a link with the {scheme.group(1)!r} scheme")
    return _esc(url)


def _static(static_prefix: str) -> str:
    return _url(static_prefix.rstrip("/"))


def _document(*, title: str, static_prefix: str, content: str, footer: str, head: str = "") -> str:
    return _LAYOUT.substitute(
        title=_esc(title), static=_static(static_prefix), content=content, footer=footer, head=head
    )


def render_sign_in(
    *,
    login_url: str,
    static_prefix: str,
    app_name: str = DEFAULT_APP_NAME,
    target_host: str | None = None,
    new_tab: bool = False,
) -> str:
    """Render the branded sign-in page whose button links to ``login_url`` (in a new tab
    with ``new_tab``: the page may be framed)."""
    site = f'<strong class="host">{_esc(target_host)}</strong>' if target_host else "This site"
    content = _SIGN_IN.substitute(
        logo=_LOGO,
        explanation=f"{site} is protected. Sign in with your Hugging Face account to continue.",
        login_url=_url(login_url),
        target=_leave_frame(new_tab),
        sign_in_label=SIGN_IN_LABEL,
    )
    return _document(
        title=f"Sign in · {app_name}",
        static_prefix=static_prefix,
        content=content,
        footer=_PROTECTED_BY.substitute(app_name=_esc(app_name)),
    )


def render_error(
    *,
    status: int,
    title: str,
    message: str,
    static_prefix: str,
    details: Sequence[str] = (),
    username: str | None = None,
    sign_in_url: str | None = None,
    sign_out_url: str | None = None,
    consent_url: str | None = None,
    request_id: str | None = None,
    new_tab: bool = False,
) -> str:
    """Render an error page (400 to 504, failed logins, policy denials).

    ``details`` become a bulleted list (a lone string is one item). A button is shown
    for each URL given: the first of "Grant access on Hugging Face" and "Sign in again"
    is the branded primary one; "Sign out" is a POST form, because logout is a POST.
    """
    if isinstance(details, str):
        details = (details,)
    content = _ERROR.substitute(
        status=int(status),
        status_kind="server" if status >= 500 else "client",
        status_phrase=_status_phrase(status),
        title=_esc(title),
        message=_esc(message),
        details=_details(details),
        identity=_IDENTITY.substitute(username=_esc(username)) if username else "",
        actions=_error_actions(
            sign_in_url=sign_in_url,
            sign_out_url=sign_out_url,
            consent_url=consent_url,
            new_tab=new_tab,
        ),
    )
    footer = _PROTECTED_BY.substitute(app_name=_esc(DEFAULT_APP_NAME))
    if request_id:
        footer += "\n" + _REQUEST_ID.substitute(request_id=_esc(request_id))
    return _document(
        title=f"{title} ({int(status)}) · {DEFAULT_APP_NAME}",
        static_prefix=static_prefix,
        content=content,
        footer=footer,
    )


def render_signed_out(*, sign_in_url: str, static_prefix: str) -> str:
    """Render the page shown after logout, with a button to sign in again."""
    return _document(
        title=f"Signed out · {DEFAULT_APP_NAME}",
        static_prefix=static_prefix,
        content=_SIGNED_OUT.substitute(
            logo=_LOGO, sign_in_url=_url(sign_in_url), sign_in_label=SIGN_IN_LABEL
        ),
        footer=_PROTECTED_BY.substitute(app_name=_esc(DEFAULT_APP_NAME)),
    )


def render_sign_out(*, action: str, cancel_url: str, static_prefix: str) -> str:
    """Render the sign-out confirmation: a "Sign out" button that POSTs to ``action``, and
    a way back to ``cancel_url``. A GET never signs out (a cross-site link could)."""
    return _document(
        title=f"Sign out · {DEFAULT_APP_NAME}",
        static_prefix=static_prefix,
        content=_SIGN_OUT.substitute(logo=_LOGO, action=_url(action), cancel_url=_url(cancel_url)),
        footer=_PROTECTED_BY.substitute(app_name=_esc(DEFAULT_APP_NAME)),
    )


def render_redirect(*, target: str, static_prefix: str) -> str:
    """A page that moves the browser on to ``target`` at once, without script.

    Used after sign-in with SameSite=Strict cookies: a browser does not send a Strict
    cookie on a redirect chain that started on another site, but it does after this hop.
    """
    url = _url(target)
    return _document(
        title=f"Signed in · {DEFAULT_APP_NAME}",
        static_prefix=static_prefix,
        head=f'<meta http-equiv="refresh" content="0;url={url}">\n',
        content=(
            '<section class="card card--centered" aria-labelledby="page-title">'
            f'<div class="card__mark">{_LOGO}</div>'
            '<h1 id="page-title" class="card__title">Signed in</h1>'
            f'<p class="card__lead"><a href="{url}">Continue</a></p></section>'
        ),
        footer=_PROTECTED_BY.substitute(app_name=_esc(DEFAULT_APP_NAME)),
    )


def _status_phrase(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return ""
    return f'<span class="status__phrase">{_esc(phrase)}</span>'


def _details(details: Sequence[str]) -> str:
    if not details:
        return ""
    items = "".join(f"    <li>{_esc(item)}</li>\n" for item in details)
    return _DETAILS.substitute(items=items)


def _error_actions(
    *, sign_in_url: str | None, sign_out_url: str | None, consent_url: str | None, new_tab: bool
) -> str:
    links = [
        (url, label, target)
        for url, label, target in (
            (consent_url, "Grant access on Hugging Face", _leave_frame(new_tab)),
            (sign_in_url, "Sign in again", ""),  # the sign-in page, which may be framed
        )
        if url
    ]
    buttons = [
        _LINK_BUTTON.substitute(
            kind="button--hf" if index == 0 else "button--secondary",
            href=_url(url),
            target=target,
            icon=_LOGO,
            label=label,
        )
        for index, (url, label, target) in enumerate(links)
    ]
    if sign_out_url:
        buttons.append(_POST_BUTTON.substitute(action=_url(sign_out_url), label="Sign out"))
    return _ACTIONS.substitute(buttons="".join(buttons)) if buttons else ""
