"""``hf-gateway login URL``: get a Hugging Face token a script can send to a gateway.

1. With ``--print-token`` and a usable saved token for URL, print it and stop.
2. Ask the gateway what it offers (``/_gateway/device``: issuer, the public device-flow
   app's client id, scopes); ``--client-id``, ``--issuer`` and ``--scope`` win over it.
   Without an issuer from either, the gateway's RFC 9728 metadata
   (``/.well-known/oauth-protected-resource``) names it, else Hugging Face.
3. Run the device flow (gateway.device_login) as that public app: print the code and the
   page to enter it on, poll until approved.
4. Ask the gateway who the token is (``/_gateway/userinfo``): a token the gateway refuses is
   not saved. Then save it (gateway.saved_tokens) and say how to use it.

Messages go to stderr; stdout carries the token only with ``--print-token``. Exit 0 signed
in, 1 the login failed (denied, expired, refused), 2 a usage mistake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from gateway import saved_tokens
from gateway.device_login import TIMEOUT, DeviceLoginError, Poller, discover, start

HUGGING_FACE = "https://huggingface.co"
DEFAULT_SCOPES = ("openid", "profile", "email", "read-memberships")
RESOURCE_METADATA = "/.well-known/oauth-protected-resource"
DEVICE_INFO = "/_gateway/device"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class LoginRequest:
    url: str
    client_id: str | None
    issuer: str | None
    scopes: Sequence[str] | None
    token_file: Path
    print_token: bool


async def login(
    request: LoginRequest, out: TextIO, err: TextIO, now: Callable[[], float] = time.time
) -> int:
    try:
        origin = saved_tokens.gateway_key(request.url)
    except ValueError as exc:
        print(f"login: {exc}", file=err)
        return EXIT_USAGE
    if request.print_token:
        saved = saved_tokens.lookup(request.token_file, origin, now())
        if saved is not None:
            print(saved.access_token, file=out)
            return EXIT_OK
    async with aiohttp.ClientSession() as http:
        offered = await _get_json(http, origin + DEVICE_INFO)
        client_id = request.client_id or _text(offered.get("client_id"))
        if not client_id:
            print(
                "login: give --client-id (or HF_GATEWAY_CLIENT_ID): the id of a public Hugging"
                " Face OAuth app (no secret) that allows the device flow; this gateway offers"
                " none (provider.device_client_id); ask its operator",
                file=err,
            )
            return EXIT_USAGE
        try:
            issuer, advertised = await _provider(
                http, origin, request.issuer or _text(offered.get("issuer"))
            )
            offered_scopes = offered.get("scopes")
            if isinstance(offered_scopes, list):
                advertised = tuple(s for s in offered_scopes if isinstance(s, str)) or advertised
            scopes = request.scopes or advertised or DEFAULT_SCOPES
            endpoints = await discover(http, issuer)
            authorization = await start(http, endpoints, client_id, scopes)
            print(f"Open {authorization.verification_uri} and enter the code:", file=err)
            print(f"    {authorization.user_code}", file=err)
            if authorization.verification_uri_complete:
                print(f"(or open {authorization.verification_uri_complete})", file=err)
            print("Waiting for approval...", file=err, flush=True)
            token = await Poller(http, endpoints, client_id, authorization).wait()
        except DeviceLoginError as exc:
            print(f"login: {exc}", file=err)
            return EXIT_FAILED
        status, username = await _whoami(http, origin, token.access_token)
    if username is None:
        print(f"login: {origin} did not accept the new token ({status}); not saved", file=err)
        return EXIT_FAILED
    expires_at = int(now()) + token.expires_in if token.expires_in else None
    saved_token = saved_tokens.SavedToken(token.access_token, expires_at, username)
    saved_tokens.save(request.token_file, origin, saved_token)
    print(f"Signed in to {origin} as {username}; token saved in {request.token_file}", file=err)
    if request.print_token:
        print(token.access_token, file=out)
    else:
        where = (
            ""
            if request.token_file == saved_tokens.token_file()
            else (f" --token-file {request.token_file}")
        )
        print(
            f'Use it: curl -H "Authorization: Bearer $(hf-gateway login {origin}{where}'
            f' --print-token)" {origin}/',
            file=err,
        )
    return EXIT_OK


async def _provider(
    http: aiohttp.ClientSession, origin: str, issuer: str | None
) -> tuple[str, tuple[str, ...]]:
    """The issuer and the scopes the gateway asks for, from its RFC 9728 metadata when it
    serves some (an explicit issuer wins)."""
    document = await _get_json(http, origin + RESOURCE_METADATA)
    servers = document.get("authorization_servers")
    scopes = document.get("scopes_supported")
    advertised = tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else ()
    if issuer:
        return issuer, advertised
    if isinstance(servers, list) and servers and isinstance(servers[0], str):
        return servers[0], advertised
    return HUGGING_FACE, advertised


async def _get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """A JSON object the gateway serves, or {} (absent, an older gateway, unreachable)."""
    try:
        async with http.get(url, timeout=TIMEOUT) as response:
            if response.status != 200:
                return {}
            found = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


async def _whoami(http: aiohttp.ClientSession, origin: str, token: str) -> tuple[str, str | None]:
    """The gateway's answer for the token: (status, username) or (status, None)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        async with http.get(
            origin + "/_gateway/userinfo", headers=headers, timeout=TIMEOUT
        ) as response:
            body = await response.json(content_type=None) if response.status == 200 else {}
            status = str(response.status)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return type(exc).__name__, None
    username = body.get("username") if isinstance(body, dict) else None
    return status, username if isinstance(username, str) and username else None
