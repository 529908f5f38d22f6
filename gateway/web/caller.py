"""Who is calling: the session cookie first, else a provider token sent as
``Authorization: Bearer`` or, as gradio_client sends it, ``X-HF-Authorization: Bearer``
(scripts and API clients). Failures of the store or the provider
become a 503 answer here, and a client over its allowance of new tokens a 429, so callers
can only ever get an identity or a refusal."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from gateway.errors import ProviderError, ProviderRateLimited, StoreError
from gateway.headers import client_facts, cookie_value
from gateway.identity import Identity
from gateway.logs import log_fault
from gateway.session.manager import LoadedSession
from gateway.web import responses
from gateway.web.bearer import (
    HF_AUTHORIZATION,
    AmbiguousToken,
    LookupBudgetExhausted,
    Presented,
    TooManyNewTokens,
    presented_token,
    token_key,
)
from gateway.web.context import GatewayContext

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity | None
    session: LoadedSession | None = None
    token: str | None = None
    """The bearer token the gateway consumed (never forwarded as Authorization)."""
    cookie: str | None = None
    """The session cookie that identified the caller (kept to re-check a websocket)."""
    consumed_authorization: bool = False
    """The token came in Authorization, so Authorization is not forwarded either (one that
    came only in X-HF-Authorization leaves Authorization to the upstream)."""
    cache_key: str = ""
    """Whose decisions and assertions these are: the session's store key or the token's
    hash, computed once per request (the memos ask for it several times)."""


def client_address(request: web.Request, ctx: GatewayContext) -> str:
    """The client's address as the proxy path sees it: the peer, or what a trusted proxy
    in front of it says in X-Forwarded-For."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    facts, _ = client_facts(
        peer=request.remote,
        scheme=request.scheme,
        host=request.host,
        forwarded_for=", ".join(forwarded) if forwarded else None,
        forwarded_proto=None,
        trusted=ctx.trusted,
    )
    return facts.ip


def session_cookie(request: web.Request, ctx: GatewayContext) -> str | None:
    return cookie_value(request.headers.getall("Cookie", ()), ctx.cookies.name)


def _carries_hf_token(request: web.Request, ctx: GatewayContext) -> bool:
    """Authorization holds an HF token the session made unnecessary: it is the user's
    credential for the Hub, and the gateway forwards it no more than one it consumed."""
    if "Authorization" not in request.headers or not ctx.config.provider.bearer_tokens:
        return False
    try:
        presented = presented_token(request.headers.getall("Authorization", ()), ())
    except AmbiguousToken:
        return True  # several: none of them goes on
    return presented.token is not None


async def identify(request: web.Request, ctx: GatewayContext) -> Caller | web.Response:
    """The caller, or the 401/503 answer to send instead."""
    try:
        cookie = session_cookie(request, ctx)
        resolved = await ctx.resolver.resolve(cookie)
        if resolved.identity is not None:
            session = resolved.session
            key = session.key if session is not None else ""
            return Caller(
                resolved.identity,
                session,
                cookie=cookie,
                cache_key=key,
                consumed_authorization=_carries_hf_token(request, ctx),
            )
        presented = Presented(None, False)
        if ctx.config.provider.bearer_tokens:
            presented = presented_token(
                request.headers.getall("Authorization", ()),
                request.headers.getall(HF_AUTHORIZATION, ()),
            )
        token = presented.token
        if token is None:
            return Caller(None)
        identity = await ctx.tokens.resolve(token, client_address(request, ctx))
    except AmbiguousToken:
        return responses.json_response(
            400,
            {
                "error": "invalid_request",
                "message": "Authorization and X-HF-Authorization carry different tokens",
                "request_id": responses.request_id(request),
            },
            **{"WWW-Authenticate": 'Bearer realm="hf-gateway", error="invalid_request"'},
        )
    except TooManyNewTokens as exc:
        return responses.error(
            request,
            429,
            "too_many_requests",
            "Too many requests",
            "Too many new tokens from your address are waiting to be checked; retry later.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    except LookupBudgetExhausted as exc:  # logged by the resolver, in summary
        return responses.unavailable(
            request,
            "Too many new tokens are being checked right now; retry later.",
            retry_after=exc.retry_after,
        )
    except StoreError as exc:  # one line per outage, then counts (not one per request)
        log_fault(log, logging.ERROR, "session store unavailable: %s", exc)
        return responses.unavailable(request, "The session store is unavailable.")
    except ProviderRateLimited as exc:
        log_fault(
            log, logging.WARNING, "provider rate limited token checks for %ss", exc.retry_after
        )
        return responses.unavailable(
            request,
            "Hugging Face is rate limiting the gateway; retry later.",
            retry_after=exc.retry_after,
        )
    except ProviderError as exc:
        log_fault(log, logging.ERROR, "identity provider unavailable: %s", exc)
        return responses.unavailable(
            request, "Hugging Face could not be reached to check your access."
        )
    if identity is None:
        return responses.invalid_token(request)
    return Caller(
        identity,
        token=token,
        consumed_authorization=presented.in_authorization,
        cache_key=token_key(token),
    )
