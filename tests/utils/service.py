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


class LifespanClient:
    """An app with its own settings, started and stopped around a block."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._manager = LifespanManager(app)

    async def __aenter__(self) -> tuple[httpx.AsyncClient, FastAPI]:
        await self._manager.__aenter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(self._app), base_url="http://testserver")
        return self._client, self._app

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._manager.__aexit__(*exc)
