"""FastAPI dependencies: the caller from X-Gateway-Assertion, 401 without a valid one.

    auth = GatewayAuth(AssertionVerifier.for_gateway(PUBLIC_URL, route="api"))

    @app.get("/me")
    async def me(info: OAuthInfo = Depends(auth.oauth_info)) -> dict[str, str]:
        return {"user": info.user_info.preferred_username}

Answers 401 ``{"detail": {"error": "invalid_assertion", "code": ...}}`` for a missing or
invalid assertion and 503 when the gateway's keys cannot be fetched (fail closed).
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request

from hf_gateway_client.errors import InvalidAssertion, JWKSUnavailable
from hf_gateway_client.identity import HUB_URL, GatewayIdentity
from hf_gateway_client.shapes import OAuthInfo, OAuthUserInfo
from hf_gateway_client.verify import ACCESS_TOKEN_HEADER, AssertionVerifier

__all__ = ["GatewayAuth", "gateway_identity", "gateway_oauth_info", "install"]

_STATE_KEY = "hf_gateway_auth"


class GatewayAuth:
    """Dependencies bound to one verifier: ``Depends(auth)`` gives a GatewayIdentity,
    ``Depends(auth.optional)`` one or None, ``auth.oauth_info`` / ``auth.user_info``
    huggingface_hub's types."""

    def __init__(self, verifier: AssertionVerifier, *, hub_url: str = HUB_URL) -> None:
        self.verifier = verifier
        self.hub_url = hub_url

    async def __call__(self, request: Request) -> GatewayIdentity:
        identity = await self.optional(request)
        if identity is None:
            raise _unauthorized("missing")
        return identity

    async def optional(self, request: Request) -> GatewayIdentity | None:
        """None when the gateway sent no assertion (anonymous on a public path)."""
        try:
            return await self.verifier.averify_headers(request.headers)
        except InvalidAssertion as exc:
            raise _unauthorized(exc.code) from exc
        except JWKSUnavailable as exc:
            raise HTTPException(503, detail={"error": "jwks_unavailable"}) from exc

    async def oauth_info(self, request: Request) -> OAuthInfo:
        """huggingface_hub.OAuthInfo; access_token is X-Forwarded-Access-Token ("" unless the
        route has pass_access_token)."""
        identity = await self(request)
        token = request.headers.get(ACCESS_TOKEN_HEADER, "").strip()
        return identity.to_oauth_info(token, hub_url=self.hub_url)

    async def user_info(self, request: Request) -> OAuthUserInfo:
        return (await self(request)).to_oauth_user_info(hub_url=self.hub_url)


def install(app: FastAPI, verifier: AssertionVerifier, *, hub_url: str = HUB_URL) -> GatewayAuth:
    """Remember the verifier on ``app.state`` for the module-level dependencies below."""
    auth = GatewayAuth(verifier, hub_url=hub_url)
    setattr(app.state, _STATE_KEY, auth)
    return auth


def _auth(request: Request) -> GatewayAuth:
    auth = getattr(request.app.state, _STATE_KEY, None)
    if not isinstance(auth, GatewayAuth):
        raise RuntimeError("call hf_gateway_client.fastapi.install(app, verifier) at start-up")
    return auth


async def gateway_identity(request: Request) -> GatewayIdentity:
    """``Depends(gateway_identity)`` after ``install(app, verifier)``."""
    return await _auth(request)(request)


async def gateway_oauth_info(request: Request) -> OAuthInfo:
    """``Depends(gateway_oauth_info)``: huggingface_hub.OAuthInfo, after ``install``."""
    return await _auth(request).oauth_info(request)


def _unauthorized(code: str) -> HTTPException:
    return HTTPException(401, detail={"error": "invalid_assertion", "code": code})
