"""provider.client_id auto (zero-registration sign-in, docs/cimd.md): how it resolves
and what check-config refuses, as path: reason lines."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.unit.conftest import minimal_raw_config

PUBLIC = {"client_id": "auto", "client_secret": None}


def _problems(raw: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(PUBLIC, id="client_id auto"),
        pytest.param({"client_id": None, "client_secret": None}, id="no client_id at all"),
    ],
)
def test_auto_client_id_becomes_the_document_url(provider: dict[str, Any]) -> None:
    """auto (or no client_id) resolves to {public_url}/.well-known/oauth-cimd, the id HF
    is sent; cimd_url says the gateway serves that document."""
    raw = minimal_raw_config()
    raw["provider"] = {k: v for k, v in provider.items() if v is not None}
    config = parse_config(raw)
    expected = "https://tools.example.com/.well-known/oauth-cimd"
    assert config.provider.client_id == expected
    assert config.cimd_url == expected
    assert config.provider.client_secret is None


def test_a_registered_client_id_serves_no_document() -> None:
    """The twin: a registered app's id is used as given and no document is served."""
    config = parse_config(minimal_raw_config())
    assert config.provider.client_id == "test-client"
    assert config.cimd_url is None


@pytest.mark.parametrize(
    "public_url",
    ["http://localhost:8080", "http://127.0.0.1:9000", "http://[::1]:8080", "https://a.example"],
)
def test_loopback_http_and_any_https_public_url_may_use_auto(public_url: str) -> None:
    """HF fetches the document: https anywhere, http only on loopback hosts."""
    raw = minimal_raw_config(server={"public_url": public_url}, provider=PUBLIC)
    assert parse_config(raw).cimd_url == public_url + "/.well-known/oauth-cimd"


MISTAKES = [
    pytest.param(
        {"provider": {"client_id": "auto", "client_secret": "s3cret-value"}},
        [
            "provider.client_secret: a CIMD client id (client_id auto) is a public client: "
            "remove client_secret, or set client_id to the id of your registered app"
        ],
        id="auto with a client_secret",
    ),
    pytest.param(
        {
            "provider": {
                "client_id": "https://tools.example.com/.well-known/oauth-cimd",
                "client_secret": "s3cret-value",
            }
        },
        [
            "provider.client_secret: a CIMD client id (client_id auto) is a public client: "
            "remove client_secret, or set client_id to the id of your registered app"
        ],
        id="the document URL spelled out with a client_secret",
    ),
    pytest.param(
        {"server": {"public_url": "http://tools.example.com"}, "provider": PUBLIC},
        [
            "server.public_url: client_id auto (CIMD) needs an https public_url: Hugging Face "
            "fetches /.well-known/oauth-cimd from it and accepts http only for localhost, "
            "127.0.0.1 and [::1]; use https://tools.example.com"
        ],
        id="auto on a plain http public host",
    ),
    pytest.param(
        {"server": {"public_url": "http://10.0.0.5:8080"}, "provider": PUBLIC},
        [
            "server.public_url: client_id auto (CIMD) needs an https public_url: Hugging Face "
            "fetches /.well-known/oauth-cimd from it and accepts http only for localhost, "
            "127.0.0.1 and [::1]; use https://10.0.0.5:8080"
        ],
        id="auto on a private address over http",
    ),
    pytest.param(
        {"provider": {**PUBLIC, "kind": "oidc", "issuer": "https://login.example.com"}},
        [
            "provider.client_id: auto (a Client ID Metadata Document) is Hugging Face's; "
            "kind oidc needs the client_id your provider registered"
        ],
        id="auto with a generic OIDC provider",
    ),
    pytest.param(
        {"provider": {**PUBLIC, "client_logo_uri": "http://tools.example.com/logo.png"}},
        ["provider.client_logo_uri: must be an https URL (the consent page is on https)"],
        id="logo over http",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), MISTAKES)
def test_each_cimd_mistake_is_one_path_and_reason(
    changes: dict[str, Any], expected: list[str]
) -> None:
    """check-config names the key, the reason and the value to use instead."""
    raw = minimal_raw_config(**changes)
    if raw["provider"].get("client_secret") is None:
        raw["provider"].pop("client_secret", None)
    assert list(_problems(raw)) == expected
