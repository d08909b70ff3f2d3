"""Driving the service under test over HTTP: uploads, and apps with settings of their own."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI


async def upload(
    client: httpx.AsyncClient,
    content: bytes,
    *,
    filename: str = "picture.png",
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/images", files={"image": (filename, content, "application/octet-stream")}, data=fields or {}
    )


# asgi_lifespan gives a start-up 5 s by default. The service's start (bucket, indexes, the
# engine's checks) takes about 0.5 s, but several times that on a loaded 2-core machine: the
# limit is for a start that hangs, not a slow one.
STARTUP_SECONDS = 60.0


def lifespan(app: FastAPI) -> LifespanManager:
    """The app's start-up and shutdown around a block."""
    return LifespanManager(app, startup_timeout=STARTUP_SECONDS, shutdown_timeout=STARTUP_SECONDS)


class LifespanClient:
    """An app with its own settings, started and stopped around a block."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._manager = lifespan(app)

    async def __aenter__(self) -> tuple[httpx.AsyncClient, FastAPI]:
        await self._manager.__aenter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(self._app), base_url="http://testserver")
        return self._client, self._app

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._manager.__aexit__(*exc)
