"""What the service has really stored, read behind its back: files in the storage backend,
documents in the database."""

from __future__ import annotations

from fastapi import FastAPI

from app.models import Image
from app.services import Services


async def stored_keys(app: FastAPI) -> set[str]:
    """What is really in the storage backend, listed behind the service's back."""
    services: Services = app.state.services
    storage = services.storage
    if storage.kind == "local":
        root = storage.root  # type: ignore[attr-defined]
        return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
    client = storage._client  # type: ignore[attr-defined]
    return {item.object_name for item in client.list_objects(storage.bucket, recursive=True)}  # type: ignore[attr-defined]


async def count_documents(app: FastAPI) -> int:
    return await Image.get_pymongo_collection().count_documents({})


async def leases_settled(app: FastAPI) -> None:
    """Wait for the leases the service has released to be gone from the database, and for the
    writes' events to be in the journal: a write is answered before either arrives
    (app/domain/writes/leases.py, app/domain/datasets/events/journal.py)."""
    services: Services = app.state.services
    await services.leases.settled()
    await services.events.journal.settled()
