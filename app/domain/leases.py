"""Turns between writers of one image: a lease per path, taken by inserting a document.

Every write of an image (upload, metadata change, delete, the start-up backfills) holds the
lease of its path while it reads, decides and writes, so two writers, in one process or in
several on one database, never interleave on one image: the document then always describes
the bytes stored for it, and no change is lost.

Why leases and not conditional updates: FerretDB 1.24 answers an update (replace, `$set`,
`$inc`, findAndModify) by reading the matching documents and writing them back in a second,
separate step. Two processes' updates of one document therefore both "match" and the later
write silently undoes the earlier one. Measured against FerretDB 1.24 with SQLite: 30
concurrent `replace_one({_id, revision: 0}, …)` → up to 8 report a match; 50 concurrent
`$set` of distinct keys → 1 to 10 keys kept. An insert against a unique `_id` is atomic on
FerretDB (SQLite enforces the key) and on MongoDB alike: exactly one of 30 inserters wins.
So a writer inserts `{_id: <key>, owner, expires}` into the `leases` collection, and deletes it
when done.

Within one process, writers of one key first take turns on an asyncio lock (app/domain/
locks.py), so the database only arbitrates between processes. The process's writers also share
their round trips: leases asked for while an insert of leases runs go in the next one, and the
same for releases, so eight concurrent uploads cost about two lease writes, not sixteen
(FerretDB with SQLite runs one write at a time).

A process that dies holding a lease leaves it behind: once `expires` has passed, any writer
deletes it and takes its place. Leases held longer than `ttl` (a large upload) are renewed
while they run. Several keys are taken all at once or not at all, so two writers of
overlapping sets can never hold one each and wait for the other's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError, WriteError

from app.domain.locks import KeyedLocks
from app.errors import Conflict
from app.together import DUPLICATE_KEY, InsertsTogether, Together

log = logging.getLogger(__name__)

COLLECTION = "leases"
TAKEOVER_SETTLE = 0.1  # seconds; see Leases._still_held


class Leases:
    def __init__(
        self,
        *,
        collection: Callable[[], AsyncCollection[dict[str, Any]]],
        ttl: float = 30.0,
        wait: float = 30.0,
    ) -> None:
        self._collection = collection  # looked up at use: the database may come up after us
        self._ttl = ttl
        self._wait = wait
        self._local = KeyedLocks()
        self._takes = InsertsTogether(collection)
        self._releases: Together[tuple[list[str], str], None] = Together(self._delete_released)

    @asynccontextmanager
    async def hold(self, keys: Iterable[str], *, what: str = "The image") -> AsyncIterator[None]:
        """Hold every key's lease for the block; Conflict if another writer keeps one past `wait`."""
        wanted = sorted(set(keys))
        if not wanted:
            yield
            return
        async with self._local.hold_all(wanted):
            owner = uuid.uuid4().hex
            await self._take(wanted, owner, what)
            renewing = asyncio.create_task(self._renew(wanted, owner))
            try:
                yield
            finally:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)
                await self._releases((wanted, owner))

    async def _take(self, keys: list[str], owner: str, what: str) -> None:
        collection = self._collection()
        deadline = asyncio.get_running_loop().time() + self._wait
        attempt = 0
        took_over = False
        while True:
            expires = datetime.now(UTC) + timedelta(seconds=self._ttl)
            documents = [{"_id": key, "owner": owner, "expires": expires} for key in keys]
            refusals = await self._takes.insert_many(documents, if_abandoned=lambda _: self._releases((keys, owner)))
            if any(refusal is not None and refusal.get("code") != DUPLICATE_KEY for refusal in refusals):
                raise WriteError("a lease could not be written", None, {"writeErrors": refusals})
            taken = {key for key, refusal in zip(keys, refusals, strict=True) if refusal is not None}
            # After a takeover, a concurrent one may have removed some (then all are given back
            # below, and taken again).
            if not taken and (not took_over or await self._still_held(collection, keys, owner)):
                return
            # Some are held by someone else: give back the others, so nobody waits on us meanwhile.
            await collection.delete_many({"_id": {"$in": [key for key in keys if key not in taken]}, "owner": owner})
            took_over = await self._clear_expired(collection, taken) or took_over
            if asyncio.get_running_loop().time() > deadline:
                raise Conflict(f"{what} is being changed by another request; try again.")
            await asyncio.sleep(random.uniform(0.002, 0.01 * 2 ** min(attempt, 5)))
            attempt += 1

    async def _delete_released(self, releases: list[tuple[list[str], str]]) -> list[None]:
        """The leases of several holders, in one delete. Exact although the filter pairs every
        key with every owner: a holder releases all its keys at once, so a lease of one of these
        keys held by one of these owners is being released here anyway."""
        keys = [key for keys, _ in releases for key in keys]
        try:
            await self._collection().delete_many({"_id": {"$in": keys}, "owner": {"$in": [o for _, o in releases]}})
        except PyMongoError as error:
            # They expire by themselves; until then, writers of these paths wait for them.
            log.warning("could not release the leases of %d paths (%s)", len(keys), type(error).__name__)
        return [None] * len(releases)

    async def _clear_expired(self, collection: AsyncCollection[dict[str, Any]], keys: set[str]) -> bool:
        """Delete the leases among `keys` whose holder stopped renewing them (it died); whether any."""
        now = datetime.now(UTC)
        cleared = False
        async for lease in collection.find({"_id": {"$in": list(keys)}, "expires": {"$lt": now}}):
            log.warning("taking over the expired lease of %r", lease["_id"])
            result = await collection.delete_one({"_id": lease["_id"], "owner": lease["owner"]})
            cleared = cleared or result.deleted_count > 0
        return cleared

    async def _still_held(self, collection: AsyncCollection[dict[str, Any]], keys: list[str], owner: str) -> bool:
        """After a takeover: whether our new leases survived a moment, all of them.

        FerretDB 1.24 deletes by reading the matches, then deleting their `_id`s in a second
        step. Two writers taking over one dead holder's lease both read it; the later one's
        delete can then remove the lease the earlier one has just inserted, and both would
        hold it. Such a delete lands within moments of its read, so a takeover that still
        holds all its leases after `TAKEOVER_SETTLE` seconds holds them alone. (Rare: it takes
        a dead holder and two writers of its path at once. On MongoDB the delete is atomic.)
        """
        await asyncio.sleep(TAKEOVER_SETTLE)
        held = await collection.count_documents({"_id": {"$in": keys}, "owner": owner})
        if held == len(keys):
            return True
        log.warning("a concurrent takeover removed %d of our new leases; taking them again", len(keys) - held)
        return False

    async def _renew(self, keys: list[str], owner: str) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            expires = datetime.now(UTC) + timedelta(seconds=self._ttl)
            try:
                await self._collection().update_many(
                    {"_id": {"$in": keys}, "owner": owner}, {"$set": {"expires": expires}}
                )
            except PyMongoError as error:
                log.warning("could not renew the leases of %d paths (%s)", len(keys), type(error).__name__)


def path_key(file: str) -> str:
    """The lease of the image stored at `file` (its storage key)."""
    return f"file:{file}"
