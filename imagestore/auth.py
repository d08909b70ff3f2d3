"""Credentials: a bearer token as given, or one an OIDC provider issues for a client id and
secret (the client-credentials grant), fetched again before it expires."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator

import httpx

from imagestore.errors import Unauthenticated

# Fetch a new token this long before the old one's `expires_in` runs out.
EARLY_SECONDS = 30


class ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials against the issuer's discovery document, as an httpx auth
    flow: one flow serves both the sync and the async client, which send the requests it
    yields (discovery, token) before the request it signs."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, *, scope: str | None = None) -> None:
        self._discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self._scope = scope
        self._token_endpoint: str | None = None
        self._token: str | None = None
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or time.monotonic() >= self._expires:
            yield from self._fetch()
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            # Revoked or rotated early: one fresh token, one more try.
            yield from self._fetch()
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    # Only the discovery and token answers are read here: the signed request's answer may be
    # a download, streamed by the caller (httpx's `requires_response_body` would read it whole).
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing is not request:
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing is not request:
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token_endpoint is None:
            discovered = yield httpx.Request("GET", self._discovery)
            endpoint = _json(discovered).get("token_endpoint") if discovered.is_success else None
            if not isinstance(endpoint, str):
                raise Unauthenticated(f"The OIDC discovery document at {self._discovery} names no token endpoint.")
            self._token_endpoint = endpoint
        form = {"grant_type": "client_credentials", **({"scope": self._scope} if self._scope else {})}
        request = next(self._basic.auth_flow(httpx.Request("POST", self._token_endpoint, data=form)))
        answer = yield request
        body = _json(answer)
        token = body.get("access_token") if answer.is_success else None
        if not isinstance(token, str):
            reason = body.get("error_description") or body.get("error") or f"status {answer.status_code}"
            raise Unauthenticated(f"The OIDC issuer refused the client credentials ({reason}).")
        self._token = token
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) else 300.0
        self._expires = time.monotonic() + max(seconds - EARLY_SECONDS, 1.0)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
