"""Session records, pending logins and cookies (gateway/session/model.py): pure tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.identity import Identity
from gateway.session.model import (
    MAX_COOKIE_LENGTH,
    MAX_SEALED_LOGIN,
    PENDING_LOGIN_TTL,
    RECORD_VERSION,
    SESSION_ID_BYTES,
    TOUCH_INTERVAL,
    PendingLogin,
    RecordError,
    SessionKeys,
    SessionRecord,
    SessionTimes,
    StoredTokens,
    absolute_expiry,
    b64d,
    b64e,
    decode_record,
    decrypt_tokens,
    encode_record,
    encrypt_tokens,
    needs_revalidation,
    needs_touch,
    new_code_verifier,
    new_nonce,
    new_session_id,
    new_state,
    open_pending,
    pending_remaining,
    seal_pending,
    session_expired,
    sign_cookie,
    store_key,
    store_ttl,
    used_login_key,
    user_index_key,
    verify_cookie,
)
from tests.unit.conftest import SECRET, identity, org

OLD_SECRET = "an-older-session-secret-that-is-being-rotated-out"
OTHER_SECRET = "a-different-deployment-secret-0123456789abcdef"
KEYS = SessionKeys.derive([SECRET])
TIMES = SessionTimes(idle_timeout=3600, max_lifetime=86400, revalidate_after=300)
ACCESS = "hf_oauth_eyJhbGciOiJFZERTQSJ9.access-token-text.signature"
REFRESH = "hf_oauth__refresh_r3fr3sh-token-text"
T0 = 1_700_000_000.0
COOKIE_SHAPE = re.compile(r"^v1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$")


def _mac(key: bytes, body: str) -> str:
    return b64e(hmac.new(key, body.encode(), hashlib.sha256).digest())


RECORD = SessionRecord(
    identity=identity("alice", orgs=[org("acme", "admin"), org("labs", None)]),
    tokens=encrypt_tokens(StoredTokens(ACCESS, REFRESH, T0 + 28800), KEYS),
    created_at=T0,
    last_seen=T0,
    revalidated_at=T0,
    expires_at=T0 + TIMES.max_lifetime,
    has_refresh_token=True,
    access_expires_at=T0 + 28800,
)


def _record(**changes: Any) -> SessionRecord:
    return replace(RECORD, **changes)


def _pending(**changes: Any) -> PendingLogin:
    pending = PendingLogin(
        state=new_state(),
        code_verifier=new_code_verifier(),
        nonce=new_nonce(),
        redirect_to="/dash?x=1",
        created_at=T0,
        scopes=("openid", "profile", "read-memberships"),
        org_ids=("6650a1c2e3f4a5b6c7d8e9f0",),
    )
    return replace(pending, **changes)


# --------------------------------------------------------------------------- keys


def test_at_least_one_secret_is_required() -> None:
    """Deriving keys from no secret at all is refused."""
    with pytest.raises(ValueError, match="at least one"):
        SessionKeys.derive([])


def test_each_purpose_gets_its_own_key() -> None:
    """Cookies, tokens at rest and sealed logins use distinct keys, none equal to the secret."""
    keys = SessionKeys.derive([SECRET])
    derived = {keys.cookie[0], keys.tokens[0], keys.login[0]}
    assert len(derived) == 3
    assert SECRET.encode() not in derived
    assert all(len(key) == 32 for key in derived)


def test_key_derivation_is_deterministic_per_secret() -> None:
    """Replicas sharing a secret derive the same keys; another secret derives others."""
    assert SessionKeys.derive([SECRET]) == SessionKeys.derive([SECRET])
    assert SessionKeys.derive([OTHER_SECRET]).cookie != KEYS.cookie


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("YWJj=", id="padding"),
        pytest.param("a+b/", id="standard alphabet"),
        pytest.param("a", id="impossible length"),
        pytest.param("YWJj!!!!", id="characters outside the alphabet"),
        pytest.param("YW Jj", id="inner space"),
        pytest.param("YR", id="unused bits set"),
        pytest.param("YWJjé", id="non-ASCII"),
    ],
)
def test_b64d_is_strict(text: str) -> None:
    """Only unpadded base64url decodes; everything else raises ValueError."""
    with pytest.raises(ValueError):
        b64d(text)


def test_b64_round_trips_every_byte() -> None:
    """b64e and b64d are inverses over arbitrary bytes, without padding."""
    data = bytes(range(256))
    assert "=" not in b64e(data)
    assert b64d(b64e(data)) == data


# --------------------------------------------------------------------------- cookies


def test_a_signed_cookie_verifies_to_its_session_id() -> None:
    """sign_cookie produces v1.<id>.<mac> and verify_cookie returns the same id."""
    session_id = new_session_id()
    cookie = sign_cookie(session_id, KEYS)
    assert COOKIE_SHAPE.match(cookie)
    assert len(cookie) <= MAX_COOKIE_LENGTH
    assert verify_cookie(cookie, KEYS) == session_id


def test_session_ids_are_random_and_32_bytes() -> None:
    """Every new session id is 32 fresh random bytes."""
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert {len(i) for i in ids} == {SESSION_ID_BYTES}


def _tampered_id(cookie: str) -> str:
    version, _, mac = cookie.split(".")
    return f"{version}.{b64e(new_session_id())}.{mac}"


def _tampered_mac(cookie: str) -> str:
    version, encoded, mac = cookie.split(".")
    raw = bytearray(b64d(mac))
    raw[0] ^= 0x01
    return f"{version}.{encoded}.{b64e(bytes(raw))}"


def _wrong_version(cookie: str) -> str:
    """A v2 cookie whose MAC is correct for its v2 body: the version alone must refuse it."""
    _, encoded, _ = cookie.split(".")
    body = f"v2.{encoded}"
    return f"{body}.{_mac(KEYS.cookie[0], body)}"


def _flip_unused_bits(last: str) -> str:
    """Another final character that decodes to the same 32 bytes (its low 2 bits are unused)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(last) ^ 0x01]


def _signed_id_of(size: int) -> str:
    return sign_cookie(b"\x07" * size, KEYS)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered_id, id="another id under the old mac"),
        pytest.param(_tampered_mac, id="one bit of the mac flipped"),
        pytest.param(_wrong_version, id="v2 with a valid mac"),
        pytest.param(lambda c: c.replace("v1.", "V1.", 1), id="version case changed"),
        pytest.param(lambda c: _signed_id_of(16), id="16-byte id correctly signed"),
        pytest.param(lambda c: _signed_id_of(33), id="33-byte id correctly signed"),
        pytest.param(lambda c: _signed_id_of(0), id="empty id correctly signed"),
        pytest.param(lambda c: c + "=", id="padding appended"),
        pytest.param(lambda c: c + "!!!!", id="characters outside the alphabet appended"),
        pytest.param(lambda c: c[:-1] + _flip_unused_bits(c[-1]), id="unused mac bits set"),
        pytest.param(lambda c: c + ".extra", id="a fourth part"),
        pytest.param(lambda c: c.rsplit(".", 1)[0], id="mac missing"),
        pytest.param(lambda c: c.rsplit(".", 1)[0] + ".", id="empty mac"),
        pytest.param(lambda c: c[:-1] + "é", id="non-ASCII character"),
        pytest.param(lambda c: c[:10] + "\x00" + c[11:], id="NUL byte"),
        pytest.param(lambda c: c + " ", id="trailing space"),
        pytest.param(lambda c: "v1." + "A" * 65536, id="64 KB value"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: "garbage", id="garbage"),
        pytest.param(lambda c: "..", id="only dots"),
    ],
)
def test_forged_or_malformed_cookies_do_not_verify(forge: Any) -> None:
    """Any change to a valid cookie, or anything that is not one, yields None (no exception)."""
    cookie = sign_cookie(new_session_id(), KEYS)
    assert verify_cookie(cookie, KEYS) is not None
    assert verify_cookie(forge(cookie), KEYS) is None


def test_a_missing_cookie_verifies_to_none() -> None:
    """No cookie at all is simply no session."""
    assert verify_cookie(None, KEYS) is None


def test_a_cookie_signed_with_another_secret_is_refused() -> None:
    """A cookie from another deployment (another secret) does not verify here, and vice versa."""
    session_id = new_session_id()
    theirs = sign_cookie(session_id, SessionKeys.derive([OTHER_SECRET]))
    assert verify_cookie(theirs, KEYS) is None
    assert verify_cookie(theirs, SessionKeys.derive([OTHER_SECRET])) == session_id


def test_rotation_old_cookies_verify_and_new_ones_use_the_first_secret() -> None:
    """With [new, old], cookies signed by old still verify and new cookies are signed by new."""
    old_keys = SessionKeys.derive([OLD_SECRET])
    rotated = SessionKeys.derive([SECRET, OLD_SECRET])
    session_id = new_session_id()
    old_cookie = sign_cookie(session_id, old_keys)
    assert verify_cookie(old_cookie, rotated) == session_id
    new_cookie = sign_cookie(session_id, rotated)
    assert new_cookie != old_cookie
    assert new_cookie == sign_cookie(session_id, KEYS)
    assert verify_cookie(new_cookie, old_keys) is None
    assert verify_cookie(old_cookie, KEYS) is None  # once old is dropped, its cookies die


def test_a_cookie_mac_is_not_the_login_or_token_key() -> None:
    """A cookie MAC made with another purpose's key (same secret) is refused."""
    session_id = new_session_id()
    body = f"v1.{b64e(session_id)}"
    for key in (KEYS.tokens[0], KEYS.login[0]):
        assert verify_cookie(f"{body}.{_mac(key, body)}", KEYS) is None
    assert verify_cookie(f"{body}.{_mac(KEYS.cookie[0], body)}", KEYS) == session_id


# --------------------------------------------------------------------------- store keys


def test_store_key_is_a_hash_that_never_reveals_the_session_id() -> None:
    """The store key is sha256 of the id: stable, distinct per id, and holds no form of the id."""
    session_id = new_session_id()
    key = store_key(session_id)
    assert key == "s:" + hashlib.sha256(session_id).hexdigest()
    assert store_key(session_id) == key
    assert store_key(new_session_id()) != key
    cookie = sign_cookie(session_id, KEYS)
    for form in (session_id.hex(), b64e(session_id), cookie, cookie.split(".")[1]):
        assert form not in key


def test_other_keys_are_hashed_and_namespaced() -> None:
    """User index and pending-login keys are hashes under their own prefixes."""
    assert user_index_key("3f501019b1460301dacf1e59").startswith("u:")
    assert "3f501019b1460301dacf1e59" not in user_index_key("3f501019b1460301dacf1e59")
    state = new_state()
    assert used_login_key(state).startswith("used:")
    assert state not in used_login_key(state)
    assert used_login_key(state) != used_login_key(new_state())


# --------------------------------------------------------------------------- tokens at rest


def test_tokens_are_encrypted_at_rest() -> None:
    """The blob round-trips but holds no token text, encoded or not, and is fresh each time."""
    tokens = StoredTokens(ACCESS, REFRESH, T0 + 28800)
    blob = encrypt_tokens(tokens, KEYS)
    raw = b64d(blob)
    for secret in (ACCESS, REFRESH, "access-token-text", "r3fr3sh"):
        assert secret not in blob
        assert secret.encode() not in raw
    assert encrypt_tokens(tokens, KEYS) != blob  # random nonce per encryption
    assert decrypt_tokens(blob, KEYS) == tokens


def test_tokens_without_refresh_or_expiry_round_trip() -> None:
    """Optional fields survive encryption as None."""
    tokens = StoredTokens(ACCESS)
    assert decrypt_tokens(encrypt_tokens(tokens, KEYS), KEYS) == tokens


def test_tokens_decrypt_with_a_rotated_secret_list() -> None:
    """Tokens sealed under the old secret open with [new, old]; new ones are sealed with new."""
    tokens = StoredTokens(ACCESS, REFRESH, T0)
    old_keys = SessionKeys.derive([OLD_SECRET])
    rotated = SessionKeys.derive([SECRET, OLD_SECRET])
    assert decrypt_tokens(encrypt_tokens(tokens, old_keys), rotated) == tokens
    assert decrypt_tokens(encrypt_tokens(tokens, rotated), KEYS) == tokens


def test_tokens_sealed_with_another_secret_raise_record_error() -> None:
    """A blob from another secret, or one altered in transit, is a RecordError."""
    tokens = StoredTokens(ACCESS, REFRESH, T0)
    theirs = encrypt_tokens(tokens, SessionKeys.derive([OTHER_SECRET]))
    with pytest.raises(RecordError):
        decrypt_tokens(theirs, KEYS)
    raw = bytearray(b64d(encrypt_tokens(tokens, KEYS)))
    raw[-1] ^= 0x01
    with pytest.raises(RecordError):
        decrypt_tokens(b64e(bytes(raw)), KEYS)


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param("", id="empty"),
        pytest.param("not base64!", id="not base64url"),
        pytest.param(b64e(b"short"), id="shorter than a nonce"),
    ],
)
def test_malformed_token_blobs_raise_record_error(blob: str) -> None:
    """Garbage in the tokens field is a RecordError, never another exception."""
    with pytest.raises(RecordError):
        decrypt_tokens(blob, KEYS)


# --------------------------------------------------------------------------- records


def test_a_record_round_trips_through_encode_and_decode() -> None:
    """Every field, including orgs, scopes and extra, survives encoding."""
    record = _record(extra={"note": "kept"}, last_seen=T0 + 5, revalidated_at=T0 + 3)
    decoded = decode_record(encode_record(record))
    assert decoded == record
    assert isinstance(decoded.identity, Identity)
    assert decoded.identity.orgs[0].role == "admin"
    assert decoded.identity.orgs[1].role is None


def test_an_encoded_record_holds_no_token_text() -> None:
    """The stored bytes carry the identity and encrypted tokens, never the tokens themselves."""
    data = encode_record(_record())
    assert ACCESS.encode() not in data
    assert REFRESH.encode() not in data
    assert b"alice" in data  # the identity is stored in the clear, on purpose


def test_a_record_without_refresh_token_round_trips() -> None:
    """has_refresh_token False and a missing access expiry are preserved."""
    record = _record(has_refresh_token=False, access_expires_at=None)
    assert decode_record(encode_record(record)) == record


def _encoded(**changes: Any) -> bytes:
    raw = json.loads(encode_record(_record()))
    raw.update(changes)
    return json.dumps(raw).encode()


def _without(name: str) -> bytes:
    raw = json.loads(encode_record(_record()))
    del raw[name]
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"\xff\xfe\x00", id="invalid UTF-8"),
        pytest.param(b"[]", id="a JSON list"),
        pytest.param(b"null", id="JSON null"),
        pytest.param(b'"text"', id="a JSON string"),
        pytest.param(_encoded(v=RECORD_VERSION + 1), id="future version"),
        pytest.param(_encoded(v=0), id="older version"),
        pytest.param(_without("v"), id="no version"),
        pytest.param(_without("identity"), id="no identity"),
        pytest.param(_without("tokens"), id="no tokens"),
        pytest.param(_without("expires_at"), id="no expiry"),
        pytest.param(_encoded(created_at="yesterday"), id="time not a number"),
        pytest.param(_encoded(identity="alice"), id="identity not an object"),
        pytest.param(_encoded(identity={"username": "alice"}), id="identity without sub"),
        pytest.param(_encoded(extra=[1, 2]), id="extra not an object"),
    ],
)
def test_corrupt_or_foreign_records_raise_record_error(data: bytes) -> None:
    """Anything but a current, well-formed record is a RecordError (callers drop it)."""
    assert decode_record(encode_record(_record())) == _record()
    with pytest.raises(RecordError):
        decode_record(data)


# --------------------------------------------------------------------------- lifetimes


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(T0, None, id="just created"),
        pytest.param(T0 + 3599, None, id="one second before idle timeout"),
        pytest.param(T0 + 3600, "idle", id="at idle timeout"),
        pytest.param(T0 + 7200, "idle", id="long idle"),
    ],
)
def test_an_untouched_session_ends_at_its_idle_timeout(now: float, expected: str | None) -> None:
    """Without requests, the session ends idle_timeout after last_seen."""
    assert session_expired(_record(), now, TIMES) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(T0 + 86399, None, id="one second before max lifetime"),
        pytest.param(T0 + 86400, "expired", id="at max lifetime"),
        pytest.param(T0 + 90000, "expired", id="past max lifetime"),
    ],
)
def test_an_active_session_still_ends_at_its_absolute_expiry(
    now: float, expected: str | None
) -> None:
    """Recent activity does not extend a session past expires_at."""
    record = _record(last_seen=now - 10)
    assert session_expired(record, now, TIMES) == expected


def test_absolute_expiry_wins_over_idle_when_both_have_passed() -> None:
    """A session both idle and past its end reports "expired"."""
    record = _record(expires_at=T0 + 100)
    assert session_expired(record, T0 + 5000, TIMES) == "expired"


@pytest.mark.parametrize(
    ("access_expires_at", "has_refresh", "expected"),
    [
        pytest.param(T0 + 28800, False, T0 + 28800, id="no refresh token: capped by the token"),
        pytest.param(T0 + 28800, True, T0 + 86400, id="refresh token: max lifetime"),
        pytest.param(None, False, T0 + 86400, id="token without expiry: max lifetime"),
        pytest.param(T0 + 10**6, False, T0 + 86400, id="token outliving max lifetime"),
    ],
)
def test_absolute_expiry_is_capped_by_an_unrefreshable_access_token(
    access_expires_at: float | None, has_refresh: bool, expected: float
) -> None:
    """Without a refresh token the session cannot outlive its access token."""
    assert absolute_expiry(T0, TIMES, access_expires_at, has_refresh) == expected


@pytest.mark.parametrize(
    ("record", "now", "expected"),
    [
        pytest.param(_record(), T0, 3600, id="idle timeout first"),
        pytest.param(_record(expires_at=T0 + 100), T0, 100, id="absolute end first"),
        pytest.param(_record(expires_at=T0 + 100.2), T0, 101, id="rounded up"),
        pytest.param(_record(), T0 + 3599.5, 1, id="half a second left"),
        pytest.param(_record(), T0 + 9999, 1, id="already over: at least one second"),
    ],
)
def test_store_ttl_keeps_the_record_until_its_first_end(
    record: SessionRecord, now: float, expected: int
) -> None:
    """The store TTL is the time to the idle or absolute end, whole seconds, never below 1."""
    assert store_ttl(record, now, TIMES) == expected


def test_last_seen_is_written_at_most_once_per_touch_interval() -> None:
    """needs_touch is False until TOUCH_INTERVAL has passed; touched() moves only last_seen."""
    record = _record()
    assert not needs_touch(record, T0 + TOUCH_INTERVAL - 1)
    assert needs_touch(record, T0 + TOUCH_INTERVAL)
    touched = record.touched(T0 + 70)
    assert touched.last_seen == T0 + 70
    assert replace(touched, last_seen=T0) == record


def test_a_short_idle_timeout_shortens_the_touch_interval() -> None:
    """With an idle timeout below a minute, activity is recorded often enough to count."""
    short = SessionTimes(idle_timeout=2, max_lifetime=60, revalidate_after=1)
    record = _record()
    assert not needs_touch(record, T0 + 0.1, short)
    assert needs_touch(record, T0 + 1, short)
    assert not needs_touch(record, T0 + 1, TIMES)


def test_revalidation_is_due_after_revalidate_after() -> None:
    """needs_revalidation flips exactly at revalidate_after."""
    record = _record()
    assert not needs_revalidation(record, T0 + 299, TIMES)
    assert needs_revalidation(record, T0 + 300, TIMES)


# --------------------------------------------------------------------------- pending logins


def _seal_raw(plain: bytes, key: bytes = KEYS.login[0]) -> str:
    """Seal arbitrary bytes the way seal_pending does (to test what opening accepts)."""
    nonce = b"\x00" * 12
    return b64e(nonce + AESGCM(key).encrypt(nonce, plain, b"hf-gateway pending login v1"))


def _plain(pending: PendingLogin) -> dict[str, Any]:
    """The JSON inside a sealed pending login."""
    nonce_and_box = b64d(seal_pending(pending, KEYS))
    data = AESGCM(KEYS.login[0]).decrypt(
        nonce_and_box[:12], nonce_and_box[12:], b"hf-gateway pending login v1"
    )
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def test_a_pending_login_round_trips_through_its_seal() -> None:
    """Every field of a pending login survives sealing and opening."""
    pending = _pending()
    assert open_pending(seal_pending(pending, KEYS), KEYS) == pending


def test_a_sealed_pending_login_reveals_nothing_and_never_repeats() -> None:
    """The cookie value is opaque base64url: no state, verifier, nonce, target or org in it,
    and sealing the same login twice gives two different values."""
    pending = _pending()
    sealed = seal_pending(pending, KEYS)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", sealed)
    raw = b64d(sealed)
    for secret in (pending.state, pending.code_verifier, pending.nonce, "/dash", "6650a1c2"):
        assert secret not in sealed
        assert secret.encode() not in raw
    assert seal_pending(pending, KEYS) != sealed


def test_a_typical_sealed_login_is_small() -> None:
    """Default scopes, a short target and one org: a few hundred characters, far below the
    per-cookie limit of browsers (4096 with the name)."""
    assert len(seal_pending(_pending(), KEYS)) < 500
    assert MAX_SEALED_LOGIN <= 2000


def _tampered() -> str:
    sealed = b64d(seal_pending(_pending(), KEYS))
    flipped = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
    return b64e(flipped)


@pytest.mark.parametrize(
    "sealed",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage!", id="not base64url"),
        pytest.param(b64e(b"short"), id="too short to hold a tag"),
        pytest.param(_tampered(), id="one bit flipped"),
        pytest.param(seal_pending(_pending(), KEYS)[:-4], id="truncated"),
        pytest.param(
            seal_pending(_pending(), SessionKeys.derive([OTHER_SECRET])), id="another secret"
        ),
        pytest.param(encrypt_tokens(StoredTokens(ACCESS), KEYS), id="a tokens-at-rest blob"),
        pytest.param(sign_cookie(new_session_id(), KEYS), id="a session cookie"),
        pytest.param("A" * (MAX_SEALED_LOGIN + 1), id="oversized"),
        pytest.param("bïnding", id="non-ASCII"),
        pytest.param(_seal_raw(b"garbage"), id="sealed garbage"),
        pytest.param(_seal_raw(b"[1]"), id="sealed list"),
        pytest.param(
            _seal_raw(json.dumps({**_plain(_pending()), "v": 99}).encode()),
            id="foreign version",
        ),
        pytest.param(
            _seal_raw(
                json.dumps({k: v for k, v in _plain(_pending()).items() if k != "n"}).encode()
            ),
            id="no nonce",
        ),
        pytest.param(
            _seal_raw(json.dumps({**_plain(_pending()), "t": "x"}).encode()),
            id="time not a number",
        ),
        pytest.param(
            _seal_raw(json.dumps({**_plain(_pending()), "c": 7}).encode()),
            id="verifier not a string",
        ),
        pytest.param(
            _seal_raw(json.dumps({**_plain(_pending()), "sc": [1]}).encode()),
            id="scope not a string",
        ),
        pytest.param(
            _seal_raw(json.dumps(_plain(_pending())).encode(), KEYS.tokens[0]),
            id="sealed with the tokens key",
        ),
    ],
)
def test_anything_but_a_sealed_login_of_ours_is_refused(sealed: str) -> None:
    """Forged, altered, foreign or malformed values are a RecordError, never a login."""
    with pytest.raises(RecordError):
        open_pending(sealed, KEYS)


def test_a_well_formed_seal_of_our_own_opens() -> None:
    """The positive case of the table above: the same construction with our key opens."""
    plain = _plain(_pending())
    assert open_pending(_seal_raw(json.dumps(plain).encode()), KEYS).nonce == plain["n"]


def test_sealed_logins_follow_secret_rotation() -> None:
    """A login sealed under the old secret opens with [new, old]; new logins use the new."""
    pending = _pending()
    old = seal_pending(pending, SessionKeys.derive([OLD_SECRET]))
    rotated = SessionKeys.derive([SECRET, OLD_SECRET])
    assert open_pending(old, rotated) == pending
    assert open_pending(seal_pending(pending, rotated), KEYS) == pending
    with pytest.raises(RecordError):
        open_pending(old, KEYS)


def test_pending_logins_live_ten_minutes() -> None:
    """The documented pending-login lifetime is 600 seconds, counted from created_at."""
    assert PENDING_LOGIN_TTL == 600
    pending = _pending(created_at=T0)
    assert pending_remaining(pending, T0) == 600
    assert pending_remaining(pending, T0 + 599) == 1
    assert pending_remaining(pending, T0 + 600) <= 0


def test_login_secrets_are_random_and_well_formed() -> None:
    """State and nonce are unique; PKCE verifiers follow RFC 7636."""
    states = {new_state() for _ in range(50)}
    nonces = {new_nonce() for _ in range(50)}
    assert len(states) == 50 and len(nonces) == 50
    verifier = new_code_verifier()
    assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", verifier)
    assert new_code_verifier() != verifier
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", new_state())


def test_the_login_key_cannot_sign_a_session_cookie() -> None:
    """The login key differs from the cookie key, so a MAC made with it is no cookie MAC."""
    session_id = new_session_id()
    body = f"v1.{b64e(session_id)}"
    forged = f"{body}.{_mac(KEYS.login[0], body)}"
    assert verify_cookie(forged, KEYS) is None
    assert base64.urlsafe_b64decode(forged.split(".")[1] + "=") == session_id
