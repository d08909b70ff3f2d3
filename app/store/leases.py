"""The leases collection: a lease per path, taken by inserting it (app/domain/writes/leases.py).

An insert against the unique `key` is atomic on every engine: of several writers inserting one
key, exactly one wins. A lease's `_id` names its holder, so that a delete by `_id` removes only
the deleter's own lease, even where a delete is two steps (app/store/engines/ferretdb.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import PyMongoError, WriteError

from app.store.engines.mongodb import Collection
from app.store.errors import DUPLICATE_KEY
from app.store.together import InsertsTogether, Together

log = logging.getLogger(__name__)

COLLECTION = "leases"
RELEASE_LINGER = 0.01
KEY_INDEX = IndexModel([("key", ASCENDING)], name="key_1", unique=True)


class LeaseStore:
    def __init__(self, collection: Callable[[], Collection]) -> None:
        self._collection = collection  # looked up at use: the database may come up after us
        self._takes = InsertsTogether(self._collection)
        # Releases of concurrent holders go in one delete. Nobody waits for a release but the
        # next writer of its path, so it waits a little for others: fewer, larger deletes, and
        # the writes that are waited for find the database less busy.
        self._releases: Together[list[str], None] = Together(self._delete_released, linger=RELEASE_LINGER)

    async def prepare(self) -> None:
        """Make the unique index that makes a lease exclusive, if missing.

        Leases of the earlier form (`_id` = key, no `key` field) would all collide in it as
        missing keys; they are at most a lease's lifetime old in a running system, and are dropped.
        """
        collection = self._collection()
        if KEY_INDEX.document["name"] not in await collection.index_information():
            await collection.delete_many({"key": {"$exists": False}})
            await collection.create_indexes([KEY_INDEX])

    async def take(self, leases: list[dict[str, Any]], *, if_abandoned: Any = None) -> list[bool]:
        """Insert the leases (`{_id, key, …}`); for each, whether another holder has its key.
        Inserts of concurrent callers go as one command."""
        refusals = await self._takes.insert_many(leases, if_abandoned=if_abandoned)
        if any(refusal is not None and refusal.get("code") != DUPLICATE_KEY for refusal in refusals):
            raise WriteError("a lease could not be written", None, {"writeErrors": refusals})
        return [refusal is not None for refusal in refusals]

    async def give_back(self, ids: Sequence[str]) -> None:
        """Delete these leases now (the holder's own)."""
        await self._collection().delete_many({"_id": {"$in": list(ids)}})

    async def release(self, ids: list[str]) -> None:
        """Delete these leases, together with other holders' releases; never raises."""
        await self._releases(ids)

    async def _delete_released(self, releases: list[list[str]]) -> list[None]:
        ids = [lease_id for ids in releases for lease_id in ids]
        try:
            await self._collection().delete_many({"_id": {"$in": ids}})
        except PyMongoError as error:
            # They expire by themselves; until then, writers of these paths wait for them.
            log.warning("could not release the leases of %d paths (%s)", len(ids), type(error).__name__)
        return [None] * len(releases)

    async def holders(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The leases of `keys`: `{_id, key, expires}` each."""
        found = self._collection().find({"key": {"$in": list(keys)}}, {"key": 1, "expires": 1})
        return await found.to_list(None)

    async def drop(self, lease_id: str) -> None:
        await self._collection().delete_one({"_id": lease_id})

    async def renew(self, ids: Sequence[str], expires: datetime) -> str | None:
        """Move the leases' expiry to `expires`; None, or why they could not be renewed."""
        try:
            await self._collection().update_many({"_id": {"$in": list(ids)}}, {"$set": {"expires": expires}})
        except PyMongoError as error:
            return type(error).__name__
        return None

    async def expired(self, now: datetime) -> AsyncIterator[dict[str, Any]]:
        """Every lease whose holder stopped renewing it before `now`."""
        async for lease in self._collection().find({"expires": {"$lt": now}}):
            yield lease
