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
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from string import Template
from urllib.parse import quote

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
BRAND_CSS_PATH = "/_gateway/brand.css"
"""The stylesheet carrying ``branding.accent_color`` (CSP allows only our own styles)."""


@dataclass(frozen=True, slots=True)
class Brand:
    """What ``branding`` in the config puts on every page (gateway.config.branding)."""

    app_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None
    help_text: str | None = None
    support_contact: str | None = None

    @property
    def title_name(self) -> str:
        return self.app_name or DEFAULT_APP_NAME


DEFAULT_BRAND = Brand()
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
_WHOAMI = _load("whoami.html")
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


def _document(
    *,
    title: str,
    static_prefix: str,
    content: str,
    footer: str,
    head: str = "",
    brand: Brand = DEFAULT_BRAND,
) -> str:
    accent_link = ""
    if brand.accent_color:
        # The colour is in the URL so a changed colour is fetched anew despite caching.
        href = f"{BRAND_CSS_PATH}?c={quote(brand.accent_color.lstrip('#'))}"
        accent_link = f'<link rel="stylesheet" href="{_esc(href)}">\n'
    return _LAYOUT.substitute(
        title=_esc(title),
        static=_static(static_prefix),
        content=content,
        footer=footer,
        head=head,
        brand_css=accent_link,
    )


def brand_css(accent_color: str) -> str:
    """The stylesheet for ``branding.accent_color``: the card's top edge, the focus ring
    and plain links. The Hugging Face button keeps HF's own colours (HF's badge guidelines);
    text never takes the accent, so a light accent cannot break contrast."""
    colour = accent_color if re.fullmatch(r"#[0-9a-fA-F]{3,6}", accent_color) else "#ffd21e"
    return (
        f":root {{ --accent: {colour}; --focus-ring: {colour}; }}\n"
        ".card { border-top: 4px solid var(--accent); }\n"
        ".text-link { text-decoration-color: var(--accent); }\n"
    )


def _mark(brand: Brand) -> str:
    """The image above a page's title: the configured logo, else Hugging Face's."""
    if brand.logo_url:
        alt = _esc(brand.app_name or "")
        return f'<img class="brand-logo" src="{_url(brand.logo_url)}" alt="{alt}">'
    return _LOGO


def contact_link(contact: str) -> str:
    """``support_contact`` as a link: mailto: for an email address, else the https URL."""
    if "@" in contact and "://" not in contact:
        href = "mailto:" + quote(contact, safe="@.+-_")
        return f'<a class="text-link" href="{_esc(href)}">{_esc(contact)}</a>'
    return f'<a class="text-link" href="{_url(contact)}">{_esc(contact)}</a>'


def _footer(brand: Brand, request_id: str | None = None) -> str:
    footer = _PROTECTED_BY.substitute(app_name=_esc(DEFAULT_APP_NAME))
    if request_id:
        footer += "\n" + _REQUEST_ID.substitute(request_id=_esc(request_id))
    return footer


def render_sign_in(
    *,
    login_url: str,
    static_prefix: str,
    app_name: str = DEFAULT_APP_NAME,
    target_host: str | None = None,
    new_tab: bool = False,
    brand: Brand = DEFAULT_BRAND,
) -> str:
    """Render the branded sign-in page whose button links to ``login_url`` (in a new tab
    with ``new_tab``: the page may be framed). ``brand.app_name`` wins over ``app_name``."""
    name = brand.app_name
    if name:
        site = f'<strong class="host">{_esc(name)}</strong>'
    elif target_host:
        site = f'<strong class="host">{_esc(target_host)}</strong>'
    else:
        site = "This site"
    help_lines = ""
    if brand.help_text:
        help_lines += f'  <p class="card__help">{_esc(brand.help_text)}</p>\n'
    if brand.support_contact:
        help_lines += (
            '  <p class="card__note">Trouble signing in? Contact '
            f"{contact_link(brand.support_contact)}.</p>\n"
        )
    content = _SIGN_IN.substitute(
        mark=_mark(brand),
        logo=_LOGO,
        title=f"Sign in to {_esc(name)}" if name else "Sign in",
        explanation=f"{site} is protected. Sign in with your Hugging Face account to continue.",
        login_url=_url(login_url),
        target=_leave_frame(new_tab),
        sign_in_label=SIGN_IN_LABEL,
        help=help_lines,
    )
    return _document(
        title=f"Sign in · {name or app_name}",
        static_prefix=static_prefix,
        content=content,
        footer=_PROTECTED_BY.substitute(app_name=_esc(app_name)),
        brand=brand,
    )


@dataclass(frozen=True, slots=True)
class SwitchAccount:
    """ "Signed in as X: switch account": a sign-out (POST ``action``) that leads back to
    the sign-in page, and where the provider itself is signed out (HF keeps its own
    session, so signing in again would pick the same account)."""

    action: str
    provider_name: str = "Hugging Face"
    provider_url: str | None = "https://huggingface.co"
    whoami_url: str | None = None
    """"Who am I", linked from a 403 (the account's orgs and roles as the gateway sees them)."""


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
    brand: Brand = DEFAULT_BRAND,
    steps: Sequence[str] = (),
    ask_for_access: bool = False,
    switch_account: SwitchAccount | None = None,
    admin_details: Sequence[str] = (),
    back_url: str | None = "/",
    retry_url: str | None = None,
) -> str:
    """Render an error page (400 to 504, failed logins, policy denials).

    ``details`` become a bulleted list (a lone string is one item); ``steps`` a list of
    what the user can do next, with whom to ask (``brand.support_contact``) when
    ``ask_for_access`` or the status is a 5xx. A button is shown for each URL given: the
    first of "Grant access on Hugging Face" and "Sign in again" is the branded primary
    one; "Switch account" and "Sign out" are POST forms, because logout is a POST.
    ``admin_details`` (rule paths, reason codes) sit in a closed disclosure below.
    Every page links back (``back_url``, default the site's root; ``retry_url`` too).
    """
    if isinstance(details, str):
        details = (details,)
    all_steps = [_esc(step) for step in steps]
    contact = brand.support_contact
    if ask_for_access:
        who = contact_link(contact) if contact else "the person who runs this site"
        all_steps.append(f"Ask {who} for access, and quote the request ID below.")
    elif status >= 500 and contact:
        all_steps.append(
            f"If this keeps happening, tell {contact_link(contact)} and quote the request ID."
        )
    identity = ""
    if username:
        identity = _IDENTITY.substitute(username=_esc(username))
        if switch_account is not None:
            identity = _switch_account(username, switch_account, new_tab)
    content = _ERROR.substitute(
        status=int(status),
        status_kind="server" if status >= 500 else "client",
        status_phrase=_status_phrase(status),
        title=_esc(title),
        message=_esc(message),
        details=_details(details),
        steps=_steps(all_steps),
        identity=identity,
        actions=_error_actions(
            sign_in_url=sign_in_url,
            sign_out_url=sign_out_url,
            consent_url=consent_url,
            new_tab=new_tab,
        ),
        admin=_admin(admin_details),
        back=_back(back_url, retry_url),
    )
    return _document(
        title=f"{title} ({int(status)}) · {brand.title_name}",
        static_prefix=static_prefix,
        content=content,
        footer=_footer(brand, request_id),
        brand=brand,
    )


def render_whoami(
    *,
    username: str,
    static_prefix: str,
    sign_out_url: str,
    name: str = "",
    email: str | None = None,
    orgs: Sequence[tuple[str, str]] = (),
    scopes: Sequence[str] = (),
    session_expires: str | None = None,
    json_url: str | None = None,
    switch_account: SwitchAccount | None = None,
    brand: Brand = DEFAULT_BRAND,
) -> str:
    """Render "who am I": the account, its organizations with roles (``orgs`` are pairs
    of slug and role in words), the granted scopes, when the session ends, a sign-out
    button and, with ``switch_account``, how to change account."""
    rows = [("Username", _esc(username))]
    if name and name != username:
        rows.append(("Name", _esc(name)))
    if email:
        rows.append(("Email", _esc(email)))
    if session_expires:
        rows.append(("Session ends", _esc(session_expires)))
    facts = "".join(f"    <dt>{label}</dt><dd>{value}</dd>\n" for label, value in rows)
    if orgs:
        items = "".join(
            f'    <li><strong>{_esc(slug)}</strong> <span class="role">{_esc(role)}</span></li>\n'
            for slug, role in orgs
        )
        org_list = f'  <ul class="facts-list" aria-label="Organizations">\n{items}  </ul>\n'
    else:
        org_list = '  <p class="card__note">No organizations.</p>\n'
    if scopes:
        items = "".join(f"    <li><code>{_esc(scope)}</code></li>\n" for scope in scopes)
        scope_list = f'  <ul class="facts-list" aria-label="Permissions">\n{items}  </ul>\n'
    else:
        scope_list = '  <p class="card__note">No permissions granted.</p>\n'
    json_line = ""
    if json_url:
        json_line = (
            '  <p class="card__note">As JSON for scripts: '
            f'<a class="text-link" href="{_url(json_url)}">{_esc(json_url)}</a></p>\n'
        )
    switch = ""
    if switch_account is not None:
        switch = _provider_note(switch_account, new_tab=False)
    content = _WHOAMI.substitute(
        facts=facts,
        orgs=org_list,
        scopes=scope_list,
        sign_out=_POST_BUTTON.substitute(action=_url(sign_out_url), label="Sign out").replace(
            "button--secondary", "button--hf"
        ),
        switch=switch,
        json=json_line,
        back=_back("/", None),
    )
    return _document(
        title=f"Signed in as {username} · {brand.title_name}",
        static_prefix=static_prefix,
        content=content,
        footer=_footer(brand),
        brand=brand,
    )


def render_signed_out(*, sign_in_url: str, static_prefix: str, brand: Brand = DEFAULT_BRAND) -> str:
    """Render the page shown after logout, with a button to sign in again."""
    return _document(
        title=f"Signed out · {brand.title_name}",
        static_prefix=static_prefix,
        content=_SIGNED_OUT.substitute(
            logo=_LOGO,
            mark=_mark(brand),
            sign_in_url=_url(sign_in_url),
            sign_in_label=SIGN_IN_LABEL,
        ),
        footer=_footer(brand),
        brand=brand,
    )


def render_sign_out(
    *, action: str, cancel_url: str, static_prefix: str, brand: Brand = DEFAULT_BRAND
) -> str:
    """Render the sign-out confirmation: a "Sign out" button that POSTs to ``action``, and
    a way back to ``cancel_url``. A GET never signs out (a cross-site link could)."""
    return _document(
        title=f"Sign out · {brand.title_name}",
        static_prefix=static_prefix,
        content=_SIGN_OUT.substitute(
            logo=_mark(brand), action=_url(action), cancel_url=_url(cancel_url)
        ),
        footer=_footer(brand),
        brand=brand,
    )


def render_redirect(*, target: str, static_prefix: str, brand: Brand = DEFAULT_BRAND) -> str:
    """A page that moves the browser on to ``target`` at once, without script.

    Used after sign-in with SameSite=Strict cookies: a browser does not send a Strict
    cookie on a redirect chain that started on another site, but it does after this hop.
    """
    url = _url(target)
    return _document(
        title=f"Signed in · {brand.title_name}",
        static_prefix=static_prefix,
        head=f'<meta http-equiv="refresh" content="0;url={url}">\n',
        content=(
            '<section class="card card--centered" aria-labelledby="page-title">'
            f'<div class="card__mark">{_mark(brand)}</div>'
            '<h1 id="page-title" class="card__title">Signed in</h1>'
            f'<p class="card__lead"><a href="{url}">Continue</a></p></section>'
        ),
        footer=_footer(brand),
        brand=brand,
    )


def _switch_account(username: str, switch: SwitchAccount, new_tab: bool) -> str:
    form = _POST_BUTTON.substitute(action=_url(switch.action), label="Switch account")
    whoami = ""
    if switch.whoami_url:
        whoami = (
            f'  <p class="card__note"><a class="text-link" href="{_url(switch.whoami_url)}">'
            "What this site sees of your account</a></p>\n"
        )
    return (
        '  <div class="identity">\n'
        f"  <p>Signed in as <strong>{_esc(username)}</strong>. Wrong account?</p>\n"
        f"{form}{_provider_note(switch, new_tab)}{whoami}  </div>\n"
    )


def _provider_note(switch: SwitchAccount, new_tab: bool) -> str:
    """Why switching may need a sign-out at the provider too, with a link there."""
    name = _esc(switch.provider_name)
    where = name
    if switch.provider_url:
        where = (
            f'<a class="text-link" href="{_url(switch.provider_url)}"'
            f"{_leave_frame(new_tab)}>{name}</a>"
        )
    return (
        f'  <p class="card__note">{name} keeps you signed in on its own site: to pick '
        f"another account, sign out on {where} first (your avatar menu, then Sign out), "
        "then sign in here again.</p>\n"
    )


def _steps(steps: Sequence[str]) -> str:
    """What the user can do next (already escaped HTML)."""
    if not steps:
        return ""
    items = "".join(f"    <li>{step}</li>\n" for step in steps)
    return (
        '  <h2 class="section-title">What you can do</h2>\n'
        f'  <ul class="steps" aria-label="What you can do">\n{items}  </ul>\n'
    )


def _admin(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"      <li><code>{_esc(line)}</code></li>\n" for line in lines)
    return (
        '  <details class="admin">\n'
        "    <summary>Details for the site's administrators</summary>\n"
        f"    <ul>\n{items}    </ul>\n  </details>\n"
    )


def _back(back_url: str | None, retry_url: str | None) -> str:
    links = []
    if retry_url:
        links.append(f'<a class="text-link" href="{_url(retry_url)}">Try again</a>')
    if back_url:
        links.append(f'<a class="text-link" href="{_url(back_url)}">Back to the home page</a>')
    if not links:
        return ""
    return f'  <p class="back">{" · ".join(links)}</p>\n'


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
