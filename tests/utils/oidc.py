"""A real JWKS endpoint on loopback and real signed tokens, for the authentication tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from tests.utils.loopback import loopback_server

ISSUER = "https://issuer.test/realms/images"
AUDIENCE = "image-storage"
ISSUER_PATH = "/realms/images"  # of the loopback issuer, as Keycloak's issuers have one

Key = RSAKey | ECKey


@dataclass
class JwksServer:
    """Serves `keys` (public parts only) at `uri`; counts fetches; can fail on purpose."""

    keys: list[Key] = field(default_factory=list)
    failing: bool = False
    fetches: int = 0
    uri: str = ""

    def serve(self) -> dict[str, Any]:
        self.fetches += 1
        key_set: dict[str, Any] = KeySet(list(self.keys)).as_dict(private=False)
        return key_set


@contextmanager
def jwks_server(keys: list[Key]) -> Iterator[JwksServer]:
    state = JwksServer(keys=list(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            if state.failing:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps(state.serve()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    with loopback_server(Handler) as base:
        state.uri = f"{base}/realms/images/protocol/openid-connect/certs"
        yield state


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"})


def claims_for(user: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)),
        "preferred_username": user,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(claims: dict[str, Any], key: Key, *, alg: str = "RS256", kid: str | None = None) -> str:
    header = {"alg": alg, "kid": kid if kid is not None else key.kid}
    return jwt.encode(header, claims, key)


def _part(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned(claims: dict[str, Any]) -> str:
    """An `alg: none` token: a header, the claims, and no signature."""
    return f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}."


def hmac_with_public_key(claims: dict[str, Any], key: RSAKey) -> str:
    """The classic confusion attack: HS256 keyed with the provider's public key.

    Built by hand: joserfc itself refuses to use a public key as an HMAC secret.
    """
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_part(claims)}"
    secret = key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_part(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Issuer:
    """A loopback OpenID provider for a browser login: discovery, an authorization endpoint that
    approves at once (as `user`), a token endpoint that checks PKCE (S256), the JWKS. With a
    `client_secret`, the token endpoint also grants client credentials (HTTP Basic) as `user`."""

    key: Key
    client_id: str
    cors_origin: str  # the page's origin, allowed to fetch discovery and post to the token endpoint
    user: str = "alice"
    client_secret: str | None = None
    url: str = ""
    # code -> (code_challenge, redirect_uri)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)  # what the token endpoint got
    verified: list[bool] = field(default_factory=list)  # whether each code_verifier matched

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@contextmanager
def issuer_server(
    key: Key, *, client_id: str, cors_origin: str, user: str = "alice", client_secret: str | None = None
) -> Iterator[Issuer]:
    state = Issuer(key=key, client_id=client_id, cors_origin=cors_origin, user=user, client_secret=client_secret)

    class Handler(BaseHTTPRequestHandler):
        def answer(
            self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
        ) -> None:
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", state.cors_origin)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_OPTIONS(self) -> None:  # noqa: N802 - the http.server naming
            self.answer(204, None, {"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Allow-Headers": "*"})

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            path = url.path.removeprefix(ISSUER_PATH)
            if path == "/.well-known/openid-configuration":
                self.answer(200, state.discovery())
            elif path == "/jwks":
                self.answer(200, KeySet([state.key]).as_dict(private=False))
            elif path == "/authorize":
                # An auto-approving login: straight back with a code, as the user.
                if query.get("client_id") != state.client_id or query.get("code_challenge_method") != "S256":
                    self.answer(400, {"error": "invalid_request"})
                    return
                code = uuid.uuid4().hex
                state.codes[code] = (query["code_challenge"], query["redirect_uri"])
                back = {"code": code, "state": query["state"]}
                self.answer(302, None, {"Location": f"{query['redirect_uri']}?{urlencode(back)}"})
            else:
                self.answer(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != f"{ISSUER_PATH}/token":
                self.answer(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = {name: values[0] for name, values in parse_qs(self.rfile.read(length).decode()).items()}
            state.exchanges.append(form)
            if form.get("grant_type") == "client_credentials":
                self.grant_client_credentials()
                return
            challenge, redirect_uri = state.codes.pop(form.get("code", ""), ("", ""))
            verified = bool(challenge) and s256(form.get("code_verifier", "")) == challenge
            state.verified.append(verified)
            good = (
                verified
                and form.get("grant_type") == "authorization_code"
                and form.get("redirect_uri") == redirect_uri
                and form.get("client_id") == state.client_id
            )
            if not good:
                self.answer(400, {"error": "invalid_grant"})
                return
            token = sign(claims_for(state.user, iss=state.url), state.key)
            self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        def grant_client_credentials(self) -> None:
            expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
            if state.client_secret is None or self.headers.get("Authorization") != f"Basic {expected}":
                self.answer(401, {"error": "invalid_client", "error_description": "Invalid client credentials"})
                return
            token = sign(claims_for(state.user, iss=state.url), state.key)
            self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with loopback_server(Handler) as base:
        state.url = f"{base}{ISSUER_PATH}"
        yield state
