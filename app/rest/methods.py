"""`Allow`: every method a path takes, in answer to OPTIONS and on every 405.

Starlette tries a path's routes in turn and, when none takes the method, answers 405 with the
methods of the first route it tried only: `/images` has four routes (GET, POST, PATCH, DELETE),
and a 405 there said `Allow: GET`. RFC 9110 wants `Allow` to list what the resource supports,
which generated clients and API tools read. A plain OPTIONS request is answered 204 with that
list; a CORS preflight never gets here (CORSMiddleware, outside, answers it).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.rest.access import RouteTemplates


class AllowedMethods:
    """A pure ASGI middleware: `Allow` from every route of the requested path."""

    def __init__(self, app: ASGIApp, *, routes: RouteTemplates) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        methods = self.routes.methods(scope["path"])
        if not methods:  # no such path: a 404, nothing to list
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        if scope["method"] == "OPTIONS":
            headers = [(b"allow", allow.encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def listing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                MutableHeaders(scope=message)["allow"] = allow
            await send(message)

        await self.app(scope, receive, listing_send)
