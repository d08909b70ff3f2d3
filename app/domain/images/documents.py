"""What every image room shares: the document of a new image, documents as models, and the
removal of an image's files once its document is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from app.domain.media.thumbnails import Thumbnails
from app.domain.scope import Scope
from app.domain.writes import replacement, rewrite
from app.errors import ServiceError
from app.models import LEGACY_FIELDS, Image
from app.storage import Storage

log = logging.getLogger(__name__)

LOOKUPS_AT_ONCE = 16  # storage calls (stat, HEAD, delete) side by side


def loaded(raw: dict[str, Any]) -> Image:
    """An Image from a raw document the store returned."""
    image: Image = Image.model_validate(raw)
    return image


def new_document(scope: Scope, file: str, fields: dict[str, Any], *, image_id: ObjectId | None) -> dict[str, Any]:
    """The document of a new image at `file`, at its first revision; a new id unless given."""
    document = {"_id": image_id or ObjectId(), "file": file, "userId": scope.owner, **fields, **LEGACY_FIELDS}
    return rewrite.next_revision(document)


class FileRemoval:
    """The files of images whose documents are gone (or were never written)."""

    def __init__(self, *, storage: Storage, thumbnails: Thumbnails) -> None:
        self.storage = storage
        self.thumbnails = thumbnails

    async def of_documents(self, documents: list[dict[str, Any]]) -> None:
        """`of_document` for each, a few side by side: all 2,000 of a batch waiting on worker
        threads at once raised the service's peak memory by 8 MB."""
        slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def one(document: dict[str, Any]) -> None:
            async with slots:
                await self.of_document(document)

        await asyncio.gather(*(one(document) for document in documents))

    async def of_document(self, document: Mapping[str, Any]) -> None:
        """The files of a deleted document: its own, the staged one of a replacement a crash
        left unfinished, and its resized copies."""
        pending = document.get(replacement.PENDING)
        if isinstance(pending, str):
            await self.file(pending)
        await self.file(document["file"])
        await self.thumbnails.forget(str(document["_id"]))

    async def file(self, key: str) -> None:
        # The document is gone (or was never written); a leftover file is only wasted space,
        # so report it for the operator rather than fail a request that otherwise succeeded.
        try:
            await self.storage.delete(key)
        except ServiceError as error:
            log.error("could not delete file %r from storage: %s", key, error.detail)
