"""Each recording point moves its series: a gateway in this process (real fake HF, real echo
upstream, real HTTP) and the process's own registry read before and after."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import aiohttp

from gateway.devtools.fake_hf import FakeHF
from gateway.metrics import REGISTRY
from tests.integration.conftest import StartGateway
from tests.support.harness import API, BROWSER, GatewayHarness

ALICE_READ = "hf_alice_demo_read_token"
ECHO = "/api/echo"


def value(name: str, labels: Mapping[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, dict(labels or {})) or 0.0


class Moves:
    """Values of some samples at the start; ``by(name, labels)`` is how far one moved."""

    def __init__(self) -> None:
        self._at_start: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in REGISTRY.collect():
            for found in family.samples:
                key = (found.name, tuple(sorted(found.labels.items())))
                self._at_start[key] = found.value

    def by(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, labels) - self._at_start.get(key, 0.0)


@contextmanager
def moves() -> Iterator[Moves]:
    yield Moves()


SIGN_INS = "hf_gateway_sign_ins_total"


async def get(url: str, headers: Mapping[str, str] | None = None, token: str | None = None) -> int:
    sent = dict(headers or API)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=sent) as response:
        await response.read()
        return response.status


async def test_a_sign_in_counts_started_and_completed(gateway: GatewayHarness) -> None:
    with moves() as moved:
        async with gateway.browser() as http:
            await gateway.sign_in(http, "alice")
    assert moved.by(SIGN_INS, event="started", reason="new") == 1
    assert moved.by(SIGN_INS, event="completed", reason="ok") == 1
    assert moved.by(SIGN_INS, event="failed", reason="no_login") == 0


async def test_a_sign_in_asking_for_more_counts_as_more_access(gateway: GatewayHarness) -> None:
    with moves() as moved:
        async with gateway.browser() as http:
            gateway.fake.settings.auto_login = "alice"
            url = f"{gateway.url}/_gateway/login?scope=write-repos"
            async with http.get(url, headers=BROWSER) as answer:
                await answer.read()
    assert moved.by(SIGN_INS, event="started", reason="more_access") == 1
    assert moved.by(SIGN_INS, event="started", reason="new") == 0


async def test_callbacks_without_a_login_count_their_reason(gateway: GatewayHarness) -> None:
    with moves() as moved:
        assert await get(f"{gateway.url}/_gateway/callback?code=x") == 400
        assert await get(f"{gateway.url}/_gateway/callback?code=x&state=made-up") == 400
    assert moved.by(SIGN_INS, event="failed", reason="no_state") == 1
    assert moved.by(SIGN_INS, event="failed", reason="no_login") == 1
    assert moved.by(SIGN_INS, event="completed", reason="ok") == 0


async def test_a_declined_sign_in_counts_access_denied(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    fake_hf.settings.deny = True
    with moves() as moved:
        async with gateway.browser() as http:
            fake_hf.settings.auto_login = "alice"
            async with http.get(f"{gateway.url}/_gateway/login", headers=BROWSER) as answer:
                assert answer.status == 403
    assert moved.by(SIGN_INS, event="failed", reason="access_denied") == 1
    assert moved.by(SIGN_INS, event="completed", reason="ok") == 0


async def test_a_forged_id_token_counts_invalid_id_token(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    fake_hf.settings.id_token_tamper = "signature"
    with moves() as moved:
        async with gateway.browser() as http:
            fake_hf.settings.auto_login = "alice"
            async with http.get(f"{gateway.url}/_gateway/login", headers=BROWSER) as answer:
                assert answer.status == 400
    assert moved.by(SIGN_INS, event="failed", reason="invalid_id_token") == 1


async def test_bearer_tokens_count_cache_results_and_whoami_lookups(
    gateway: GatewayHarness,
) -> None:
    whoami, cache = "hf_gateway_whoami_lookups_total", "hf_gateway_token_cache_lookups_total"
    with moves() as moved:
        assert await get(gateway.url + ECHO, token=ALICE_READ) == 200
        assert await get(gateway.url + ECHO, token=ALICE_READ) == 200
        assert await get(gateway.url + ECHO, token="hf_made_up_token") == 401
        assert await get(gateway.url + ECHO, token="hf_made_up_token") == 401
    assert moved.by(cache, result="miss") == 2
    assert moved.by(cache, result="hit") == 1
    assert moved.by(cache, result="refused_hit") == 1
    assert moved.by(whoami, result="ok") == 1
    assert moved.by(whoami, result="rejected") == 1
    assert moved.by(whoami, result="rate_limited") == 0


async def test_a_rate_limited_whoami_counts_a_provider_429(
    gateway: GatewayHarness, fake_hf: FakeHF
) -> None:
    fake_hf.settings.whoami_rate_limited = True
    with moves() as moved:
        assert await get(gateway.url + ECHO, token="hf_bob_demo_write_token") == 503
    assert moved.by("hf_gateway_whoami_lookups_total", result="rate_limited") == 1
    assert moved.by("hf_gateway_provider_rate_limited_total", endpoint="whoami") == 1
    assert moved.by("hf_gateway_provider_rate_limited_total", endpoint="other") == 0


async def test_a_flood_of_new_tokens_counts_the_client_allowance(gateway: GatewayHarness) -> None:
    with moves() as moved:
        answers = [await get(gateway.url + ECHO, token=f"hf_flood_{n}") for n in range(14)]
    assert 429 in answers
    assert moved.by("hf_gateway_bearer_throttled_total", allowance="client") == answers.count(429)


async def test_revalidation_with_a_refresh_counts_both(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    fake_hf.settings.expires_in = 2
    gateway = await start_gateway({"session": {"revalidate_after": 1}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        with moves() as moved:
            await asyncio.sleep(1.2)
            async with http.get(gateway.url + ECHO, headers=API) as answer:
                assert answer.status == 200
    assert moved.by("hf_gateway_token_refreshes_total", result="ok") == 1
    assert moved.by("hf_gateway_revalidations_total", result="ok") == 1


async def test_a_revoked_token_counts_a_refresh_rejected(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    fake_hf.settings.expires_in = 2
    gateway = await start_gateway({"session": {"revalidate_after": 1}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        fake_hf.revoke_user_tokens("alice")
        with moves() as moved:
            await asyncio.sleep(1.2)
            async with http.get(gateway.url + ECHO, headers=API) as answer:
                assert answer.status == 401
    assert moved.by("hf_gateway_token_refreshes_total", result="rejected") == 1
    assert moved.by("hf_gateway_revalidations_total", result="refresh_failed") == 1
    assert moved.by("hf_gateway_revalidations_total", result="ok") == 0


async def test_a_userinfo_outage_at_revalidation_counts_provider_unavailable(
    start_gateway: StartGateway, fake_hf: FakeHF
) -> None:
    gateway = await start_gateway({"session": {"revalidate_after": 1}})
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        fake_hf.settings.userinfo_status = 503
        with moves() as moved:
            await asyncio.sleep(1.2)
            async with http.get(gateway.url + ECHO, headers=API) as answer:
                assert answer.status == 503
    assert moved.by("hf_gateway_revalidations_total", result="provider_unavailable") == 1


async def test_open_websockets_go_up_and_down(gateway: GatewayHarness) -> None:
    gauge = "hf_gateway_open_websockets"

    def open_now() -> float:
        return sum(
            found.value
            for family in REGISTRY.collect()
            for found in family.samples
            if found.name == gauge
        )

    before = open_now()
    async with gateway.browser() as http:
        await gateway.sign_in(http, "alice")
        ws = await http.ws_connect(f"{gateway.url}/api/ws", protocols=("echo",))
        assert (await ws.receive_str(timeout=5)).startswith("hello ")
        assert open_now() == before + 1
        await ws.close()
    for _ in range(500):  # the gateway forgets the tunnel once both sides have closed
        if open_now() == before:
            break
        await asyncio.sleep(0.02)
    assert open_now() == before
