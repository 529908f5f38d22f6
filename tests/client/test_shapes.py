"""The caller as huggingface_hub's OAuthInfo / OAuthUserInfo / OAuthOrgInfo and Gradio's
OAuthProfile, built from a real gateway assertion."""

from __future__ import annotations

import dataclasses
import datetime
import time

import huggingface_hub
import pytest

from gateway.assertion import AssertionSigner
from gateway.identity import Identity
from hf_gateway_client import AssertionVerifier, GatewayIdentity, shapes
from tests.client.conftest import ALICE, ISSUER, ROUTE, JWKSServer


@pytest.fixture
def alice(signer: AssertionSigner, jwks_server: JWKSServer) -> GatewayIdentity:
    verifier = AssertionVerifier(jwks_server.url, ISSUER, ROUTE)
    return verifier.verify(signer.sign(ALICE, ROUTE, time.time()))


def test_oauth_info_is_huggingface_hubs_own_type(alice: GatewayIdentity) -> None:
    info = alice.to_oauth_info("hf_oauth_abc")
    assert type(info) is huggingface_hub.OAuthInfo
    assert type(info.user_info) is huggingface_hub.OAuthUserInfo
    assert all(type(o) is huggingface_hub.OAuthOrgInfo for o in info.user_info.orgs or [])
    assert info.access_token == "hf_oauth_abc"
    assert info.access_token_expires_at == alice.expires_at
    assert info.access_token_expires_at.tzinfo is datetime.UTC
    assert info.scope == "email openid profile read-memberships"
    assert info.state is None


def test_user_info_maps_every_claim_the_assertion_carries(alice: GatewayIdentity) -> None:
    user = alice.to_oauth_user_info()
    assert (user.sub, user.preferred_username, user.name, user.email) == (
        "3f501019b1460301dacf1e59",
        "alice",
        "Alice Liddell",
        "alice@example.com",
    )
    assert user.profile == "https://huggingface.co/alice"
    assert user.email_verified is True  # carried by the assertion, as is_pro and picture
    # Not in the assertion: neutral values (docs/client.md "What cannot be filled in").
    assert (user.picture, user.website, user.is_pro, user.can_pay) == ("", None, False, None)
    assert [(o.sub, o.preferred_username, o.name, o.role_in_org) for o in user.orgs or []] == [
        ("6650a1c2e3f4a5b6c7d8e9f0", "acme", "Acme Corp", "admin"),
        ("9af218e6c4d13b02d0fafdf1", "hf-tools", "hf-tools", "read"),  # no name: the slug
    ]
    assert all(o.security_restrictions == [] for o in user.orgs or [])


def test_a_hub_url_changes_the_profile_link(alice: GatewayIdentity) -> None:
    user = alice.to_oauth_user_info(hub_url="http://127.0.0.1:9999/")
    assert user.profile == "http://127.0.0.1:9999/alice"


def test_claims_a_later_gateway_adds_are_used(
    signer: AssertionSigner, jwks_server: JWKSServer
) -> None:
    """picture, email_verified, is_pro and website flow through once the token has them."""
    verifier = AssertionVerifier(jwks_server.url, ISSUER, ROUTE)
    base = verifier.verify(signer.sign(ALICE, ROUTE, time.time()))
    richer = GatewayIdentity.from_claims(
        {
            **base.claims,
            "picture": "https://cdn/a.png",
            "email_verified": True,
            "is_pro": True,
            "website": "https://alice.dev",
        }
    )
    user = richer.to_oauth_user_info()
    assert (user.picture, user.email_verified, user.is_pro, user.website) == (
        "https://cdn/a.png",
        True,
        True,
        "https://alice.dev",
    )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (shapes.OAuthInfo, huggingface_hub.OAuthInfo),
        (shapes.OAuthUserInfo, huggingface_hub.OAuthUserInfo),
        (shapes.OAuthOrgInfo, huggingface_hub.OAuthOrgInfo),
    ],
)
def test_the_stand_ins_have_huggingface_hubs_fields(ours: type, theirs: type) -> None:
    """Without huggingface_hub the client builds look-alikes: same fields, same order."""
    assert ours is not theirs
    mine = [(f.name, f.default) for f in dataclasses.fields(ours)]
    real = [(f.name, f.default) for f in dataclasses.fields(theirs)]
    assert mine == real


def test_the_gradio_profile_has_gradios_attributes_and_userinfo_keys(
    alice: GatewayIdentity,
) -> None:
    """gr.OAuthProfile is a dict of HF's userinfo with four attributes (gradio/oauth.py)."""
    profile = alice.to_gradio_profile()
    assert (profile.name, profile.username, profile.profile, profile.picture) == (
        "Alice Liddell",
        "alice",
        "https://huggingface.co/alice",
        "",
    )
    assert profile["preferred_username"] == "alice"
    assert profile["orgs"][0] == {
        "sub": "6650a1c2e3f4a5b6c7d8e9f0",
        "name": "Acme Corp",
        "preferred_username": "acme",
        "picture": "",
        "roleInOrg": "admin",
    }


def test_an_anonymous_org_role_stays_none(signer: AssertionSigner, jwks_server: JWKSServer) -> None:
    """An org not granted to the app has role null in the token and role_in_org None."""
    from gateway.identity import Org

    bob = Identity(sub="b0b", username="bob", orgs=(Org(sub="o1", slug="acme", role=None),))
    verifier = AssertionVerifier(jwks_server.url, ISSUER, ROUTE)
    identity = verifier.verify(signer.sign(bob, ROUTE, time.time()))
    assert not identity.has_role("acme", "read")
    assert [o.role_in_org for o in identity.to_oauth_user_info().orgs or []] == [None]
    assert identity.email is None and identity.to_oauth_user_info().email is None
