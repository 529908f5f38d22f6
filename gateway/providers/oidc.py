"""Generic OpenID Connect: discovery, PKCE authorization URLs, code exchange, ID token
verification, userinfo and refresh, over one shared aiohttp ClientSession.

authlib supplies the protocol pieces (S256 challenge, ID-token claim rules); pyjwt
verifies signatures with keys from the provider's JWKS, fetched with aiohttp (never a
blocking fetch). ID tokens without ``kid`` (Hugging Face's) are tried against every
key of the right type.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken

from gateway.config import ProviderConfig
from gateway.errors import LoginError, ProviderRateLimited, ProviderUnavailable, TokenRejected
from gateway.identity import Identity, Org
from gateway.metrics import PROVIDER_RATE_LIMITED_BY_ENDPOINT
from gateway.providers.base import LoginResult, TokenSet

log = logging.getLogger(__name__)

METADATA_MAX_AGE = 600.0
"""Discovery is refreshed about every 10 minutes."""
JWKS_MIN_REFETCH = 30.0
"""An unknown key triggers a JWKS refetch at most this often."""
CLOCK_LEEWAY = 60
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
RATE_LIMITED = PROVIDER_RATE_LIMITED_BY_ENDPOINT
RATE_LIMITED_BY_WHAT = {
    "discovery": RATE_LIMITED["discovery"],
    "JWKS": RATE_LIMITED["jwks"],
    "userinfo": RATE_LIMITED["userinfo"],
    "whoami-v2": RATE_LIMITED["whoami"],  # huggingface.py's
}
"""The 429 counter of each endpoint, by the name _get_json is given for it."""
_SIGNING_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})


def s256_challenge(code_verifier: str) -> str:
    """The PKCE S256 code_challenge for a verifier (RFC 7636)."""
    challenge: str = create_s256_code_challenge(code_verifier)
    return challenge


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    signing_algs: frozenset[str]

    @classmethod
    def parse(cls, doc: Mapping[str, Any], expected_issuer: str) -> Metadata:
        issuer = str(doc.get("issuer", "")).rstrip("/")
        if issuer != expected_issuer.rstrip("/"):
            raise ProviderUnavailable(
                f"discovery issuer {issuer!r} does not match the configured issuer"
            )
        missing = [
            k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not doc.get(k)
        ]
        if missing:
            raise ProviderUnavailable(f"discovery document lacks {', '.join(missing)}")
        algs = frozenset(doc.get("id_token_signing_alg_values_supported") or ["RS256"])
        return cls(
            issuer=issuer,
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
            userinfo_endpoint=doc.get("userinfo_endpoint"),
            signing_algs=(algs & _SIGNING_ALGS) or frozenset({"RS256"}),
        )


class OIDCProvider:
    """Any standard OIDC provider; subclasses adapt identities (see huggingface.py)."""

    def __init__(self, config: ProviderConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._jwks: list[dict[str, Any]] = []
        self._jwks_at = 0.0

    # ------------------------------------------------------------------ metadata

    @property
    def ready(self) -> bool:
        return self._metadata is not None

    @property
    def metadata(self) -> Metadata:
        if self._metadata is None:
            raise ProviderUnavailable("provider metadata has not loaded yet")
        return self._metadata

    async def load_metadata(self) -> None:
        url = self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url, "discovery")
        self._metadata = Metadata.parse(doc, self._config.issuer)
        self._metadata_at = time.monotonic()

    async def _fresh_metadata(self) -> Metadata:
        """Metadata, refetched when older than 10 minutes (the old copy kept on failure)."""
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_MAX_AGE:
            try:
                await self.load_metadata()
            except ProviderUnavailable:
                if self._metadata is None:
                    raise
                log.warning("provider discovery refresh failed; keeping the previous metadata")
        return self.metadata

    # ------------------------------------------------------------------ authorize

    def authorization_url(
        self,
        *,
        state: str,
        nonce: str,
        code_verifier: str,
        redirect_uri: str,
        scopes: Sequence[str],
        org_ids: Sequence[str] = (),
    ) -> str:
        params: list[tuple[str, str]] = [
            ("response_type", "code"),
            ("client_id", self._config.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", " ".join(scopes)),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", s256_challenge(code_verifier)),
            ("code_challenge_method", "S256"),
            *self.extra_authorize_params(org_ids),
        ]
        endpoint = self.metadata.authorization_endpoint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def extra_authorize_params(self, org_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Provider-specific authorize parameters (none for plain OIDC)."""
        del org_ids
        return []

    # ------------------------------------------------------------------ tokens

    async def exchange_code(
        self,
        *,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        nonce: str,
        scopes: Sequence[str],
        now: float,
    ) -> LoginResult:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._config.client_id,
            "code_verifier": code_verifier,
        }
        body = await self._token_request(form, failure=LoginError)
        tokens = self._token_set(body, now, requested=scopes)
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise LoginError("invalid_id_token", "the provider returned no ID token")
        claims = await self.verify_id_token(
            id_token, nonce=nonce, access_token=tokens.access_token, now=now
        )
        identity = await self.identity_from_login(claims, tokens)
        if identity.sub != claims["sub"]:
            raise LoginError("invalid_userinfo", "userinfo is about another user than the ID token")
        return LoginResult(identity, tokens)

    async def refresh(self, refresh_token: str, scopes: frozenset[str], now: float) -> TokenSet:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._config.client_id,
        }
        body = await self._token_request(form, failure=TokenRejected)
        tokens = self._token_set(body, now, requested=tuple(scopes))
        if tokens.refresh_token is None:
            # Providers that do not rotate keep the old refresh token valid.
            tokens = TokenSet(tokens.access_token, refresh_token, tokens.expires_at, tokens.scopes)
        return tokens

    async def _token_request(
        self, form: dict[str, str], *, failure: type[LoginError] | type[TokenRejected]
    ) -> dict[str, Any]:
        metadata = await self._fresh_metadata()
        headers = {"Accept": "application/json"}
        secret = self._config.client_secret
        if secret is not None:
            headers["Authorization"] = _basic_auth(
                self._config.client_id, secret.get_secret_value()
            )
        try:
            async with self._http.post(
                metadata.token_endpoint, data=form, headers=headers, timeout=HTTP_TIMEOUT
            ) as response:
                body = await _json_body(response)
                status = response.status
                retry_after = retry_after_seconds(response.headers) if status == 429 else 0
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if status >= 500:
            raise ProviderUnavailable(f"token endpoint answered {status}")
        if status == 429:
            # For now, not for good: the code or refresh token was not spent, so the
            # login can be retried and the session lives on (503 with Retry-After).
            RATE_LIMITED["token"].inc()
            raise ProviderRateLimited("the token endpoint is rate limited", retry_after)
        if status != 200 or not isinstance(body.get("access_token"), str):
            error = str(body.get("error") or f"http_{status}")
            log.info("token request refused: %s", error)
            if failure is LoginError:
                raise LoginError("token_error", f"the provider refused the code ({error})")
            raise TokenRejected(f"the provider refused the refresh token ({error})")
        if str(body.get("token_type", "bearer")).lower() != "bearer":
            raise ProviderUnavailable("the provider issued a token that is not a bearer token")
        return body

    @staticmethod
    def _token_set(body: Mapping[str, Any], now: float, requested: Sequence[str]) -> TokenSet:
        expires_in = body.get("expires_in")
        expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else None
        scope = body.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset(requested)
        refresh = body.get("refresh_token")
        return TokenSet(
            access_token=str(body["access_token"]),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scopes=scopes,
        )

    # ------------------------------------------------------------------ ID token

    async def verify_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None, now: float
    ) -> dict[str, Any]:
        """Signature (JWKS), iss, aud, exp, iat, azp, at_hash and nonce; LoginError if any fail."""
        metadata = await self._fresh_metadata()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise LoginError("invalid_id_token", "the ID token is malformed") from exc
        alg = header.get("alg")
        if alg not in metadata.signing_algs:
            raise LoginError("invalid_id_token", f"the ID token uses a refused algorithm ({alg})")
        claims = await self._verify_signature(id_token, header, str(alg), metadata, now)
        try:
            CodeIDToken(
                claims,
                header,
                options={
                    "iss": {"essential": True, "value": metadata.issuer},
                    "aud": {"essential": True, "value": self._config.client_id},
                },
                params={"client_id": self._config.client_id, "access_token": access_token},
            ).validate(now=int(now), leeway=CLOCK_LEEWAY)
        except Exception as exc:  # authlib raises its own untyped claim errors
            raise LoginError("invalid_id_token", f"ID token claim check failed ({exc})") from exc
        claimed = claims.get("nonce")
        if not isinstance(claimed, str) or not hmac.compare_digest(claimed, nonce):
            raise LoginError("invalid_id_token", "the ID token nonce does not match this login")
        return claims

    async def _verify_signature(
        self, id_token: str, header: Mapping[str, Any], alg: str, metadata: Metadata, now: float
    ) -> dict[str, Any]:
        for attempt in range(2):
            if attempt or not self._jwks:
                if not await self._load_jwks(metadata, force=attempt > 0):
                    break
            for key in self._candidate_keys(header.get("kid"), alg):
                try:
                    claims: dict[str, Any] = jwt.decode(
                        id_token,
                        key,
                        algorithms=[alg],
                        audience=self._config.client_id,
                        issuer=metadata.issuer,
                        leeway=CLOCK_LEEWAY,
                        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                    )
                except jwt.InvalidSignatureError:
                    continue
                except jwt.PyJWTError as exc:
                    raise LoginError(
                        "invalid_id_token", f"the ID token is invalid ({exc})"
                    ) from exc
                if claims["iat"] > now + CLOCK_LEEWAY:
                    raise LoginError("invalid_id_token", "the ID token was issued in the future")
                return claims
        raise LoginError("invalid_id_token", "the ID token signature does not verify")

    def _candidate_keys(self, kid: Any, alg: str) -> list[Any]:
        kty = "EC" if alg.startswith("ES") else "RSA"
        keys = []
        for jwk in self._jwks:
            if jwk.get("kty") != kty or jwk.get("use", "sig") != "sig":
                continue
            if kid is not None and jwk.get("kid") not in (None, kid):
                continue
            try:
                keys.append(jwt.PyJWK(jwk, algorithm=alg).key)
            except jwt.PyJWTError:
                continue
        return keys

    async def _load_jwks(self, metadata: Metadata, *, force: bool) -> bool:
        if force and time.monotonic() - self._jwks_at < JWKS_MIN_REFETCH:
            return False
        doc = await self._get_json(metadata.jwks_uri, "JWKS")
        keys = doc.get("keys")
        if not isinstance(keys, list):
            raise ProviderUnavailable("the JWKS document has no keys list")
        self._jwks = [k for k in keys if isinstance(k, dict)]
        self._jwks_at = time.monotonic()
        return True

    # ------------------------------------------------------------------ identity

    async def identity_from_login(self, claims: Mapping[str, Any], tokens: TokenSet) -> Identity:
        """The full identity after login: ID token claims merged with userinfo."""
        info: dict[str, Any] = dict(claims)
        if self.metadata.userinfo_endpoint:
            info.update(await self.userinfo(tokens.access_token))
        return await self.identity_from_claims(info, tokens)

    async def fetch_identity(self, tokens: TokenSet) -> Identity:
        info = await self.userinfo(tokens.access_token)
        return await self.identity_from_claims(info, tokens)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        metadata = await self._fresh_metadata()
        if not metadata.userinfo_endpoint:
            raise ProviderUnavailable("the provider has no userinfo endpoint")
        return await self._get_json(
            metadata.userinfo_endpoint, "userinfo", bearer=access_token, reject_401=True
        )

    async def identity_from_claims(self, info: Mapping[str, Any], tokens: TokenSet) -> Identity:
        """Map standard claims (and ``groups_claim`` onto orgs) to an Identity."""
        groups = info.get(self._config.groups_claim) or []
        orgs = tuple(Org(sub=str(g), slug=str(g)) for g in groups if isinstance(g, str) and g)
        return _standard_identity(info, tokens, orgs, is_pro=False)

    # ------------------------------------------------------------------ http

    async def _get_json(
        self, url: str, what: str, *, bearer: str | None = None, reject_401: bool = False
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            async with self._http.get(url, headers=headers, timeout=HTTP_TIMEOUT) as response:
                body = await _json_body(response)
                status = response.status
                retry_after = retry_after_seconds(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{what} unreachable: {type(exc).__name__}") from exc
        if reject_401 and status in (401, 403):
            raise TokenRejected(f"{what} refused the access token ({status})")
        if status == 429:
            RATE_LIMITED_BY_WHAT.get(what, RATE_LIMITED["other"]).inc()
            raise ProviderRateLimited(f"{what} is rate limited", retry_after)
        if status != 200:
            raise ProviderUnavailable(f"{what} answered {status}")
        return body

    async def identity_for_token(self, token: str) -> Identity:
        """The user behind an access token sent as ``Authorization: Bearer`` (userinfo)."""
        tokens = TokenSet(token, None, None, frozenset())
        return await self.identity_from_claims(await self.userinfo(token), tokens)

    async def close(self) -> None:
        return None


_RATE_LIMIT_RESET = re.compile(r"(?:^|;)\s*t=(\d+)")


def retry_after_seconds(headers: Mapping[str, str]) -> int:
    """Seconds to wait after a 429: Retry-After, else the ``t=`` of HF's RateLimit header
    (IETF draft: ``"api";r=0;t=60``), else a minute."""
    value = headers.get("Retry-After", "")
    if value.isdigit():
        return int(value)
    found = _RATE_LIMIT_RESET.search(headers.get("RateLimit", ""))
    return int(found.group(1)) if found else 60


def _standard_identity(
    info: Mapping[str, Any], tokens: TokenSet, orgs: tuple[Org, ...], *, is_pro: bool
) -> Identity:
    sub = info.get("sub")
    if not isinstance(sub, str) or not sub:
        raise LoginError("invalid_userinfo", "the provider did not say who the user is (no sub)")
    username = info.get("preferred_username") or info.get("email") or sub
    email = info.get("email")
    return Identity(
        sub=sub,
        username=str(username),
        name=str(info.get("name") or ""),
        email=email if isinstance(email, str) and email else None,
        email_verified=info.get("email_verified") is True,
        picture=info.get("picture") if isinstance(info.get("picture"), str) else None,
        is_pro=is_pro,
        orgs=orgs,
        scopes=tokens.scopes,
    )


def _basic_auth(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication, form-encoding both parts (RFC 6749 §2.3.1)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON object in a response, or {} when there is none (never raises on bad JSON)."""
    try:
        text = await response.text()
        body = json.loads(text) if text else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}
