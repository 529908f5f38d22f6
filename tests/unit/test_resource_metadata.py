"""Which resource identifier a request's Host gets in RFC 9728 metadata (web/wellknown)."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.web.wellknown import resource_metadata_url, resource_origin
from tests.unit.conftest import minimal_raw_config

CONFIG = parse_config(
    minimal_raw_config(
        session={"cookie_domain": ".example.com"},
        routes=[
            {"name": "a", "upstream": "http://127.0.0.1:1", "policy": "authenticated"},
            {
                "name": "g",
                "host": "grafana.example.com",
                "upstream": "http://127.0.0.1:2",
                "policy": "authenticated",
            },
            {
                "name": "w",
                "host": "*.apps.example.com",
                "upstream": "http://127.0.0.1:3",
                "policy": "authenticated",
            },
        ],
    )
)
PUBLIC = "https://tools.example.com"


@pytest.mark.parametrize(
    ("host", "resource"),
    [
        pytest.param("tools.example.com", PUBLIC, id="the public host"),
        pytest.param("tools.example.com:8443", PUBLIC, id="the public host is public_url"),
        pytest.param("grafana.example.com", "https://grafana.example.com", id="a route host"),
        pytest.param("GRAFANA.example.com.", "https://grafana.example.com", id="normalised"),
        pytest.param(
            "grafana.example.com:8443", "https://grafana.example.com:8443", id="with its port"
        ),
        pytest.param("nb.apps.example.com", "https://nb.apps.example.com", id="a wildcard host"),
        # Forged or unreadable hosts fall back to public_url, never echoed.
        pytest.param("evil.example", PUBLIC, id="not served"),
        pytest.param('x".apps.example.com', PUBLIC, id="a quote"),
        pytest.param("x y.apps.example.com", PUBLIC, id="a space"),
        pytest.param("grafana.example.com:80x", PUBLIC, id="a port that is no number"),
        pytest.param("", PUBLIC, id="no host"),
    ],
)
def test_the_resource_is_a_served_origin_or_public_url(host: str, resource: str) -> None:
    assert resource_origin(CONFIG, host) == resource
    assert resource_metadata_url(CONFIG, host) == resource + "/.well-known/oauth-protected-resource"
