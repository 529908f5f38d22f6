"""Real upstream apps for the client's end-to-end tests, served by uvicorn in a thread.

No ``from __future__ import annotations``: FastAPI reads the Annotated dependencies below,
which name local variables, when the endpoints are defined.
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI
from huggingface_hub import OAuthInfo

from hf_gateway_client import AssertionVerifier, GatewayIdentity
from hf_gateway_client.fastapi import GatewayAuth, gateway_identity, install
from tests.support.redis_server import free_port


def create_fastapi_app(verifier: AssertionVerifier) -> FastAPI:
    """The way an HF app reads its caller: huggingface_hub.OAuthInfo from a dependency."""
    app = FastAPI()
    auth = install(app, verifier, hub_url="http://hub.test")

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"app": "fastapi"}

    @app.get("/me")
    async def me(info: Annotated[OAuthInfo, Depends(auth.oauth_info)]) -> dict[str, Any]:
        user = info.user_info
        return {
            "type": f"{type(info).__module__}.{type(info).__qualname__}",
            "user_type": type(user).__qualname__,
            "username": user.preferred_username,
            "name": user.name,
            "sub": user.sub,
            "profile": user.profile,
            "orgs": [[o.preferred_username, o.role_in_org] for o in user.orgs or []],
            "scope": info.scope,
            "token_prefix": info.access_token[:9],  # never the token itself
        }

    @app.get("/who")
    def who(identity: Annotated[GatewayIdentity, Depends(gateway_identity)]) -> dict[str, Any]:
        """A sync endpoint with the module-level dependency (FastAPI runs it in a thread)."""
        return {"username": identity.username, "acme_admin": identity.has_role("acme", "admin")}

    @app.get("/public/hello")
    async def hello(
        identity: Annotated[GatewayIdentity | None, Depends(auth.optional)],
    ) -> dict[str, Any]:
        return {"user": identity.username if identity else None}

    @app.get("/public/strict")
    async def strict(identity: Annotated[GatewayIdentity, Depends(auth)]) -> dict[str, Any]:
        return {"user": identity.username}

    return app


@contextlib.contextmanager
def serve(app: Any, port: int | None = None, *, lifespan: str = "off") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its base URL.
    Gradio needs ``lifespan="on"``: its queue starts with the app."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


__all__ = ["GatewayAuth", "create_fastapi_app", "serve"]
