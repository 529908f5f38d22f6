"""SessionManager over every SessionStore (memory and a real redis-server).

Time is an injected clock the tests advance, so idle timeouts, lifetimes and pending-login
expiry are exercised without sleeping. The stores keep their own (real) TTLs, which the
manager sets long enough that only the manager's own rules end a session here.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from gateway.identity import Identity, Org
from gateway.providers.base import TokenSet
from gateway.session.manager import SessionManager
from gateway.session.model import (
    PENDING_LOGIN_TTL,
    PendingLogin,
    SessionKeys,
    SessionTimes,
    StoredTokens,
    b64e,
    new_code_verifier,
    new_nonce,
    new_session_id,
    new_state,
    sign_cookie,
    store_key,
    used_login_key,
    user_index_key,
    verify_cookie,
)
from gateway.session.store import SessionStore

SECRET = "contract-test-session-secret-0123456789abcdef"
KEYS = SessionKeys.derive([SECRET])
TIMES = SessionTimes(idle_timeout=60, max_lifetime=300, revalidate_after=30)
T0 = 1_700_000_000.0


class Clock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _identity(username: str = "alice") -> Identity:
    return Identity(
        sub=f"sub-{username}",
        username=username,
        name=username.title(),
        email=f"{username}@example.com",
        orgs=(Org(sub="org-acme", slug="acme", role="write"),),
        scopes=frozenset({"openid", "profile"}),
    )


def _tokens(*, refresh: bool = True, expires_in: float | None = 28800) -> TokenSet:
    return TokenSet(
        access_token="hf_oauth_access-" + new_nonce(),
        refresh_token=("hf_oauth__refresh_" + new_nonce()) if refresh else None,
        expires_at=None if expires_in is None else T0 + expires_in,
        scopes=frozenset({"openid", "profile"}),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(store: SessionStore, clock: Clock) -> SessionManager:
    return SessionManager(store, KEYS, TIMES, clock=clock)


def _pending(created_at: float) -> PendingLogin:
    return PendingLogin(
        state=new_state(),
        code_verifier=new_code_verifier(),
        nonce=new_nonce(),
        redirect_to="/dash",
        created_at=created_at,
        scopes=("openid", "profile"),
    )


# --------------------------------------------------------------------------- create, load, destroy


async def test_a_created_session_loads_with_its_identity_and_tokens(
    manager: SessionManager, store: SessionStore
) -> None:
    """create() returns a cookie; load() finds the identity and the decrypted tokens behind it."""
    tokens = _tokens()
    cookie = await manager.create(_identity(), tokens)
    loaded = await manager.load(cookie)
    assert loaded is not None
    assert loaded.record.identity == _identity()
    assert loaded.record.created_at == T0
    assert loaded.record.expires_at == T0 + TIMES.max_lifetime
    assert manager.tokens(loaded.record) == StoredTokens(
        tokens.access_token, tokens.refresh_token, tokens.expires_at
    )
    session_id = verify_cookie(cookie, KEYS)
    assert session_id is not None
    assert loaded.key == store_key(session_id)
    assert await store.index_members(user_index_key("sub-alice")) == [loaded.key]


async def test_the_store_holds_no_usable_id_and_no_token(
    manager: SessionManager, store: SessionStore
) -> None:
    """Only a hash of the id is stored, and the stored record has no token text."""
    tokens = _tokens()
    cookie = await manager.create(_identity(), tokens)
    session_id = verify_cookie(cookie, KEYS)
    assert session_id is not None
    keys = await store.scan("s:")
    assert keys == [store_key(session_id)]
    assert cookie.split(".")[1] not in keys[0]
    data = await store.get(keys[0])
    assert data is not None
    assert tokens.access_token.encode() not in data
    assert tokens.refresh_token is not None and tokens.refresh_token.encode() not in data


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(None, id="no cookie"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param(sign_cookie(new_session_id(), KEYS), id="signed but unknown"),
        pytest.param(
            sign_cookie(new_session_id(), SessionKeys.derive(["x" * 40])), id="other secret"
        ),
    ],
)
async def test_unknown_or_invalid_cookies_load_nothing(
    manager: SessionManager, cookie: str | None
) -> None:
    """load() returns None for anything but a live session's cookie; a real one loads."""
    real = await manager.create(_identity(), _tokens())
    assert await manager.load(real) is not None
    assert await manager.load(cookie) is None


async def test_a_cookie_from_the_old_secret_still_loads_after_rotation(
    store: SessionStore, clock: Clock
) -> None:
    """Rotating session.secret to [new, old] keeps existing sessions signed in."""
    old = SessionManager(store, KEYS, TIMES, clock=clock)
    cookie = await old.create(_identity(), _tokens())
    rotated = SessionManager(
        store,
        SessionKeys.derive(["a-brand-new-session-secret-0123456789", SECRET]),
        TIMES,
        clock=clock,
    )
    loaded = await rotated.load(cookie)
    assert loaded is not None
    assert rotated.tokens(loaded.record).access_token.startswith("hf_oauth_access-")
    other = SessionManager(store, SessionKeys.derive(["x" * 40]), TIMES, clock=clock)
    assert await other.load(cookie) is None


async def test_a_corrupt_record_is_dropped(manager: SessionManager, store: SessionStore) -> None:
    """A record that cannot be decoded loads as no session and is deleted from the store."""
    cookie = await manager.create(_identity(), _tokens())
    session_id = verify_cookie(cookie, KEYS)
    assert session_id is not None
    await store.set(store_key(session_id), b'{"v": 99}', ttl=60)
    assert await manager.load(cookie) is None
    assert await store.get(store_key(session_id)) is None


async def test_destroy_deletes_the_session_server_side(
    manager: SessionManager, store: SessionStore
) -> None:
    """After destroy() the same cookie loads nothing, and the user index forgets it."""
    cookie = await manager.create(_identity(), _tokens())
    assert await manager.load(cookie) is not None
    assert await manager.destroy(cookie) == _identity()
    assert await manager.load(cookie) is None
    assert await store.scan("s:") == []
    assert await store.index_members(user_index_key("sub-alice")) == []
    assert await manager.destroy(cookie) is None  # a second logout is harmless


@pytest.mark.parametrize(
    "cookie",
    [pytest.param(None, id="no cookie"), pytest.param("garbage", id="garbage")],
)
async def test_destroying_without_a_session_changes_nothing(
    manager: SessionManager, cookie: str | None
) -> None:
    """destroy() of a missing or invalid cookie returns None and leaves other sessions alone."""
    other = await manager.create(_identity("bob"), _tokens())
    assert await manager.destroy(cookie) is None
    assert await manager.load(other) is not None


async def test_login_rotates_the_id_and_deletes_the_previous_session(
    manager: SessionManager,
) -> None:
    """create(previous_cookie=...) issues a new id and the previous cookie stops working."""
    first = await manager.create(_identity(), _tokens())
    second = await manager.create(_identity(), _tokens(), previous_cookie=first)
    assert second != first
    assert verify_cookie(second, KEYS) != verify_cookie(first, KEYS)
    assert await manager.load(first) is None
    assert await manager.load(second) is not None


async def test_a_fixated_cookie_never_becomes_signed_in(manager: SessionManager) -> None:
    """A cookie planted before login (valid-looking, unknown) is not the id of the new session."""
    planted = sign_cookie(new_session_id(), KEYS)
    cookie = await manager.create(_identity(), _tokens(), previous_cookie=planted)
    assert cookie != planted
    assert await manager.load(planted) is None
    assert await manager.load(cookie) is not None


async def test_every_login_gets_a_new_id(manager: SessionManager) -> None:
    """Two logins of the same user are two sessions with different cookies."""
    cookies = {await manager.create(_identity(), _tokens()) for _ in range(5)}
    assert len(cookies) == 5


# --------------------------------------------------------------------------- revocation


async def test_revoke_user_removes_every_session_of_that_user_only(
    manager: SessionManager, store: SessionStore
) -> None:
    """revoke_user() ends all of alice's sessions and none of bob's, and reports the count."""
    alice = [await manager.create(_identity("alice"), _tokens()) for _ in range(3)]
    bob = await manager.create(_identity("bob"), _tokens())
    assert await manager.revoke_user("sub-alice") == 3
    for cookie in alice:
        assert await manager.load(cookie) is None
    assert await manager.load(bob) is not None
    assert await store.index_members(user_index_key("sub-alice")) == []
    assert await manager.revoke_user("sub-alice") == 0


async def test_revoke_user_skips_sessions_that_already_ended(manager: SessionManager) -> None:
    """A session logged out earlier is not counted again."""
    kept = await manager.create(_identity(), _tokens())
    gone = await manager.create(_identity(), _tokens())
    await manager.destroy(gone)
    assert await manager.revoke_user("sub-alice") == 1
    assert await manager.load(kept) is None


# --------------------------------------------------------------------------- lifetimes


async def test_an_idle_session_ends_after_idle_timeout(
    manager: SessionManager, clock: Clock, store: SessionStore
) -> None:
    """Without activity, the session is valid until idle_timeout and gone from then on."""
    cookie = await manager.create(_identity(), _tokens())
    clock.advance(TIMES.idle_timeout - 1)
    assert await manager.load(cookie) is not None
    clock.advance(1)
    assert await manager.load(cookie) is None
    assert await store.scan("s:") == []
    assert await store.index_members(user_index_key("sub-alice")) == []


async def test_activity_keeps_a_session_alive_past_idle_timeout(
    manager: SessionManager, clock: Clock
) -> None:
    """Touching the session moves last_seen, so the idle timeout counts from then."""
    cookie = await manager.create(_identity(), _tokens())
    for _ in range(3):
        clock.advance(TIMES.idle_timeout - 10)
        loaded = await manager.load(cookie)
        assert loaded is not None
        await manager.touch(loaded)
    assert clock.now - T0 > TIMES.idle_timeout
    assert await manager.load(cookie) is not None


async def test_max_lifetime_ends_even_an_active_session(
    manager: SessionManager, clock: Clock
) -> None:
    """A session touched all along still ends at max_lifetime after creation."""
    cookie = await manager.create(_identity(), _tokens())
    while clock.now + 50 < T0 + TIMES.max_lifetime:
        clock.advance(50)
        loaded = await manager.load(cookie)
        assert loaded is not None
        await manager.touch(loaded)
    clock.now = T0 + TIMES.max_lifetime
    assert await manager.load(cookie) is None


async def test_without_refresh_token_the_session_ends_with_the_access_token(
    manager: SessionManager, clock: Clock
) -> None:
    """An access token that cannot be refreshed caps the session's life; with one it does not."""
    capped = await manager.create(_identity(), _tokens(refresh=False, expires_in=100))
    renewable = await manager.create(_identity(), _tokens(refresh=True, expires_in=100))
    for step in (50, 49):  # stay active so the idle timeout is not what ends them
        clock.advance(step)
        for cookie in (capped, renewable):
            loaded = await manager.load(cookie)
            assert loaded is not None
            await manager.touch(loaded)
    clock.advance(1)
    assert await manager.load(capped) is None
    assert await manager.load(renewable) is not None


async def test_an_update_stores_the_new_identity_and_rotated_tokens(
    manager: SessionManager, clock: Clock
) -> None:
    """update() replaces identity and tokens, stamps revalidated_at, and recomputes the end."""
    cookie = await manager.create(_identity(), _tokens())
    loaded = await manager.load(cookie)
    assert loaded is not None
    clock.advance(40)
    demoted = Identity(sub="sub-alice", username="alice", orgs=())
    rotated = TokenSet("hf_oauth_new", None, clock.now + 100, frozenset({"openid"}))
    await manager.update(loaded, demoted, rotated)
    reloaded = await manager.load(cookie)
    assert reloaded is not None
    assert reloaded.record.identity == demoted
    assert reloaded.record.revalidated_at == clock.now
    assert manager.tokens(reloaded.record) == StoredTokens("hf_oauth_new", None, clock.now + 100)
    assert reloaded.record.expires_at == clock.now + 100  # no refresh token any more


# --------------------------------------------------------------------------- pending logins


async def test_beginning_a_login_stores_nothing(
    manager: SessionManager, store: SessionStore
) -> None:
    """begin_login() seals the pending login for the cookie; the store stays empty, so
    anonymous requests for /login cannot fill it. open_login() gives it back."""
    pending = _pending(T0)
    sealed = manager.begin_login(pending)
    assert await store.scan("") == []
    assert manager.open_login(sealed) == pending


async def test_a_pending_login_finishes_once(manager: SessionManager, store: SessionStore) -> None:
    """finish_login() marks the state used: the first call wins, a replay is refused, and
    the marker is a hash of the state, never the state."""
    pending = _pending(T0)
    assert not await manager.login_used(pending.state)
    assert await manager.finish_login(pending)
    assert await manager.login_used(pending.state)
    assert not await manager.finish_login(pending)
    [marker] = await store.scan("used:")
    assert pending.state not in marker


async def test_a_pending_login_is_single_use_under_concurrency(manager: SessionManager) -> None:
    """Of many callbacks racing with one state, exactly one finishes the login."""
    pending = _pending(T0)
    results = await asyncio.gather(*(manager.finish_login(pending) for _ in range(10)))
    assert results.count(True) == 1
    assert results.count(False) == 9


async def test_pending_logins_are_kept_apart(manager: SessionManager) -> None:
    """Two logins in flight (two tabs) each finish with their own state."""
    first, second = _pending(T0), _pending(T0)
    assert first.state != second.state
    assert manager.begin_login(first) != manager.begin_login(second)
    assert await manager.finish_login(second)
    assert not await manager.login_used(first.state)
    assert await manager.finish_login(first)


async def test_a_pending_login_expires_after_ten_minutes(
    manager: SessionManager, clock: Clock
) -> None:
    """A callback later than PENDING_LOGIN_TTL after the login started is refused."""
    pending = _pending(clock.now)
    sealed = manager.begin_login(pending)
    clock.advance(PENDING_LOGIN_TTL - 1)
    assert manager.open_login(sealed) == pending
    clock.advance(1)
    assert manager.open_login(sealed) is None
    assert not await manager.finish_login(pending)


async def test_the_used_marker_lives_as_long_as_the_login_could(
    manager: SessionManager, store: SessionStore, clock: Clock
) -> None:
    """The marker is kept for the rest of the login's ten minutes and no longer, so the
    store holds one small key per finished login for at most that long."""
    pending = _pending(clock.now - PENDING_LOGIN_TTL + 1)
    assert await manager.finish_login(pending)
    assert await manager.login_used(pending.state)
    await asyncio.sleep(1.5)
    assert await store.get(used_login_key(pending.state)) is None


@pytest.mark.parametrize(
    "sealed",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="garbage"),
        pytest.param("A" * 300, id="made up"),
        pytest.param(b64e(secrets.token_bytes(300)), id="random bytes"),
    ],
)
async def test_values_not_sealed_by_us_open_no_login(manager: SessionManager, sealed: str) -> None:
    """A binding cookie the gateway never sealed opens nothing; a real one does."""
    assert manager.open_login(sealed) is None
    assert manager.open_login(manager.begin_login(_pending(T0))) is not None


async def test_a_login_sealed_under_another_secret_opens_nowhere_else(
    store: SessionStore, clock: Clock
) -> None:
    """Replicas with another session.secret cannot open this gateway's logins."""
    ours = SessionManager(store, KEYS, TIMES, clock=clock)
    theirs = SessionManager(store, SessionKeys.derive(["x" * 40]), TIMES, clock=clock)
    sealed = ours.begin_login(_pending(T0))
    assert theirs.open_login(sealed) is None
    assert ours.open_login(sealed) is not None


# --------------------------------------------------------------------------- races with logout


async def test_a_touch_racing_a_logout_does_not_bring_the_session_back(
    manager: SessionManager, clock: Clock
) -> None:
    """A request that loaded the session just before logout cannot re-create it by
    recording its activity afterwards; without the logout the touch is kept."""
    cookie = await manager.create(_identity(), _tokens())
    clock.advance(TIMES.idle_timeout - 1)
    loaded = await manager.load(cookie)
    assert loaded is not None
    touched = await manager.touch(loaded)
    assert touched is not None
    assert touched.record.last_seen == clock.now
    loaded = await manager.load(cookie)
    assert loaded is not None
    await manager.destroy(cookie)
    assert await manager.touch(loaded) is None
    assert await manager.load(cookie) is None


async def test_a_revalidation_racing_a_revocation_does_not_bring_the_session_back(
    manager: SessionManager,
) -> None:
    """An identity update (or refreshed tokens) written after revoke_user() is dropped."""
    cookie = await manager.create(_identity(), _tokens())
    loaded = await manager.load(cookie)
    assert loaded is not None
    assert await manager.update(loaded, _identity(), None) is not None
    await manager.revoke_user("sub-alice")
    assert await manager.update(loaded, _identity(), _tokens()) is None
    assert await manager.store_tokens(loaded, _tokens()) is None
    assert await manager.load(cookie) is None


async def test_a_stale_copy_never_reverts_rotated_tokens(
    manager: SessionManager, clock: Clock
) -> None:
    """A request holding an older copy (warm cache, or loaded before a refresh elsewhere)
    records activity or a revalidation without writing back the spent refresh token."""
    cookie = await manager.create(_identity(), _tokens())
    stale = await manager.load(cookie)
    assert stale is not None
    fresh = await manager.load(cookie)
    assert fresh is not None
    rotated = _tokens()
    assert await manager.store_tokens(fresh, rotated) is not None
    clock.advance(90)
    assert await manager.touch(stale) is not None
    assert await manager.update(stale, _identity(), None) is not None
    current = await manager.load(cookie)
    assert current is not None
    assert manager.tokens(current.record).refresh_token == rotated.refresh_token
    assert current.record.last_seen == clock.now
