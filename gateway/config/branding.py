"""The ``branding`` section: what the gateway's own pages say and look like.

Every value is checked when the configuration loads; a refusal names the reason and the
nearest value that would be accepted (docs/pages.md lists what each key changes).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TEXT = 300
"""Longest app_name / help_text accepted: a page shows them whole."""


def nearest_colour(value: str) -> str:
    """The closest #rrggbb to a mistyped colour: its hex digits, padded or cut to six."""
    digits = "".join(_HEX_DIGITS.findall(value))
    if len(digits) == 3:
        return "#" + digits.lower()
    return "#" + (digits + "000000")[:6].lower()


def _https_form(value: str) -> str:
    parts = urlsplit(value)
    if parts.netloc:
        return parts._replace(scheme="https").geturl()
    return "https://" + value.split("://", 1)[-1].lstrip("/")


class BrandingConfig(BaseModel):
    """Names, colours and contacts shown on the sign-in, error and account pages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_name: str | None = Field(
        default=None,
        description="The name the pages give what sits behind the gateway, in titles and "
        "headings (default: the host name, 'This site' when there is none)",
    )
    logo_url: str | None = Field(
        default=None,
        description="An image shown above the sign-in button instead of the Hugging Face "
        "logo: an https:// URL or a path on this site",
    )
    accent_color: str | None = Field(
        default=None,
        description="The pages' accent colour (card edge, focus ring, links), as #rgb or "
        "#rrggbb; the Sign in with Hugging Face button keeps HF's colours",
    )
    help_text: str | None = Field(
        default=None, description="A sentence shown under the sign-in button"
    )
    support_contact: str | None = Field(
        default=None,
        description="Who refused users should ask: an email address or an https:// URL; "
        "error pages name it",
    )
    skip_sign_in_page: bool = Field(
        default=False,
        description="Send browsers straight to Hugging Face instead of showing the "
        "sign-in page first (inside a frame the page is still shown)",
    )

    @field_validator("app_name", "help_text")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = " ".join(_CONTROL.sub(" ", value).split())
        if not cleaned:
            raise ValueError("must not be empty: leave the key out for the default")
        if cleaned != value:
            raise ValueError(f"must be one line without control characters: use {cleaned!r}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters: use {value[:MAX_TEXT]!r}")
        return value

    @field_validator("accent_color")
    @classmethod
    def _accent(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HEX_COLOUR.match(value):
            raise ValueError(
                f"{value!r} is not a colour as #rgb or #rrggbb: use {nearest_colour(value)!r}"
            )
        return value.lower()

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(c in value for c in " \t\r\n\\\"'<>") or _CONTROL.search(value):
            raise ValueError(f"{value!r} holds a blank, quote or backslash: percent-encode it")
        if value.startswith("/") and not value.startswith("//"):
            return value
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if value.startswith("//") or parts.scheme == "http":
            raise ValueError(
                f"{value!r} would load the logo over plain http or an unnamed scheme: "
                f"use {_https_form(value)!r}"
            )
        if parts.scheme:
            raise ValueError(
                f"{value!r} is not an https:// URL or a path on this site: use "
                "'https://example.com/logo.svg' or '/static/logo.svg'"
            )
        if "/" in value and "." in value.split("/", 1)[0]:
            raise ValueError(f"{value!r} has no scheme: use {'https://' + value!r}")
        return _relative_refused(value)

    @field_validator("support_contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip()
        if stripped.lower().startswith("mailto:"):
            address = stripped[len("mailto:") :]
            raise ValueError(f"write the email address without mailto: use {address!r}")
        if "@" in stripped and "://" not in stripped:
            if _EMAIL.match(stripped) and "." in stripped.rpartition("@")[2]:
                if stripped != value:
                    raise ValueError(f"must have no surrounding blanks: use {stripped!r}")
                return value
            local, _, domain = stripped.rpartition("@")
            fixed = f"{re.sub(r'[^A-Za-z0-9._+-]', '', local) or 'support'}@"
            fixed += re.sub(r"[^A-Za-z0-9.-]", "", domain).strip(".") or "example.com"
            if "." not in fixed.rpartition("@")[2]:
                fixed += ".com"
            raise ValueError(f"{value!r} is not an email address: use {fixed!r}")
        parts = urlsplit(stripped)
        if parts.scheme == "https" and parts.hostname and stripped == value:
            if any(c in value for c in " \t\"'<>\\") or _CONTROL.search(value):
                raise ValueError(f"{value!r} holds a blank or quote: percent-encode it")
            return value
        if parts.scheme == "http" and parts.hostname:
            raise ValueError(f"{value!r} must be https: use {_https_form(stripped)!r}")
        if not parts.scheme and "." in stripped.split("/", 1)[0]:
            raise ValueError(f"{value!r} is not a URL: use {'https://' + stripped!r}")
        raise ValueError(
            f"{value!r} is not an email address or an https:// URL: use for example "
            "'it-help@example.com' or 'https://example.com/help'"
        )


def _relative_refused(value: str) -> str:
    raise ValueError(
        f"{value!r} is neither an https:// URL nor a path starting with /: use {'/' + value!r}"
    )
