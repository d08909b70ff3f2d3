"""Signed links: a URL a browser opens without an `Authorization` header (`<img src>`, a download,
an export), carrying the scope of the caller it was made for.

`?signature=<expires>.<user>.<mac>`: the MAC is an HMAC-SHA256 over the path, the user and the
expiry, under a key every replica shares (kept in the database, as cursors' is). The expiry is
rounded up to the hour, so every link to the same path that one user gets within an hour is the
same URL, and a browser's cache keeps working; a link lives at least `lifetime` seconds and
less than an hour more. It grants reading (GET and HEAD) of that path only, as its user: the
scope rules apply to it as to the user's token. The query string is not signed: what it
chooses (a thumbnail's width, an export's filter) stays within the same user's images. A link
outlives a revoked token until it expires, as a presigned S3 URL does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlencode

from app.domain.scope import Scope
from app.errors import Forbidden
from app.store import Store

SIGNATURE = "signature"  # the query parameter
KEY_ID = "link-signing-key"
MAC_BYTES = 16
HOUR = 3600
EVERYONE_MARK = "*"  # the user part of a link made without per-user scope


def new_key() -> bytes:
    return os.urandom(32)


class Signer:
    """Signs and checks links with one key."""

    def __init__(self, key: bytes, *, lifetime: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock

    def sign(self, path: str, scope: Scope) -> str:
        """The `signature` value for `path` (decoded, as the request will see it) and `scope`."""
        expires = math.ceil((self._clock() + self._lifetime) / HOUR) * HOUR
        user = EVERYONE_MARK if scope.owner is None else _b64(scope.owner.encode())
        return f"{expires}.{user}.{_b64(self._mac(path, user, expires))}"

    def scope_of(self, path: str, signature: str) -> Scope:
        """The scope a link grants; Forbidden when it was altered, made for another path, or expired."""
        parts = signature.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12:
            raise Forbidden("The link's signature is malformed; ask for the link again.")
        expires, user, mac = int(parts[0]), parts[1], parts[2]
        try:
            given = _unb64(mac)
            owner = None if user == EVERYONE_MARK else _unb64(user).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Forbidden("The link's signature is malformed; ask for the link again.") from None
        if not hmac.compare_digest(given, self._mac(path, user, expires)):
            raise Forbidden("The link's signature does not match this address; ask for the link again.")
        if expires <= self._clock():
            moment = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise Forbidden(f"The link expired at {moment}; ask for a new one.")
        return Scope(owner=owner)

    def _mac(self, path: str, user: str, expires: int) -> bytes:
        message = f"link\n{path}\n{user}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]


@dataclass(frozen=True)
class SignedPath:
    """A request's path (decoded) and the `signature` it came with."""

    path: str
    signature: str


class Linker:
    """One caller's links: a path (and query) with its signature, or plain where nothing signs."""

    def __init__(self, signer: Signer | None, scope: Scope) -> None:
        self._signer = signer
        self._scope = scope

    def __call__(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """`path` (already quoted as a URL holds it) and `query`, signed."""
        parameters = dict(query or {})
        if self._signer is not None:
            parameters[SIGNATURE] = self._signer.sign(unquote(path), self._scope)
        return f"{path}?{urlencode(parameters)}" if parameters else path


class SignedLinks:
    """The signer, its key fetched from the database on first use."""

    def __init__(self, *, store: Store, lifetime: int, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._lifetime = lifetime
        self._clock = clock
        self._signer: Signer | None = None

    async def signer(self) -> Signer:
        if self._signer is None:
            self._store.require_ready()
            with self._store.errors():
                key = await self._store.secrets.shared(KEY_ID, new_key)
            self._signer = Signer(key, lifetime=self._lifetime, clock=self._clock)
        return self._signer


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes `text` spells, which must be the one spelling `_b64` gives them: the decoder
    ignores the spare bits of the last character, so several texts decode alike, and a link
    edited there would still open."""
    if not text or len(text) > 1024:
        raise ValueError("empty or too long")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not the canonical spelling")
    return raw
