"""Verify hf-gateway's X-Gateway-Assertion and read the caller as HF app code expects.

    from hf_gateway_client import AssertionVerifier

    verifier = AssertionVerifier.for_gateway("https://tools.example.com", route="notebooks")
    identity = verifier.verify(token)            # or: await verifier.averify(token)
    info = identity.to_oauth_info()              # huggingface_hub.OAuthInfo
    profile = identity.to_gradio_profile()       # gr.OAuthProfile

Depends on PyJWT only (with its crypto extra); ``hf_gateway_client.fastapi`` and
``hf_gateway_client.gradio`` import their framework when imported. See docs/client.md.
"""

from hf_gateway_client.errors import GatewayClientError, InvalidAssertion, JWKSUnavailable
from hf_gateway_client.identity import ROLE_ORDER, GatewayIdentity, GatewayOrg
from hf_gateway_client.shapes import OAuthProfileLike, oauth_types
from hf_gateway_client.verify import (
    ACCESS_TOKEN_HEADER,
    ASSERTION_HEADER,
    AssertionVerifier,
    header_value,
)

__all__ = [
    "ACCESS_TOKEN_HEADER",
    "ASSERTION_HEADER",
    "ROLE_ORDER",
    "AssertionVerifier",
    "GatewayClientError",
    "GatewayIdentity",
    "GatewayOrg",
    "InvalidAssertion",
    "JWKSUnavailable",
    "OAuthProfileLike",
    "header_value",
    "oauth_types",
]
