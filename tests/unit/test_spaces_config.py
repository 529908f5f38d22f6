"""Spaces mode: a Docker Space with ``hf_oauth: true`` runs the gateway from the variables
Hugging Face injects, with no provider section and no public_url; explicit keys win."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.config.spaces import derived_session_secret
from gateway.errors import ConfigError
from gateway.serve import startup_lines
from gateway.web.context import CookieSettings
from tests.unit.conftest import SECRET, minimal_raw_config, write_yaml

SPACE_ENV = {
    "SPACE_ID": "acme/notebook",
    "SPACE_HOST": "acme-notebook.hf.space",
    "OAUTH_CLIENT_ID": "0a1b2c3d-space-client",
    "OAUTH_CLIENT_SECRET": "space-client-secret-4e5f6a7b8c9d",
    "OAUTH_SCOPES": "openid profile email read-memberships",
    "OPENID_PROVIDER_URL": "https://huggingface.co",
}
ROUTES_ONLY: dict[str, Any] = {
    "policies": {"staff": {"allow": [{"org": "acme", "min_role": "write"}]}},
    "routes": [{"name": "app", "upstream": "http://127.0.0.1:8501", "policy": "staff"}],
}


def _load(tmp_path: Path, raw: dict[str, Any], environ: dict[str, str]) -> GatewayConfig:
    return load_config(write_yaml(tmp_path / "gateway.yaml", raw), environ=environ)


def test_a_space_needs_no_provider_section_no_public_url_and_no_secret(tmp_path: Path) -> None:
    config = _load(tmp_path, ROUTES_ONLY, SPACE_ENV)
    assert config.server.mode == "spaces"
    assert config.server.public_url == "https://acme-notebook.hf.space"
    assert config.server.listen == "0.0.0.0:7860"
    assert config.server.frame_ancestors == ("https://huggingface.co",)
    provider = config.provider
    assert (provider.kind, provider.issuer, provider.api_url) == (
        "huggingface",
        "https://huggingface.co",
        "https://huggingface.co",
    )
    assert provider.client_id == "0a1b2c3d-space-client"
    assert provider.client_secret is not None
    assert provider.client_secret.get_secret_value() == SPACE_ENV["OAUTH_CLIENT_SECRET"]
    assert provider.scopes == ("openid", "profile", "email", "read-memberships")
    # The session secret is derived from the client secret, and is not the secret itself.
    secret = config.session.secret[0].get_secret_value()
    assert secret == derived_session_secret(SPACE_ENV["OAUTH_CLIENT_SECRET"])
    assert SPACE_ENV["OAUTH_CLIENT_SECRET"] not in secret and len(secret) == 64
    cookies = CookieSettings.from_config(config)
    assert (cookies.name, cookies.samesite, cookies.secure) == ("__Host-hf_gateway", "None", True)
    assert cookies.login_samesite == "None" and cookies.login_path == "/"


def test_the_startup_block_says_spaces_mode_and_what_it_filled(tmp_path: Path) -> None:
    lines = startup_lines(_load(tmp_path, ROUTES_ONLY, SPACE_ENV), "gateway.yaml")
    spaces = [line for line in lines if line.startswith("spaces mode:")]
    assert spaces == [
        "spaces mode: provider https://huggingface.co client 0a1b2c3d-space-client, scopes "
        "openid profile email read-memberships; pages framed by https://huggingface.co; "
        "cookies SameSite=None"
    ]
    assert SPACE_ENV["OAUTH_CLIENT_SECRET"] not in "\n".join(lines)
    plain = startup_lines(_load(tmp_path, minimal_raw_config(), {}), "gateway.yaml")
    assert not [line for line in plain if line.startswith("spaces mode:")]


def test_explicit_configuration_always_wins_over_the_spaces_defaults(tmp_path: Path) -> None:
    raw = {
        **ROUTES_ONLY,
        "server": {
            "listen": "0.0.0.0:8000",
            "public_url": "https://notebook.acme.dev",
            "frame_ancestors": ["https://portal.acme.dev"],
        },
        "provider": {"scopes": ["openid", "profile"], "client_id": "registered-app"},
        "session": {"secret": SECRET, "cookie_samesite": "lax"},
    }
    config = _load(tmp_path, raw, SPACE_ENV)
    assert config.server.mode == "spaces"
    assert config.server.listen == "0.0.0.0:8000"
    assert config.server.public_url == "https://notebook.acme.dev"
    assert config.server.frame_ancestors == ("https://portal.acme.dev",)
    assert config.provider.scopes == ("openid", "profile")
    assert config.provider.client_id == "registered-app"
    assert config.session.secret[0].get_secret_value() == SECRET
    assert config.session.cookie_samesite == "lax"


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        pytest.param({"SPACE_HOST": "acme-notebook.hf.space"}, None, id="a Space without hf_oauth"),
        pytest.param(SPACE_ENV, "standard", id="mode standard turns it off"),
        pytest.param({"OAUTH_CLIENT_ID": "x"}, None, id="OAuth variables outside a Space"),
    ],
)
def test_without_spaces_mode_nothing_is_filled(
    tmp_path: Path, environ: dict[str, str], mode: str | None
) -> None:
    raw = minimal_raw_config()
    if mode is not None:
        raw["server"]["mode"] = mode
    config = _load(tmp_path, raw, environ)
    assert config.server.mode == "standard"
    assert config.server.frame_ancestors == ()
    assert config.server.listen == "0.0.0.0:8080"
    assert config.provider.client_id == "test-client"
    assert config.session.cookie_samesite == "lax"


def test_mode_spaces_written_in_the_file_turns_it_on_and_says_what_is_missing(
    tmp_path: Path,
) -> None:
    raw = {**ROUTES_ONLY, "server": {"mode": "spaces"}, "session": {"secret": SECRET}}
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, raw, {})
    assert "server.public_url: not set, and SPACE_HOST is not set either" in caught.value.problems
    raw["provider"] = {"client_id": "registered-app", "client_secret": "registered-secret"}
    config = _load(tmp_path, raw, {"SPACE_HOST": "acme-notebook.hf.space"})
    assert config.server.mode == "spaces"
    assert config.server.frame_ancestors == ("https://huggingface.co",)


def test_a_custom_domain_space_uses_its_hf_space_host(tmp_path: Path) -> None:
    environ = {**SPACE_ENV, "SPACE_HOST": "acme-notebook.hf.space,notebook.acme.dev"}
    config = _load(tmp_path, ROUTES_ONLY, environ)
    assert config.server.public_url == "https://acme-notebook.hf.space"


def test_space_separated_scopes_from_the_environment_are_a_list(tmp_path: Path) -> None:
    """The measured bug: ``scopes: ${OAUTH_SCOPES}`` was one scope and lacked openid."""
    raw = minimal_raw_config(provider={"scopes": "${OAUTH_SCOPES}"})
    config = _load(tmp_path, raw, {"OAUTH_SCOPES": "openid  profile\temail"})
    assert config.provider.scopes == ("openid", "profile", "email")
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, raw, {"OAUTH_SCOPES": "profile email"})
    assert any("must include openid" in p for p in caught.value.problems)


@pytest.mark.parametrize(
    "framer",
    ["huggingface.co", "https://huggingface.co/spaces", "https://*.hf.co", "https://a;b.co", ""],
)
def test_frame_ancestors_must_be_origins(tmp_path: Path, framer: str) -> None:
    raw = minimal_raw_config(server={"frame_ancestors": [framer]})
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, raw, {})
    assert any(p.startswith("server.frame_ancestors") for p in caught.value.problems)


def test_samesite_none_is_accepted_over_loopback_http_only(tmp_path: Path) -> None:
    """Browsers keep Secure cookies on http://127.0.0.1 and localhost (a secure context)."""
    raw = minimal_raw_config(
        server={"public_url": "http://127.0.0.1:7860"}, session={"cookie_samesite": "none"}
    )
    config = _load(tmp_path, raw, {})
    cookies = CookieSettings.from_config(config)
    assert (cookies.secure, cookies.name) == (True, "__Host-hf_gateway")
    raw["server"]["public_url"] = "http://tools.example.com"
    with pytest.raises(ConfigError):
        _load(tmp_path, raw, {})


def test_the_derived_session_secret_is_stable_and_follows_the_client_secret() -> None:
    first = derived_session_secret("client-secret-one")
    assert first == derived_session_secret("client-secret-one")
    assert first != derived_session_secret("client-secret-two")
