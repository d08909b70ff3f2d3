"""The views collection: `{owner, name, filter, sort, created, updated}`, unique per owner and name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from app.store.database import Database
from app.store.engines.mongodb import Collection

COLLECTION = "views"
INDEXES = [IndexModel([("owner", ASCENDING), ("name", ASCENDING)], name="owner_1_name_1", unique=True)]


class ViewStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def _collection(self) -> Collection:
        return await self._database.indexed(COLLECTION, INDEXES)

    async def of_owner(self, owner: str | None, *, limit: int) -> list[dict[str, Any]]:
        """The owner's views by name, as stored (see `save` for the sort's form)."""
        found = (await self._collection()).find({"owner": owner}, sort=[("name", ASCENDING)], limit=limit)
        return [_as_read(document) for document in await found.to_list(None)]

    async def get(self, owner: str | None, name: str) -> dict[str, Any] | None:
        document = await (await self._collection()).find_one({"owner": owner, "name": name})
        return None if document is None else _as_read(document)

    async def count(self, owner: str | None) -> int:
        return await (await self._collection()).count_documents({"owner": owner})

    async def update(
        self, owner: str | None, name: str, *, filter_text: str, sort: Sequence[tuple[str, int]], updated: datetime
    ) -> bool:
        """Change the view's filter and sort; False if there is no such view."""
        changed = _changes(filter_text, sort, updated)
        result = await (await self._collection()).update_one({"owner": owner, "name": name}, {"$set": changed})
        return bool(result.matched_count)

    async def create(
        self, owner: str | None, name: str, *, filter_text: str, sort: Sequence[tuple[str, int]], now: datetime
    ) -> bool:
        """Store a new view; False if the owner has one of that name (made meanwhile)."""
        document = {"owner": owner, "name": name, **_changes(filter_text, sort, now), "created": now}
        try:
            await (await self._collection()).insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def delete(self, owner: str | None, name: str) -> bool:
        result = await (await self._collection()).delete_one({"owner": owner, "name": name})
        return bool(result.deleted_count)


def _changes(filter_text: str, sort: Sequence[tuple[str, int]], updated: datetime) -> dict[str, Any]:
    # Sort keys as objects, not pairs: FerretDB 1.24 stores no array inside an array.
    keys = [{"path": path, "direction": direction} for path, direction in sort]
    return {"filter": filter_text, "sort": keys, "updated": updated}


def _as_read(document: Mapping[str, Any]) -> dict[str, Any]:
    return {**document, "sort": [(key["path"], key["direction"]) for key in document.get("sort", [])]}
