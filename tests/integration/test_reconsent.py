"""A denial that a grant on Hugging Face can fix leads back to HF's consent screen, and
coming back from it lets the user in: the HF-specific part peer gateways do not have."""

from __future__ import annotations

from gateway.devtools.fake_hf import FakeHF
from tests.integration.conftest import StartGateway
from tests.support.harness import API

ACME_ID = "6650a1c2e3f4a5b6c7d8e9f0"


async def test_an_org_not_granted_to_the_app_leads_to_consent_with_org_ids(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    """Without read-memberships HF hides alice's acme role until acme is granted; the 403
    names the org and its consent link asks for orgIds, after which alice is let in."""
    gateway = await start_gateway({"provider": {"scopes": ["openid", "profile", "email"]}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        async with http.get(f"{gateway.url}/writers/api/echo", headers=API) as response:
            assert response.status == 403
            denial = await response.json()
        assert [r["values"] for r in denial["reasons"] if r["code"] == "org_not_granted"] == [
            [ACME_ID]
        ]
        consent_url = denial["consent_url"]
        assert f"org={ACME_ID}" in consent_url
        async with http.get(consent_url) as response:
            assert response.status == 200
        assert fake_hf.authorize_requests[-1]["orgIds"] == ACME_ID
        async with http.get(f"{gateway.url}/writers/api/echo", headers=API) as response:
            assert response.status == 200


async def test_missing_scopes_lead_to_consent_and_earlier_grants_are_kept(
    start_gateway: StartGateway, fake_hf: FakeHF, upstream: str
) -> None:
    """Two tools needing different extra scopes: consenting for the second keeps the first."""
    routes = [
        {"name": "home", "path": "/", "upstream": upstream, "policy": "authenticated"},
        {
            "name": "repos",
            "path": "/repos",
            "upstream": upstream,
            "policy": {"allow": [{"authenticated": True}], "require_scopes": ["read-repos"]},
        },
        {
            "name": "infer",
            "path": "/infer",
            "upstream": upstream,
            "policy": {"allow": [{"authenticated": True}], "require_scopes": ["inference-api"]},
        },
    ]
    gateway = await start_gateway({"routes": routes})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        for tool, scope in (("repos", "read-repos"), ("infer", "inference-api")):
            async with http.get(f"{gateway.url}/{tool}/api/echo", headers=API) as response:
                assert response.status == 403
                denial = await response.json()
            assert [r["values"] for r in denial["reasons"]] == [[scope]]
            async with http.get(denial["consent_url"]) as response:
                assert response.status == 200
            assert scope in fake_hf.authorize_requests[-1]["scope"].split()
        for tool in ("repos", "infer"):
            async with http.get(f"{gateway.url}/{tool}/api/echo", headers=API) as response:
                assert response.status == 200, tool
