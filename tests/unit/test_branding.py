"""The ``branding`` section: each value checked at load, refusals with the nearest valid one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config.branding import BrandingConfig


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        BrandingConfig(**values)  # type: ignore[arg-type]
    (error,) = caught.value.errors()
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("accent_color", "#0055AA", "#0055aa"),
        ("accent_color", "#f0a", "#f0a"),
        ("logo_url", "https://cdn.acme.test/logo.svg", "https://cdn.acme.test/logo.svg"),
        ("logo_url", "/static/logo.png", "/static/logo.png"),
        ("support_contact", "it-help@acme.test", "it-help@acme.test"),
        ("support_contact", "https://help.acme.test/access", "https://help.acme.test/access"),
        ("app_name", "Acme Tools", "Acme Tools"),
        ("help_text", "Use your acme account.", "Use your acme account."),
    ],
)
def test_valid_values_are_kept(key: str, value: str, kept: str) -> None:
    assert getattr(BrandingConfig(**{key: value}), key) == kept  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value", "nearest"),
    [
        ("accent_color", "#12345", "'#123450'"),
        ("accent_color", "0055aa", "'#0055aa'"),
        ("accent_color", "#ggg", "'#000000'"),
        ("logo_url", "http://cdn.acme.test/logo.svg", "'https://cdn.acme.test/logo.svg'"),
        ("logo_url", "//cdn.acme.test/logo.svg", "'https://cdn.acme.test/logo.svg'"),
        ("logo_url", "cdn.acme.test/logo.svg", "'https://cdn.acme.test/logo.svg'"),
        ("logo_url", "logo.svg", "'/logo.svg'"),
        ("logo_url", "javascript:alert(1)", "'https://example.com/logo.svg'"),
        ("logo_url", 'https://x.test/a"b.svg', "percent-encode"),
        ("support_contact", "mailto:it@acme.test", "'it@acme.test'"),
        ("support_contact", "it@acme", "'it@acme.com'"),
        ("support_contact", "http://help.acme.test", "'https://help.acme.test'"),
        ("support_contact", "help.acme.test/access", "'https://help.acme.test/access'"),
        ("support_contact", "ask bob", "'it-help@example.com'"),
        ("app_name", "Acme\nTools", "'Acme Tools'"),
        ("app_name", "   ", "leave the key out"),
        ("help_text", "x" * 301, "at most 300"),
    ],
)
def test_invalid_values_are_refused_with_the_path_and_nearest_valid_value(
    key: str, value: str, nearest: str
) -> None:
    message = refusal(**{key: value})
    assert message.startswith(f"{key}: ")
    assert nearest in message


def test_defaults_change_nothing() -> None:
    branding = BrandingConfig()
    assert branding.skip_sign_in_page is False
    assert (branding.app_name, branding.logo_url, branding.accent_color) == (None, None, None)
    assert (branding.help_text, branding.support_contact) == (None, None)
