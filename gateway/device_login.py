"""The device authorization grant (RFC 8628) for ``hf-gateway login``: a code to type on
Hugging Face, then polling the token endpoint until the user approves.

Polling follows RFC 8628 §3.5: wait ``interval`` seconds between requests (5 when the
provider names none); ``authorization_pending`` means keep waiting; ``slow_down`` adds 5
seconds to the interval for this and every later request; ``access_denied`` and
``expired_token`` end the login; a transport failure or a 5xx doubles the wait (up to a
minute) and polling goes on until the code expires. Nothing here logs or prints a token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0
MAX_BACKOFF = 60.0
DEFAULT_EXPIRES_IN = 900
TIMEOUT = aiohttp.ClientTimeout(total=30)


class DeviceLoginError(Exception):
    """The login ended without a token. ``code`` is the OAuth error (access_denied,
    expired_token, ...) or ``unavailable`` when the provider could not be used."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Endpoints:
    device_authorization: str
    token: str


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: what the user is shown and what the poller sends."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: float


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int | None
    scope: str

    def __repr__(self) -> str:  # never the token, even in a traceback
        return f"IssuedToken(expires_in={self.expires_in!r}, scope={self.scope!r})"


async def discover(http: aiohttp.ClientSession, issuer: str) -> Endpoints:
    """The provider's device and token endpoints from its discovery document, else
    Hugging Face's fixed paths (HF-OAUTH.md §1.1) when the document lacks them."""
    base = issuer.rstrip("/")
    document: dict[str, Any] = {}
    try:
        async with http.get(f"{base}/.well-known/openid-configuration", timeout=TIMEOUT) as r:
            if r.status == 200:
                found = await r.json(content_type=None)
                document = found if isinstance(found, dict) else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        document = {}
    device = document.get("device_authorization_endpoint")
    token = document.get("token_endpoint")
    return Endpoints(
        device if isinstance(device, str) and device else f"{base}/oauth/device",
        token if isinstance(token, str) and token else f"{base}/oauth/token",
    )


async def start(
    http: aiohttp.ClientSession, endpoints: Endpoints, client_id: str, scopes: Sequence[str]
) -> DeviceAuthorization:
    """Ask for a device code (RFC 8628 §3.1) as the public app ``client_id``."""
    form = {"client_id": client_id, "scope": " ".join(scopes)}
    try:
        async with http.post(endpoints.device_authorization, data=form, timeout=TIMEOUT) as r:
            body = await _json_body(r)
            status = r.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeviceLoginError("unavailable", f"{endpoints.device_authorization}: {exc}") from exc
    if status != 200:
        raise _oauth_error(body, f"the device authorization endpoint answered {status}")
    try:
        return DeviceAuthorization(
            device_code=str(body["device_code"]),
            user_code=str(body["user_code"]),
            verification_uri=str(body["verification_uri"]),
            verification_uri_complete=_optional_str(body.get("verification_uri_complete")),
            expires_in=int(_or(body.get("expires_in"), DEFAULT_EXPIRES_IN)),
            interval=float(_or(body.get("interval"), DEFAULT_INTERVAL)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeviceLoginError("unavailable", f"unreadable device authorization: {exc}") from exc


class Poller:
    """Polls the token endpoint for one device authorization.

    ``poll_once`` is one request: the token, or None to keep waiting (``last`` says why and
    ``interval`` has been adjusted); DeviceLoginError when the login is over. ``wait``
    sleeps ``interval`` before each poll until a token or the code's expiry.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoints: Endpoints,
        client_id: str,
        authorization: DeviceAuthorization,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._endpoints = endpoints
        self._client_id = client_id
        self._device_code = authorization.device_code
        self._clock = clock
        self.interval = max(0.0, authorization.interval)
        self.deadline = clock() + authorization.expires_in
        self.last = ""
        """The last reason to keep waiting: authorization_pending, slow_down or unavailable."""
        self._backoff = 0.0

    async def poll_once(self) -> IssuedToken | None:
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": self._device_code,
            "client_id": self._client_id,
        }
        try:
            async with self._http.post(self._endpoints.token, data=form, timeout=TIMEOUT) as r:
                body = await _json_body(r)
                status = r.status
        except (aiohttp.ClientError, TimeoutError):
            self._transient()
            return None
        if status == 200:
            self._backoff = 0.0
            return _issued(body)
        if status >= 500 or status == 429:
            self._transient()
            return None
        error = body.get("error")
        if error == "authorization_pending":
            self.last = "authorization_pending"
            return None
        if error == "slow_down":
            self.last = "slow_down"
            self.interval += SLOW_DOWN_STEP
            return None
        raise _oauth_error(body, f"the token endpoint answered {status}")

    async def wait(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> IssuedToken:
        while True:
            pause = self.interval + self._backoff
            if self._clock() + pause >= self.deadline:
                raise DeviceLoginError("expired_token", "the code expired before it was approved")
            await sleep(pause)
            token = await self.poll_once()
            if token is not None:
                return token

    def _transient(self) -> None:
        """RFC 8628 §3.5: back off exponentially after a failed request, keep polling."""
        self.last = "unavailable"
        self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _issued(body: dict[str, Any]) -> IssuedToken:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise DeviceLoginError("unavailable", "the token response has no access_token")
    expires_in = body.get("expires_in")
    return IssuedToken(
        token,
        int(expires_in) if isinstance(expires_in, int | float) else None,
        str(body.get("scope") or ""),
    )


def _oauth_error(body: dict[str, Any], fallback: str) -> DeviceLoginError:
    code = body.get("error")
    description = body.get("error_description")
    if not isinstance(code, str) or not code:
        return DeviceLoginError("unavailable", fallback)
    detail = f"{code}: {description}" if isinstance(description, str) and description else code
    return DeviceLoginError(code, detail)


def _or(value: Any, default: float) -> Any:
    """``value`` unless the provider left it out (0 is a value: the fake's fast tests)."""
    return default if value is None else value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
