"""Every request, observed once: a request id, one access-log line and the HTTP metrics.

A pure ASGI middleware (a streamed download or export keeps streaming; its duration runs to the
last byte), installed outside every other layer, Starlette's ServerErrorMiddleware included,
so that the 500 that layer renders is logged and counted like any other answer.

Only the route template is logged and counted (`/images/{image_id}`), never the raw path or
query string: those are unbounded, and may hold anything a client typed. Headers are never
logged; the Authorization header in particular.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterable

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import REQUEST_ID
from app.metrics import Metrics

log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy or client may hand us as a request id: short, and nothing a log parser or a
# terminal could trip on.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "unmatched"
# Polled every few seconds by the platform: logged at DEBUG while they succeed.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class RouteTemplates:
    """Raw path → route template, and the methods its routes take, from the same route objects
    the app routes with."""

    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str, frozenset[str]]] = []

    def add(self, routes: Iterable[BaseRoute], *, prefix: str = "") -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if not isinstance(path, str):
                continue  # an included router: added with its own routes and prefix
            template = f"{prefix}{path}/{{path:path}}" if isinstance(route, Mount) else f"{prefix}{path}"
            regex, path_format, _ = compile_path(template)
            methods = frozenset(getattr(route, "methods", None) or ())
            self._patterns.append((regex, path_format, methods))

    def template(self, path: str) -> str:
        return next((template for regex, template, _ in self._patterns if regex.match(path)), UNMATCHED)

    def methods(self, path: str) -> frozenset[str]:
        """Every method some route of `path` takes (several routes may share a path)."""
        return frozenset().union(*(methods for regex, _, methods in self._patterns if regex.match(path)))


class AccessLog:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: RouteTemplates) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        status: int | None = None
        sent = 0

        async def observing_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.requests_in_progress.inc()
        try:
            await self.app(scope, receive, observing_send)
        except Exception:
            # Only ServerErrorMiddleware re-raises, after `_unexpected` (rest/errors.py) logged the
            # error with its traceback and answered 500 (or the stream was cut short). Raising
            # it again would make the server log the same traceback a second time.
            if status is None:  # not even that layer could answer
                log.exception("request failed before any response was sent")
        except asyncio.CancelledError:
            status = status or 499  # the client went away, or the shutdown grace period ran out
            raise
        finally:
            self.metrics.requests_in_progress.dec()
            self._observe(scope, status or 500, time.perf_counter() - started, sent)
            REQUEST_ID.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float, sent: int) -> None:
        method: str = scope["method"]
        route = self.routes.template(scope["path"])
        self.metrics.observe_request(method=method, route=route, status=status, seconds=seconds)
        quiet = route in QUIET_ROUTES and status < 400
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s %.1f ms",
            method,
            route,
            status,
            seconds * 1000,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
                "bytes_sent": sent,
            },
        )


def _request_id(given: str | None) -> str:
    """The caller's id if it is safe to log and echo, else a new one."""
    if given is not None and VALID_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


class ObservedFastAPI(FastAPI):
    """FastAPI with AccessLog around its whole middleware stack (`add_middleware` would put it
    inside ServerErrorMiddleware). Set `state.metrics` and `state.route_templates` before the
    first request."""

    def build_middleware_stack(self) -> ASGIApp:
        return AccessLog(
            super().build_middleware_stack(), metrics=self.state.metrics, routes=self.state.route_templates
        )
