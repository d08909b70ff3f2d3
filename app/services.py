"""Everything a request needs, built once from the settings and shared by REST and GraphQL."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.config import Settings
from app.db import Database
from app.domain import data_keys
from app.domain.images import ImageService
from app.errors import Unavailable
from app.storage import Storage, build_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Services:
    settings: Settings
    database: Database
    storage: Storage
    images: ImageService

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        database = Database(
            uri=settings.mongodb_uri,
            name=settings.mongodb_database,
            timeout_ms=settings.mongodb_timeout_ms,
            maintenance=[data_keys.backfill],
        )
        await database.open()
        storage = build_storage(settings)
        try:
            await storage.start()
        except Unavailable as error:
            # Not fatal: requests that need the storage answer 503 until it is back.
            log.warning("storage not ready at start-up: %s", error.detail)
        images = ImageService(database=database, storage=storage, max_upload_bytes=settings.max_upload_bytes)
        return cls(settings=settings, database=database, storage=storage, images=images)

    async def close(self) -> None:
        await self.storage.close()
        await self.database.close()
