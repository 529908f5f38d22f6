"""Every configuration block a deploy guide shows is the snippet file the tests run, and
every snippet copies all of the gateway's identity headers."""

from __future__ import annotations

import re

import pytest
import yaml

from gateway.config import parse_config
from gateway.headers import ACCESS_TOKEN_HEADER
from scripts.deploy_snippets import GUIDES, SNIPPETS, blocks, synced
from tests.support.harness import base_raw_config

GUIDE_SNIPPETS = {
    "nginx.md": ["nginx.conf"],
    "ingress-nginx.md": ["ingress-nginx.yaml"],
    "caddy.md": ["Caddyfile"],
    "traefik.md": ["traefik-static.yaml", "traefik-dynamic.yaml"],
}


def default_identity_headers() -> list[str]:
    """What a 2xx from /_gateway/auth carries with the default identity settings."""
    config = parse_config(base_raw_config(8080, "http://127.0.0.1:9", "http://127.0.0.1:3000"))
    return [
        *config.identity.headers,
        config.identity.assertion.header,
        ACCESS_TOKEN_HEADER,
    ]


@pytest.mark.parametrize("guide", sorted(GUIDE_SNIPPETS))
def test_each_guide_shows_its_snippet_files_as_they_are(guide: str) -> None:
    """The marked blocks name the expected files, and each equals its file byte for byte
    (``scripts/deploy_snippets.py --write`` copies them in)."""
    text = (GUIDES / guide).read_text("utf-8")
    assert blocks(text) == GUIDE_SNIPPETS[guide]
    assert synced(text) == text, f"run scripts/deploy_snippets.py --write ({guide})"


def test_a_changed_snippet_makes_its_guide_stale() -> None:
    """The check can fail: a guide block that differs from its file is rewritten."""
    name = GUIDE_SNIPPETS["nginx.md"][0]
    body = (SNIPPETS / name).read_text("utf-8")
    edited = f"<!-- snippet: {name} -->\n```nginx\n# edited\n```\n<!-- /snippet -->\n"
    assert synced(edited) == f"<!-- snippet: {name} -->\n```nginx\n{body}```\n<!-- /snippet -->\n"
    assert synced(edited) != edited


def test_every_snippet_file_is_shown_by_a_guide() -> None:
    shown = {name for names in GUIDE_SNIPPETS.values() for name in names}
    assert {path.name for path in SNIPPETS.iterdir()} == shown


def _copied(name: str) -> list[str]:
    text = (SNIPPETS / name).read_text("utf-8")
    if name == "nginx.conf":
        return re.findall(r"proxy_set_header (X-\S+) \$hf_", text)
    if name == "Caddyfile":
        return re.search(r"^\s*copy_headers (.+)$", text, re.M).group(1).split()  # type: ignore[union-attr]
    if name == "traefik-dynamic.yaml":
        forward = yaml.safe_load(text)["http"]["middlewares"]["hf-gateway"]["forwardAuth"]
        return list(forward["authResponseHeaders"])
    ingress = next(yaml.safe_load_all(text))
    value = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-response-headers"]
    return [part.strip() for part in value.split(",")]


@pytest.mark.parametrize(
    "name", ["nginx.conf", "Caddyfile", "traefik-dynamic.yaml", "ingress-nginx.yaml"]
)
def test_each_snippet_copies_every_identity_header_of_the_answer(name: str) -> None:
    """A header the proxy does not copy is one a client could forge to the tool (the
    proxy passes the client's copy on): each snippet copies exactly the default set."""
    assert _copied(name) == default_identity_headers()


def test_the_auth_addresses_ask_for_redirects_only_where_the_proxy_passes_answers_on() -> None:
    """Caddy and Traefik hand the answer to the client: ?redirect=1. nginx and
    ingress-nginx act on the status themselves and need the 401."""
    caddy = (SNIPPETS / "Caddyfile").read_text("utf-8")
    traefik = (SNIPPETS / "traefik-dynamic.yaml").read_text("utf-8")
    nginx = (SNIPPETS / "nginx.conf").read_text("utf-8")
    ingress = (SNIPPETS / "ingress-nginx.yaml").read_text("utf-8")
    assert "uri /_gateway/auth?redirect=1" in caddy
    assert "/_gateway/auth?redirect=1" in traefik
    assert "auth_request /_gateway/auth;" in nginx
    assert '/_gateway/auth"' in ingress and "redirect=1" not in ingress
