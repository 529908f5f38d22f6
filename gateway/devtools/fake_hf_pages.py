"""HTML pages of the fake: sign-in + consent, device code entry, messages and errors.

Pure rendering: data in, escaped HTML out. The pages work in a real browser without
JavaScript. Each account's submit button has the accessible name
``Sign in as <username>``; the refusal button is ``Deny``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;background:#f9fafb;color:#111;margin:0}
main{max-width:38rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;
border:1px solid #e5e7eb;border-radius:12px}
header{font-weight:700;margin-bottom:1rem}header small{font-weight:400;color:#6b7280}
fieldset{border:1px solid #e5e7eb;border-radius:8px;margin:.75rem 0;padding:.5rem 1rem}
legend{font-weight:600}label{display:block}code{background:#f3f4f6;padding:0 .25rem}
button{font:inherit;padding:.4rem 1rem;margin:.25rem .5rem .25rem 0;border-radius:8px;
border:1px solid #d1d5db;background:#fff;cursor:pointer}
button.primary{background:#FFD21E;border-color:#e0b800}
.signed-in{border-color:#FFD21E}.muted{color:#6b7280}
"""


@dataclass(frozen=True)
class OrgChoice:
    """One org checkbox: ``value`` is the org ``sub`` sent back as ``org``."""

    sub: str
    slug: str
    name: str
    role: str
    checked: bool


@dataclass(frozen=True)
class AccountChoice:
    """One account the visitor can sign in as."""

    username: str
    name: str
    orgs: Sequence[OrgChoice]
    signed_in: bool = False


@dataclass(frozen=True)
class ConsentView:
    """Everything the consent page shows; ``hidden`` is carried back in every form."""

    action: str
    app_name: str
    scopes: Sequence[str]
    hidden: Sequence[tuple[str, str]]
    accounts: Sequence[AccountChoice]


def page(title: str, body: str) -> str:
    """A complete HTML document around ``body`` (already escaped)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} - Hugging Face (fake)</title><style>{_STYLE}</style></head>"
        "<body><main><header>&#129303; Hugging Face <small>local fake provider</small></header>"
        f"{body}</main></body></html>"
    )


def notice_page(title: str, message: str) -> str:
    """A heading and one paragraph: errors shown on the provider itself, device outcomes."""
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def consent_page(view: ConsentView) -> str:
    """The sign-in + consent page: one form per account, plus a Deny form."""
    scopes = "".join(f"<li><code>{escape(s)}</code></li>" for s in view.scopes)
    accounts = "".join(_account_form(view, account) for account in view.accounts)
    deny = (
        f'<form method="post" action="{escape(view.action)}">{_hidden(view.hidden)}'
        '<button type="submit" name="action" value="deny">Deny</button></form>'
    )
    body = (
        f"<h1>Authorize {escape(view.app_name)}</h1>"
        f"<p><strong>{escape(view.app_name)}</strong> asks for these scopes:</p>"
        f"<ul>{scopes or '<li class=muted>(none)</li>'}</ul>"
        f"<h2>Choose an account</h2>{accounts}{deny}"
    )
    return page(f"Authorize {view.app_name}", body)


def device_code_page(action: str, problem: str | None) -> str:
    """Asks for the user code shown by a device (RFC 8628 verification URI)."""
    note = f"<p>{escape(problem)}</p>" if problem else ""
    body = (
        f"<h1>Connect a device</h1>{note}"
        f'<form method="get" action="{escape(action)}"><label>Code shown on your device '
        '<input name="user_code" autocomplete="off" required></label>'
        '<button type="submit" class="primary">Continue</button></form>'
    )
    return page("Connect a device", body)


def _account_form(view: ConsentView, account: AccountChoice) -> str:
    user = escape(account.username)
    orgs = "".join(_org_checkbox(org) for org in account.orgs)
    orgs_block = f"<p>Grant access to organizations:</p>{orgs}" if orgs else ""
    authorize = (
        '<button type="submit" class="primary" name="action" value="approve">Authorize</button>'
        if account.signed_in
        else ""
    )
    signed_in = " (signed in)" if account.signed_in else ""
    return (
        f'<form method="post" action="{escape(view.action)}">{_hidden(view.hidden)}'
        f'<input type="hidden" name="username" value="{user}">'
        f'<fieldset class="{"signed-in" if account.signed_in else ""}">'
        f"<legend>{user}{signed_in}</legend><p class=muted>{escape(account.name)}</p>"
        f"{orgs_block}{authorize}"
        f'<button type="submit" name="action" value="login">Sign in as {user}</button>'
        "</fieldset></form>"
    )


def _org_checkbox(org: OrgChoice) -> str:
    checked = " checked" if org.checked else ""
    return (
        f'<label><input type="checkbox" name="org" value="{escape(org.sub)}"{checked}> '
        f"{escape(org.slug)} <span class=muted>({escape(org.name)}, {escape(org.role)})</span>"
        "</label>"
    )


def _hidden(fields: Sequence[tuple[str, str]]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields
    )
