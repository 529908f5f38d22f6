"""The device-flow state machine (gateway.device_login) and the token file
(gateway.saved_tokens), over real HTTP against the fake Hugging Face. Time is steered with
the fake's own settings (small intervals, a zero lifetime), never by patching clocks."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.device_login import (
    DeviceAuthorization,
    DeviceLoginError,
    Endpoints,
    Poller,
    discover,
    start,
)
from gateway.devtools.fake_hf import FakeHF
from gateway.devtools.fake_hf_model import FakeClient
from gateway.saved_tokens import SavedToken, gateway_key, load, lookup, save, token_file

CLI_APP = "hf-gateway-cli-test"


@pytest.fixture
async def fake() -> AsyncIterator[FakeHF]:
    provider = FakeHF.demo()
    provider.clients[CLI_APP] = FakeClient(CLI_APP, None, [], name="hf-gateway CLI")
    provider.settings.device_interval = 0
    async with provider.serve():
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def begin(fake: FakeHF, http: aiohttp.ClientSession) -> tuple[Endpoints, DeviceAuthorization]:
    endpoints = await discover(http, fake.issuer)
    return endpoints, await start(http, endpoints, CLI_APP, ["openid", "profile"])


async def approve(fake: FakeHF, http: aiohttp.ClientSession, user_code: str, action: str) -> None:
    """What alice's browser does on the fake's device page."""
    form = {"user_code": user_code, "username": "alice", "action": action}
    async with http.post(f"{fake.issuer}/oauth/device/verify", data=form) as response:
        assert response.status == 200, await response.text()


async def test_the_endpoints_come_from_the_discovery_document(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """The fake's document names both; an issuer with none falls back to HF's fixed paths."""
    endpoints = await discover(http, fake.issuer)
    assert endpoints == Endpoints(f"{fake.issuer}/oauth/device", f"{fake.issuer}/oauth/token")
    fake.settings.discovery_overrides = {"device_authorization_endpoint": None}
    missing = await discover(http, fake.issuer + "/")
    assert missing.device_authorization == f"{fake.issuer}/oauth/device"


async def test_pending_until_approved_then_an_oauth_token(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """authorization_pending keeps the poller waiting; after alice approves, one poll gets an
    hf_oauth_ token that whoami-v2 knows as alice."""
    endpoints, authorization = await begin(fake, http)
    assert authorization.user_code and authorization.verification_uri.endswith("/oauth/device")
    poller = Poller(http, endpoints, CLI_APP, authorization)
    assert await poller.poll_once() is None
    assert poller.last == "authorization_pending"
    await approve(fake, http, authorization.user_code, "approve")
    token = await poller.poll_once()
    assert token is not None and token.access_token.startswith("hf_oauth_")
    assert token.access_token not in repr(token)
    headers = {"Authorization": f"Bearer {token.access_token}"}
    async with http.get(f"{fake.issuer}/api/whoami-v2", headers=headers) as response:
        assert (await response.json())["name"] == "alice"


async def test_slow_down_adds_five_seconds_for_every_later_poll(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """Two polls inside the fake's 1 s interval: the second is slow_down, and the poller's
    interval grows by 5 s (RFC 8628 §3.5) and stays grown."""
    fake.settings.device_interval = 1
    endpoints, authorization = await begin(fake, http)
    poller = Poller(http, endpoints, CLI_APP, authorization)
    assert poller.interval == 1
    assert await poller.poll_once() is None
    assert await poller.poll_once() is None
    assert (poller.last, poller.interval) == ("slow_down", 6)
    assert await poller.poll_once() is None
    assert poller.interval == 11


async def test_a_denied_login_ends_with_access_denied(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    endpoints, authorization = await begin(fake, http)
    poller = Poller(http, endpoints, CLI_APP, authorization)
    await approve(fake, http, authorization.user_code, "deny")
    with pytest.raises(DeviceLoginError) as raised:
        await poller.poll_once()
    assert raised.value.code == "access_denied"


async def test_an_expired_code_ends_the_login(fake: FakeHF, http: aiohttp.ClientSession) -> None:
    """The provider says expired_token; the poller's own deadline stops wait() without a
    poll past the code's lifetime."""
    fake.settings.device_expires_in = 0
    endpoints, authorization = await begin(fake, http)
    with pytest.raises(DeviceLoginError) as raised:
        await Poller(http, endpoints, CLI_APP, authorization).poll_once()
    assert raised.value.code == "expired_token"
    with pytest.raises(DeviceLoginError) as waited:
        await Poller(http, endpoints, CLI_APP, authorization).wait()
    assert waited.value.code == "expired_token"


async def test_wait_sleeps_the_interval_and_returns_the_token(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """A real wait at the fake's 1 s interval: approval lands while the poller sleeps, and
    the poll after it brings the token; the poller never polled too fast (no slow_down)."""
    fake.settings.device_interval = 1
    endpoints, authorization = await begin(fake, http)
    poller = Poller(http, endpoints, CLI_APP, authorization)
    waiting = asyncio.create_task(poller.wait())
    await asyncio.sleep(0.2)
    await approve(fake, http, authorization.user_code, "approve")
    token = await asyncio.wait_for(waiting, 5)
    assert token.access_token.startswith("hf_oauth_")
    assert poller.interval == 1


async def test_a_confidential_app_without_its_secret_is_refused(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """The gateway's own (confidential) app cannot be used by a CLI: invalid_client."""
    endpoints = await discover(http, fake.issuer)
    with pytest.raises(DeviceLoginError) as raised:
        await start(http, endpoints, "hf-gateway-demo", ["openid"])
    assert raised.value.code == "invalid_client"


async def test_an_unreachable_token_endpoint_backs_off_and_keeps_polling(
    fake: FakeHF, http: aiohttp.ClientSession
) -> None:
    """A refused connection is not the end of the login: the wait doubles, polling goes on."""
    _, authorization = await begin(fake, http)
    dead = Endpoints("http://127.0.0.1:9/oauth/device", "http://127.0.0.1:9/oauth/token")
    poller = Poller(http, dead, CLI_APP, authorization)
    assert await poller.poll_once() is None
    assert await poller.poll_once() is None
    assert poller.last == "unavailable"


# ----------------------------------------------------------------------- token file


def test_tokens_are_saved_0600_keyed_by_gateway_origin(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "hf-gateway" / "tokens.json"
    save(path, "https://Tools.Example.com:443/some/page", SavedToken("hf_oauth_a", None, "alice"))
    save(path, "http://127.0.0.1:8080", SavedToken("hf_oauth_b", 2_000_000_000, "bob"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(load(path)) == {"https://tools.example.com", "http://127.0.0.1:8080"}
    assert lookup(path, "https://tools.example.com", 0).access_token == "hf_oauth_a"  # type: ignore[union-attr]
    assert [p.name for p in path.parent.iterdir()] == ["tokens.json"]  # no temporary left


def test_an_expiring_token_is_not_handed_out(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    save(path, "https://a.example", SavedToken("hf_oauth_a", 1000, "alice"))
    assert lookup(path, "https://a.example", 900) is not None
    assert lookup(path, "https://a.example", 950) is None  # within the 60 s margin
    assert lookup(path, "https://b.example", 0) is None


def test_the_token_file_location(tmp_path: Path) -> None:
    assert token_file({"HF_GATEWAY_TOKEN_FILE": "/x/t.json"}) == Path("/x/t.json")
    assert token_file({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/hf-gateway/tokens.json")
    assert token_file({}).parts[-3:] == (".config", "hf-gateway", "tokens.json")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://tools.example.com/", "https://tools.example.com"),
        ("HTTP://LOCALHOST:80/x", "http://localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_gateway_keys_are_origins(url: str, key: str) -> None:
    assert gateway_key(url) == key


@pytest.mark.parametrize("url", ["ftp://x.example", "not a url", "https://"])
def test_only_http_urls_are_gateways(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        gateway_key(url)
