"""Zip archives for POST /import, built in memory."""

from __future__ import annotations

import io
import zipfile

import httpx


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


async def import_zip(client: httpx.AsyncClient, content: bytes, **fields: str) -> httpx.Response:
    return await client.post("/import", files={"archive": ("dataset.zip", content, "application/zip")}, data=fields)
