"""Wiring only: build the aiohttp application for a configuration.

This is the one module (with cli.py) that picks concrete adapters: the Redis or memory
store, the Hugging Face or generic OIDC provider. Tests pass their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from gateway.access import AccessControl
from gateway.assertion import AssertionSigner, generate_signing_key, load_signing_keys
from gateway.config import GatewayConfig
from gateway.errors import ProviderError
from gateway.headers import IdentityHeaders, TrustedProxies
from gateway.providers.base import Provider
from gateway.providers.huggingface import HuggingFaceProvider
from gateway.providers.oidc import METADATA_MAX_AGE, OIDCProvider
from gateway.routing import RedirectPolicy
from gateway.session.cache import WarmCache
from gateway.session.manager import LoadedSession, SessionManager
from gateway.session.memory import MemoryStore
from gateway.session.model import SessionKeys, SessionTimes
from gateway.session.redis import RedisStore
from gateway.session.store import InvalidationSource, SessionStore
from gateway.web.bearer import TokenResolver
from gateway.web.caller import TOKENS
from gateway.web.context import GATEWAY, CookieSettings, GatewayContext
from gateway.web.hardening import install_safe_error_answers
from gateway.web.middleware import handle
from gateway.web.proxy import UpstreamClient
from gateway.web.sessions import RESOLVER, SessionResolver
from gateway.web.tunnels import GOING_AWAY, TunnelRegistry

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def create_app(
    config: GatewayConfig,
    *,
    store: SessionStore | None = None,
    provider: Provider | None = None,
    signer: AssertionSigner | None = None,
    clock: Clock = time.time,
) -> web.Application:
    """The gateway as an aiohttp application; resources live in its cleanup context."""
    install_safe_error_answers()
    app = web.Application(handler_args={"max_field_size": 16384})
    app.router.add_route("*", "/{tail:.*}", handle)

    async def services(app: web.Application) -> AsyncIterator[None]:
        own_store = store or build_store(config)
        cache = warm_cache_for(config, own_store)
        provider_http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "hf-gateway"},
        )
        own_provider = provider or build_provider(config, provider_http)
        upstream = UpstreamClient(config.routes)
        tunnels = TunnelRegistry()
        ctx = GatewayContext(
            config=config,
            access=AccessControl(config),
            sessions=SessionManager(
                own_store,
                SessionKeys.derive([s.get_secret_value() for s in config.session.secret]),
                SessionTimes(
                    idle_timeout=config.session.idle_timeout,
                    max_lifetime=config.session.max_lifetime,
                    revalidate_after=config.session.revalidate_after,
                ),
                clock=clock,
                cache=cache,
            ),
            provider=own_provider,
            signer=signer or build_signer(config),
            identity_headers=IdentityHeaders.from_config(
                config.identity.headers,
                config.identity.assertion.header,
                config.identity.strip_headers,
            ),
            trusted=TrustedProxies.parse(config.server.trusted_proxies),
            redirects=RedirectPolicy(
                config.server.public_url,
                [r.host for r in config.routes if r.host]
                + list(config.server.allowed_redirect_hosts),
            ),
            cookies=CookieSettings.from_config(config),
            upstream=upstream,
            tunnels=tunnels,
            clock=clock,
        )
        app[GATEWAY] = ctx
        app[RESOLVER] = SessionResolver(ctx)
        app[TOKENS] = TokenResolver(own_provider, own_store)
        tasks = [asyncio.create_task(keep_metadata_fresh(own_provider))]
        on_key, on_state = invalidation_listeners(cache, tunnels)
        if isinstance(own_store, InvalidationSource):
            tasks.append(asyncio.create_task(own_store.listen_invalidations(on_key, on_state)))
        else:  # one process, one store: every change is reported here directly
            tunnels.listening_locally()
        ctx.sessions.on_change = tunnels.invalidated
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await tunnels.close()
            await upstream.close()
            await own_provider.close()
            await provider_http.close()
            await own_store.close()

    async def end_tunnels(app: web.Application) -> None:
        app[GATEWAY].tunnels.end_all(GOING_AWAY, "the gateway is shutting down")

    app.cleanup_ctx.append(services)
    app.on_shutdown.append(end_tunnels)
    return app


def invalidation_listeners(
    cache: WarmCache[LoadedSession] | None, tunnels: TunnelRegistry
) -> tuple[Callable[[str], None], Callable[[bool], None]]:
    """What the invalidation channel feeds: the warm cache first, then the tunnels (so a
    tunnel's re-check never reads the entry that was just invalidated)."""

    def on_key(key: str) -> None:
        if cache is not None:
            cache.invalidate(key)
        tunnels.invalidated(key)

    def on_state(listening: bool) -> None:
        if cache is not None:
            cache.channel_state(listening)
        tunnels.channel_state(listening)

    return on_key, on_state


def warm_cache_for(config: GatewayConfig, store: SessionStore) -> WarmCache[LoadedSession] | None:
    """A warm-session cache for stores other processes share, when the config wants one.

    The memory store is in-process already; a cache there would only add staleness.
    """
    if config.session.warm_cache and isinstance(store, InvalidationSource):
        return WarmCache()
    return None


def build_store(config: GatewayConfig) -> SessionStore:
    if config.session.store == "redis":
        return RedisStore.from_config(config.session)
    return MemoryStore(clock=time.time)


def build_provider(config: GatewayConfig, http: aiohttp.ClientSession) -> Provider:
    if config.provider.kind == "huggingface":
        return HuggingFaceProvider(config.provider, http)
    return OIDCProvider(config.provider, http)


def build_signer(config: GatewayConfig) -> AssertionSigner:
    assertion = config.identity.assertion
    if assertion.signing_key_file:
        keys = load_signing_keys(assertion.signing_key_file)
    else:
        log.warning(
            "no identity.assertion.signing_key_file: generated a signing key at start; "
            "it only suits a single process (set the file for workers > 1 or replicas)"
        )
        keys = [generate_signing_key()]
    return AssertionSigner(keys, issuer=config.server.public_url, ttl=assertion.ttl)


async def keep_metadata_fresh(provider: Provider) -> None:
    """Load provider metadata now (retrying with backoff), then refresh it periodically."""
    delay = 1.0
    while True:
        try:
            await provider.load_metadata()
        except ProviderError as exc:
            log.warning("provider metadata unavailable (%s); retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        delay = 1.0
        await asyncio.sleep(METADATA_MAX_AGE)
