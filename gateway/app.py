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

from gateway import metrics
from gateway.access import AccessControl
from gateway.assertion import (
    AssertionSigner,
    SigningKey,
    generate_signing_key,
    load_signing_keys,
)
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
from gateway.session.recheck import keep_rechecking
from gateway.session.redis import RedisStore
from gateway.session.store import InvalidationSource, SessionStore
from gateway.web.bearer import TokenResolver
from gateway.web.context import LIVE, CookieSettings, GatewayContext, LiveGateway
from gateway.web.entry import entry
from gateway.web.hardening import install_safe_error_answers
from gateway.web.proxy import UpstreamClient
from gateway.web.sessions import SessionResolver
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
    """The gateway as an aiohttp application; resources live in its cleanup context.

    A store, provider or signer passed in is kept for the app's life, across reloads.
    """
    install_safe_error_answers()
    app = web.Application(handler_args={"max_field_size": 16384})
    app.router.add_route("*", "/{tail:.*}", entry)

    async def services(app: web.Application) -> AsyncIterator[None]:
        own_store = store or build_store(config)
        cache = warm_cache_for(config, own_store)
        provider_http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": "hf-gateway"},
        )
        tunnels = TunnelRegistry()
        assembly = Assembly(
            own_store, cache, tunnels, provider_http, clock, provider=provider, signer=signer
        )
        ctx = assembly.build(config)
        app[LIVE] = LiveGateway(ctx)
        app[ASSEMBLY] = assembly
        assembly.keep_fresh(ctx.provider)
        tasks: list[asyncio.Task[None]] = []
        on_key, on_state = invalidation_listeners(cache, tunnels)
        if isinstance(own_store, InvalidationSource):
            tasks.append(asyncio.create_task(own_store.listen_invalidations(on_key, on_state)))
            if cache is not None:  # batched re-reads of the entries in use (recheck.py)
                tasks.append(asyncio.create_task(keep_rechecking(cache, own_store)))
        else:  # one process, one store: every change is reported here directly
            tunnels.listening_locally()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await tunnels.close()
            await assembly.close()
            await provider_http.close()
            await own_store.close()

    async def end_tunnels(app: web.Application) -> None:
        app[LIVE].current.tunnels.end_all(GOING_AWAY, "the gateway is shutting down")

    app.cleanup_ctx.append(services)
    app.on_shutdown.append(end_tunnels)
    return app


class Assembly:
    """What a process keeps for its whole life (the store, the warm cache, the tunnels,
    the provider's HTTP client) and how a context is built for a configuration.

    A reload builds a new context from the previous one, re-using every part whose
    configuration did not change; each route gets new upstream pools. A replaced
    context is retired: once its last request has ended, whatever no other open context
    shares (its pools, a replaced provider) is closed.
    """

    def __init__(
        self,
        store: SessionStore,
        cache: WarmCache[LoadedSession] | None,
        tunnels: TunnelRegistry,
        provider_http: aiohttp.ClientSession,
        clock: Clock,
        *,
        provider: Provider | None = None,
        signer: AssertionSigner | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.tunnels = tunnels
        self._http = provider_http
        self._clock = clock
        self._fixed_provider = provider
        self._fixed_signer = signer
        self._generated_key: SigningKey | None = None
        self.open: list[GatewayContext] = []
        """The current context and the replaced ones that still have requests."""
        self._refreshers: dict[int, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def build(
        self, config: GatewayConfig, previous: GatewayContext | None = None
    ) -> GatewayContext:
        """A context for ``config``; raises OSError / ValueError when the signing key
        file cannot be used (the caller refuses the configuration)."""
        signer = self._signer_for(config)  # first: the one part that can fail
        provider = self._provider_for(config, previous)
        same_provider = previous is not None and provider is previous.provider
        ctx = GatewayContext(
            config=config,
            access=AccessControl(config),
            sessions=self._sessions_for(config, previous),
            provider=provider,
            signer=signer,
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
            upstream=UpstreamClient(config.routes),
            tokens=previous.tokens
            if previous is not None and same_provider
            else TokenResolver(provider, self.store),
            tunnels=self.tunnels,
            clock=self._clock,
        )
        ctx.resolver = SessionResolver(ctx)
        self.open.append(ctx)
        return ctx

    def _provider_for(self, config: GatewayConfig, previous: GatewayContext | None) -> Provider:
        if self._fixed_provider is not None:
            return self._fixed_provider
        if previous is not None and previous.config.provider == config.provider:
            return previous.provider
        return build_provider(config, self._http)

    def _signer_for(self, config: GatewayConfig) -> AssertionSigner:
        """Re-read on every reload, so a rotated key file takes effect; a generated key
        (no file) is made once and kept, or upstreams would reject the new one."""
        if self._fixed_signer is not None:
            return self._fixed_signer
        assertion = config.identity.assertion
        if assertion.signing_key_file:
            keys = load_signing_keys(assertion.signing_key_file)
        else:
            if self._generated_key is None:
                log.warning(
                    "no identity.assertion.signing_key_file: generated a signing key at start; "
                    "it only suits a single process (set the file for workers > 1 or replicas)"
                )
                self._generated_key = generate_signing_key()
            keys = [self._generated_key]
        return AssertionSigner(keys, issuer=config.server.public_url, ttl=assertion.ttl)

    def _sessions_for(
        self, config: GatewayConfig, previous: GatewayContext | None
    ) -> SessionManager:
        session = config.session
        if (
            previous is not None
            and previous.config.session.secret == session.secret
            and previous.sessions.times == session_times(config)
        ):
            return previous.sessions
        manager = SessionManager(
            self.store,
            SessionKeys.derive([s.get_secret_value() for s in session.secret]),
            session_times(config),
            clock=self._clock,
            cache=self.cache,
        )
        manager.on_change = self.tunnels.invalidated
        return manager

    def keep_fresh(self, provider: Provider) -> None:
        """Load the provider's metadata now and refresh it, once per provider."""
        if id(provider) not in self._refreshers:
            self._refreshers[id(provider)] = asyncio.create_task(keep_metadata_fresh(provider))

    def retire(self, old: GatewayContext, live: LiveGateway) -> None:
        """Close what only ``old`` uses once its last request has ended (in the background)."""
        task = asyncio.create_task(self._retire(old, live))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def discard(self, ctx: GatewayContext) -> None:
        """Forget a context that was built but never served (its reload was refused)."""
        task = asyncio.create_task(self._close_unshared(ctx))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: GatewayContext, live: LiveGateway) -> None:
        await live.idle(old)
        await self._close_unshared(old)

    async def _close_unshared(self, old: GatewayContext) -> None:
        self.open = [ctx for ctx in self.open if ctx is not old]
        if not any(ctx.upstream is old.upstream for ctx in self.open):
            await old.upstream.close()
        if not any(ctx.provider is old.provider for ctx in self.open):
            await self._close_provider(old.provider)

    async def _close_provider(self, provider: Provider) -> None:
        refresher = self._refreshers.pop(id(provider), None)
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await provider.close()

    async def close(self) -> None:
        """Close every open context's parts (the app is stopping)."""
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        upstreams = {id(ctx.upstream): ctx.upstream for ctx in self.open}
        providers = {id(ctx.provider): ctx.provider for ctx in self.open}
        self.open = []
        for upstream in upstreams.values():
            await upstream.close()
        for provider in providers.values():
            await self._close_provider(provider)


ASSEMBLY = web.AppKey("assembly", Assembly)


def session_times(config: GatewayConfig) -> SessionTimes:
    return SessionTimes(
        idle_timeout=config.session.idle_timeout,
        max_lifetime=config.session.max_lifetime,
        revalidate_after=config.session.revalidate_after,
    )


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
        return WarmCache(
            max_bytes=config.session.warm_cache_max_bytes, report=metrics.count_warm_cache
        )
    return None


def build_store(config: GatewayConfig) -> SessionStore:
    if config.session.store == "redis":
        return RedisStore.from_config(config.session)
    return MemoryStore(clock=time.time)


def build_provider(config: GatewayConfig, http: aiohttp.ClientSession) -> Provider:
    if config.provider.kind == "huggingface":
        return HuggingFaceProvider(config.provider, http)
    return OIDCProvider(config.provider, http)


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
