"""The state a crash in the middle of replacing an image's bytes leaves, planted for real:
the new bytes staged in the storage, the document already describing them."""

from __future__ import annotations

import io
from typing import Any

import httpx
from bson import ObjectId
from fastapi import FastAPI
from PIL import Image as PillowImage

from app.domain.writes import replacement
from app.storage import Storage
from tests.utils.images import make_image
from tests.utils.service import upload

OLD = make_image(20, 10)
NEW = make_image(50, 40)


def facts(content: bytes) -> tuple[int, int, int]:
    with PillowImage.open(io.BytesIO(content)) as picture:
        return len(content), *picture.size


async def crash_after_new_document(client: httpx.AsyncClient, app: FastAPI, images: Any) -> dict[str, Any]:
    """An image at `p.png` whose replacement by NEW stopped right after its document was written:
    NEW staged, the document describing it, the old bytes still at `p.png`."""
    image = (await upload(client, OLD, fields={"file": "p.png"})).json()
    storage: Storage = app.state.services.storage
    staged = replacement.staging_key(image["_id"])
    await storage.save(staged, io.BytesIO(NEW), length=len(NEW), content_type="image/png")
    size, width, height = facts(NEW)
    await images.update_one(
        {"_id": ObjectId(image["_id"])},
        {
            "$set": {"size": size, "width": width, "height": height, replacement.PENDING: staged},
            "$inc": {"revision": 1},
        },
    )
    return image | {"staged": staged}
