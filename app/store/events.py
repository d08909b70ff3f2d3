"""The event journal's collections: events, the writers that append them, and the horizon.

- `events`: one document per event, `{_id: key, p: writer, kind, image: document}`, inserted and
  never changed; the key orders them (app/domain/datasets/events/keys.py). Deleted from the
  oldest end only, by the retention sweep.
- `event_writers`: one document per service process, `{_id: writer, promise, beat, at}`,
  replaced whole by that process alone (so FerretDB 1.24's non-atomic updates cannot mix two
  writers' values), deleted when it stops.
- `event_horizons`: `{_id: key}`, inserted by a sweep before it deletes the events older than
  `key`; the largest is the oldest point a subscriber may resume from. Inserts, not an update of
  one document: two sweeps racing leave both horizons, and the larger one holds.

Call inside the store's `errors()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import WriteError

from app.store.database import Database
from app.store.engines.mongodb import Collection
from app.store.errors import DUPLICATE_KEY
from app.store.together import InsertsTogether

EVENTS = "events"
WRITERS = "event_writers"
HORIZONS = "event_horizons"
# The late-commit check asks for one writer's events past a key.
EVENT_INDEXES = [IndexModel([("p", ASCENDING), ("_id", ASCENDING)], name="p_1__id_1")]


class EventStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Events of concurrent writes go in one insert.
        self._appends = InsertsTogether(lambda: self._database.collection(EVENTS))

    async def _events(self) -> Collection:
        return await self._database.indexed(EVENTS, EVENT_INDEXES)

    async def append(self, events: list[dict[str, Any]]) -> None:
        """Insert the events (each with its `_id`); one already stored (a retry of an insert
        whose answer was lost) counts as inserted. WriteError if one is refused."""
        await self._events()  # its index, before the first insert
        refusals = await self._appends.insert_many(events)
        refused = [refusal for refusal in refusals if refusal is not None and refusal.get("code") != DUPLICATE_KEY]
        if refused:
            raise WriteError(refused[0].get("errmsg", "write error"), refused[0].get("code"), refused[0])

    async def between(self, after: str, upto: str, *, limit: int) -> list[dict[str, Any]]:
        """Events with `after` < key < `upto` (`upto` excluded), oldest first, at most `limit`."""
        condition = {"_id": {"$gt": after, "$lt": upto}}
        found = (await self._events()).find(condition, sort=[("_id", ASCENDING)], limit=limit)
        return await found.to_list(None)

    async def through(self, after: str, last: str, *, limit: int) -> list[dict[str, Any]]:
        """Events with `after` < key <= `last`, oldest first, at most `limit`."""
        condition = {"_id": {"$gt": after, "$lte": last}}
        found = (await self._events()).find(condition, sort=[("_id", ASCENDING)], limit=limit)
        return await found.to_list(None)

    async def of_writers_since(self, since: dict[str, str], upto: str) -> list[dict[str, Any]]:
        """For each writer in `since`, its events from its key on, below `upto`, oldest first."""
        conditions = [{"p": writer, "_id": {"$gte": key, "$lt": upto}} for writer, key in since.items()]
        found = (await self._events()).find({"$or": conditions}, sort=[("_id", ASCENDING)])
        return await found.to_list(None)

    async def newest_keys(self, *, skip: int) -> str | None:
        """The key of the event with `skip` newer ones, if there are that many."""
        found = (await self._events()).find({}, {"_id": 1}, sort=[("_id", DESCENDING)], skip=skip, limit=1)
        documents = await found.to_list(None)
        return documents[0]["_id"] if documents else None

    async def estimated_count(self) -> int:
        return await (await self._events()).estimated_document_count()

    async def delete_before(self, key: str) -> int:
        """Delete the events older than `key`; how many."""
        return (await (await self._events()).delete_many({"_id": {"$lt": key}})).deleted_count

    async def horizon(self) -> str | None:
        """The oldest key a subscriber may resume after: events before it may be gone."""
        found = self._database.collection(HORIZONS).find({}, sort=[("_id", DESCENDING)], limit=1)
        documents = await found.to_list(None)
        return documents[0]["_id"] if documents else None

    async def raise_horizon(self, key: str) -> None:
        """Record that events before `key` are about to go; older records are dropped."""
        horizons = self._database.collection(HORIZONS)
        await horizons.update_one({"_id": key}, {"$setOnInsert": {"_id": key}}, upsert=True)
        await horizons.delete_many({"_id": {"$lt": key}})

    async def writers(self) -> list[dict[str, Any]]:
        """Every writer's `{_id, promise, beat, at}`."""
        return await self._database.collection(WRITERS).find({}).to_list(None)

    async def beat(self, writer: str, *, promise: int, beat: int, at: datetime) -> None:
        """The writer's promise: every event it will still store has a key at or after `promise`."""
        document = {"_id": writer, "promise": promise, "beat": beat, "at": at}
        await self._database.collection(WRITERS).replace_one({"_id": writer}, document, upsert=True)

    async def forget_writers(self, writers: Sequence[str]) -> None:
        await self._database.collection(WRITERS).delete_many({"_id": {"$in": list(writers)}})
