"""Refuse oversized request bodies before they are read, not after they fill the disk."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Room for the multipart framing and the metadata fields around the file itself.
FORM_OVERHEAD = 1024 * 1024


class BodySizeLimit:
    """A pure ASGI middleware: at most `limit` bytes of body on the given (method, path)s.

    A declared Content-Length over the limit is answered 413 at once; a body that turns out
    longer while streaming stops the form parser with the same 413.
    """

    def __init__(self, app: ASGIApp, *, limit: int, routes: set[tuple[str, str]]) -> None:
        self.app, self.limit, self.routes = app, limit + FORM_OVERHEAD, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in self.routes:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, _message(self.limit))
            return message

        await self.app(scope, counting_receive, send)


def _message(limit: int) -> str:
    return f"The request body is larger than the maximum upload size ({limit - FORM_OVERHEAD} bytes)."


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _message(limit)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
