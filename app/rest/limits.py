"""Every request body is bounded while it is read, before anything parses it.

- File uploads (`POST /images`, multipart `POST /graphql`) stream through, counted against
  MAX_UPLOAD_BYTES (plus room for the form around the files); archives (`POST /import`) against
  MAX_ARCHIVE_BYTES. A GraphQL request carries at most MAX_UPLOAD_BYTES of files in all.
- Every other body (JSON for PATCH, PUT, GraphQL) is read whole, up to MAX_JSON_BYTES, and its
  nesting is checked before the route's parser sees it: parsers recurse once per level.
- A declared Content-Length over the limit is a 413 at once; a body that grows past it is cut
  off with the same 413 as soon as it does; a body that stops arriving for
  REQUEST_BODY_TIMEOUT_SECONDS is a 408.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from anyio import to_thread
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.metadata import check_json_nesting
from app.errors import BadInput, TooLarge
from app.rest.errors import status_code

# Room for the multipart framing and the metadata fields around the file itself.
FORM_OVERHEAD = 1024 * 1024
# Below this, checking a body's nesting costs less than handing it to a worker thread.
INLINE_CHECK_BYTES = 64 * 1024
_NO_BODY = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True, kw_only=True)
class BodyLimits:
    upload_bytes: int
    archive_bytes: int
    json_bytes: int
    timeout: float


class RequestBodyLimits:
    """A pure ASGI middleware applying `BodyLimits` to every HTTP request."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        path = scope["path"].rstrip("/")
        if path == "/import":
            limit, what = self.limits.archive_bytes + FORM_OVERHEAD, "archive upload"
        elif multipart and path in ("/images", "/graphql"):
            limit, what = self.limits.upload_bytes + FORM_OVERHEAD, "upload"
        else:
            limit, what = self.limits.json_bytes, "JSON body"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, _too_large(what, limit), TooLarge.code)
            return
        body = _Body(receive, limit=limit, what=what, timeout=self.limits.timeout)
        if what != "JSON body":
            await self.app(scope, body.receive, send)
            return
        try:
            whole = await body.read_all()
            if whole is None:
                return  # the client went away before its body was complete
            if len(whole) > INLINE_CHECK_BYTES:
                await to_thread.run_sync(lambda: check_json_nesting(whole, what="The request body"))
            else:
                check_json_nesting(whole, what="The request body")
        except HTTPException as error:
            await _answer(send, error.status_code, str(error.detail), status_code(error.status_code))
            return
        except BadInput as error:
            await _answer(send, 400, error.detail, error.code)
            return
        await self.app(scope, body.replay(whole), send)


class _Body:
    """The request's `receive`, counting body bytes and timing out a body that stalls."""

    def __init__(self, receive: Receive, *, limit: int, what: str, timeout: float) -> None:
        self._receive, self._limit, self._what, self._timeout = receive, limit, what, timeout
        self._received = 0
        self._complete = False

    async def receive(self) -> Message:
        if self._complete:
            # After the body, `receive` only reports a disconnect, which may come at any time
            # (a long download listens for it): no timeout then.
            return await self._receive()
        try:
            # A timeout scope, not `wait_for`: that makes a task per message, and an upload
            # arrives in many.
            async with asyncio.timeout(self._timeout):
                message = await self._receive()
        except TimeoutError:
            raise HTTPException(
                408, f"The request body stopped arriving for {self._timeout:g} seconds; send it again."
            ) from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                raise HTTPException(413, _too_large(self._what, self._limit))
            self._complete = not message.get("more_body", False)
        return message

    async def read_all(self) -> bytes | None:
        """The whole body; None if the client disconnected first."""
        chunks = []
        while not self._complete:
            message = await self.receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
        return b"".join(chunks)

    def replay(self, whole: bytes) -> Receive:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await self._receive()

        return receive


def _too_large(what: str, limit: int) -> str:
    if what == "JSON body":
        return f"The request body is larger than the maximum of {limit} bytes (MAX_JSON_BYTES)."
    return f"The request body is larger than the maximum {what} size ({limit - FORM_OVERHEAD} bytes)."


async def _answer(send: Send, status: int, detail: str, code: str) -> None:
    # The body `app/rest/errors.py` would make: this middleware answers before the app is called.
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
