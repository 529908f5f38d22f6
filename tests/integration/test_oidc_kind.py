"""`provider.kind: oidc` works with any standard OIDC provider and maps groups onto orgs."""

from __future__ import annotations

import aiohttp

from gateway.config import ProviderConfig
from gateway.providers.base import TokenSet
from gateway.providers.oidc import OIDCProvider
from tests.integration.conftest import StartGateway
from tests.support.harness import API


async def test_generic_oidc_login_works_against_a_standard_provider(
    start_gateway: StartGateway,
) -> None:
    """With kind: oidc the standard flow signs alice in; HF-only org data is not used."""
    gateway = await start_gateway({"provider": {"kind": "oidc"}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/api/echo", headers=API) as response:
            assert response.status == 200
            headers = {k.lower(): v for k, v in (await response.json())["headers"]}
    assert headers["x-forwarded-user"] == "alice"
    assert headers["x-forwarded-groups"] == ""


async def test_the_groups_claim_becomes_orgs() -> None:
    """Each string in groups_claim is an org slug for policies and X-Forwarded-Groups."""
    config = ProviderConfig(client_id="c", groups_claim="roles", issuer="https://idp.example")
    async with aiohttp.ClientSession() as http:
        provider = OIDCProvider(config, http)
        tokens = TokenSet("at", None, None, frozenset({"openid"}))
        identity = await provider.identity_from_claims(
            {"sub": "42", "preferred_username": "zoe", "roles": ["ops", "", 7, "sre"]}, tokens
        )
    assert [org.slug for org in identity.orgs] == ["ops", "sre"]
    assert identity.username == "zoe"
    assert identity.scopes == frozenset({"openid"})
