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

from bson.errors import InvalidDocument
from pymongo import DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DocumentTooLarge, WriteError

from app.store.database import Database
from app.store.engines.mongodb import Collection
from app.store.errors import DUPLICATE_KEY
from app.store.together import Together

EVENTS = "events"
WRITERS = "event_writers"
HORIZONS = "event_horizons"
# No index but `_id`'s: every read is a range of keys (the late-event check too, within it).
EVENT_INDEXES: list[IndexModel] = []
# A batch of events waits this long for those of other writes: fewer, larger inserts when
# writes come together, for a millisecond more per write.
APPEND_LINGER = 0.0
# The late-event check reads at most this many events past a given-up writer's promise.
LATE_READ = 10_000


class EventStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Events of concurrent writes go in one insert. Each is its image's document, which the
        # database has just taken, in a small envelope: not checked again before it is sent.
        self._appends: Together[list[dict[str, Any]], Exception | None] = Together(self._insert, linger=APPEND_LINGER)

    async def _events(self) -> Collection:
        return await self._database.indexed(EVENTS, EVENT_INDEXES, key_ranges=True)

    async def prepare(self) -> None:
        """Make the journal's collection and its index, at start-up rather than in the first write."""
        await self._database.prepare_key_ranges(EVENTS)

    async def append(self, events: list[dict[str, Any]]) -> None:
        """Insert the events (each with its `_id`), with those of concurrent callers; one already
        stored (a retry of an insert whose answer was lost) counts as inserted. WriteError (or
        the driver's error for a document it cannot send) if one of these is refused."""
        refusal = await self._appends(events)
        if refusal is not None:
            raise refusal

    async def _insert(self, batches: list[list[dict[str, Any]]]) -> list[Exception | None]:
        events = [event for batch in batches for event in batch]
        try:
            await self._insert_each(events)
        except (WriteError, InvalidDocument, DocumentTooLarge) as error:
            if len(batches) == 1:
                return [error]
            # One caller's event refused: each caller's alone, so the others are not refused with it.
            return [await self._refusal(batch) for batch in batches]
        return [None] * len(batches)

    async def _refusal(self, events: list[dict[str, Any]]) -> Exception | None:
        try:
            await self._insert_each(events)
        except (WriteError, InvalidDocument, DocumentTooLarge) as error:
            return error
        return None

    async def _insert_each(self, events: list[dict[str, Any]]) -> None:
        try:
            await (await self._events()).insert_many(events, ordered=False)
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                raise
            failures = error.details.get("writeErrors", [])
            refused = [failure for failure in failures if failure.get("code") != DUPLICATE_KEY]
            if refused:
                first = refused[0]
                raise WriteError(first.get("errmsg", "write error"), first.get("code"), first) from None

    async def between(self, after: str, upto: str, *, limit: int) -> list[dict[str, Any]]:
        """Events with `after` < key < `upto` (`upto` excluded), oldest first, at most `limit`."""
        events = await self._events()
        return await self._database.engine.key_range(events, after=after, below=upto, limit=limit)

    async def through(self, after: str, last: str, *, limit: int) -> list[dict[str, Any]]:
        """Events with `after` < key <= `last`, oldest first, at most `limit`."""
        events = await self._events()
        return await self._database.engine.key_range(events, after=after, through=last, limit=limit)

    async def of_writers_since(self, since: dict[str, str], upto: str) -> list[dict[str, Any]]:
        """For each writer in `since`, its events from its key on, below `upto`, oldest first."""
        events = await self._events()
        found = await self._database.engine.key_range(events, after=min(since.values()), below=upto, limit=LATE_READ)
        return [event for event in found if event["p"] in since and event["_id"] >= since[event["p"]]]

    async def newest_keys(self, *, skip: int) -> str | None:
        """The key of the event with `skip` newer ones, if there are that many."""
        found = (await self._events()).find({}, {"_id": 1}, sort=[("_id", DESCENDING)], skip=skip, limit=1)
        documents = await found.to_list(None)
        return documents[0]["_id"] if documents else None

    async def count(self) -> int:
        return await self._database.engine.count(await self._events(), {})

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
