"""OIDC bearer tokens: verified against the provider's JWKS, turned into the caller's scope.

JOSE work is joserfc's (Authlib's own JOSE module points to it as its successor). What is ours:
fetching and caching the JWKS with httpx, refetching it when a token names a key we have not
seen (key rotation) within a rate limit, and the rules for which claim names the user.

Only asymmetric algorithms are accepted, so neither `alg: none` nor an HMAC token "signed" with
the provider's public key can pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from app.domain.scope import Scope
from app.errors import Unauthenticated, Unavailable

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 60
FALLBACK_CLAIMS = ("preferred_username", "sub", "_id", "id", "username")
REFETCH_BURST = 3


class JwksCache:
    """The provider's signing keys, fetched on first use and again for unknown key ids.

    Refetches for unknown key ids come from a leaky bucket: up to `REFETCH_BURST` at once, then
    one per `refresh_interval` on average. So the first token signed with a key the provider
    has just added is accepted, even right after a fetch, while a flood of tokens naming
    made-up keys costs the provider a few requests a minute.
    """

    def __init__(
        self,
        *,
        uri: str,
        http: httpx.AsyncClient,
        refresh_interval: float,
        max_age: float = 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self._http = http
        self._max_age = max_age
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._refetches = AsyncLimiter(REFETCH_BURST, REFETCH_BURST * refresh_interval) if refresh_interval else None

    async def keys(self, *, wanted_kid: str | None) -> KeySet:
        """The key set; refetched when stale, or when `wanted_kid` is new and a refetch is allowed."""
        if self._stale() or self._unknown(wanted_kid):
            async with self._lock:
                # Checked again: another request may have fetched while this one waited.
                if self._stale() or (self._unknown(wanted_kid) and await self._refetch_allowed()):
                    await self._fetch()
        assert self._keys is not None
        return self._keys

    def _stale(self) -> bool:
        return self._keys is None or self._clock() - self._fetched_at > self._max_age

    def _unknown(self, kid: str | None) -> bool:
        return kid is not None and self._keys is not None and kid not in _kids(self._keys)

    async def _refetch_allowed(self) -> bool:
        if self._refetches is None:
            return True
        if not self._refetches.has_capacity():
            return False
        await self._refetches.acquire()  # immediate: there is capacity
        return True

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self.uri, timeout=5)
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as error:
            if self._keys is None:
                raise Unavailable(
                    f"The identity provider's keys (OIDC_JWKS_URI) cannot be fetched: {type(error).__name__}."
                ) from None
            # Keep serving with the keys we have; tokens signed with a new key fail until then.
        self._fetched_at = self._clock()


def _kids(keys: KeySet) -> set[str]:
    return {key.kid for key in keys.keys if key.kid}


@dataclass(frozen=True, kw_only=True)
class TokenRules:
    issuer: str | None
    audience: str | None
    user_identifier: str
    per_user: bool  # IMAGE_SCOPE=user


class Authenticator:
    def __init__(self, *, jwks: JwksCache, rules: TokenRules) -> None:
        self._jwks = jwks
        self._rules = rules

    async def scope_for(self, authorization: str | None) -> Scope:
        """The caller's scope from an `Authorization` header, or Unauthenticated with the reason."""
        claims = await self.verify(_bearer_token(authorization))
        if not self._rules.per_user:
            return Scope()
        return Scope(owner=user_id(claims, self._rules.user_identifier))

    async def verify(self, token: str) -> Mapping[str, Any]:
        try:
            header = extract_compact(token.encode()).protected
        except (JoseError, ValueError):
            raise Unauthenticated("The bearer token is not a JWT.") from None
        kid = header.get("kid")
        keys = await self._jwks.keys(wanted_kid=kid if isinstance(kid, str) else None)
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            self._claims_registry().validate(decoded.claims)
        except InvalidKeyIdError:
            raise Unauthenticated("The token is signed with a key the identity provider does not list.") from None
        except BadSignatureError:
            raise Unauthenticated("The token's signature does not verify.") from None
        except ExpiredTokenError:
            raise Unauthenticated("The token has expired.") from None
        except (InvalidClaimError, MissingClaimError) as error:
            raise Unauthenticated(f"The token is not valid here: {error.description}.") from None
        except (JoseError, ValueError) as error:
            raise Unauthenticated(f"The token is not acceptable: {_reason(error)}.") from None
        return decoded.claims

    def _claims_registry(self) -> jwt.JWTClaimsRegistry:
        options: dict[str, Any] = {"exp": {"essential": False}, "nbf": {"essential": False}}
        if self._rules.issuer:
            options["iss"] = {"essential": True, "value": self._rules.issuer}
        if self._rules.audience:
            options["aud"] = {"essential": True, "value": self._rules.audience}
        return jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **options)


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("This request needs an Authorization: Bearer <token> header.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def _reason(error: Exception) -> str:
    description = getattr(error, "description", None) or str(error) or type(error).__name__
    return str(description).rstrip(".")


def user_id(claims: Mapping[str, Any], identifier: str) -> str:
    """The user named by `identifier`, else by the first usable fallback claim.

    A value like `realm:alice` (some providers prefix the realm) yields `alice`.
    """
    for name in (identifier, *FALLBACK_CLAIMS):
        value = claims.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip().rsplit(":", 1)[-1] or str(value).strip()
    raise Unauthenticated(f"The token names no user (no usable {identifier!r} claim).")
