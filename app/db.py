"""The database connection: one AsyncMongoClient, Beanie initialised on it, closed at shutdown.

The service starts even when the database is down: initialisation keeps retrying in the
background and requests answer 503 until it succeeds, so nobody has to restart the service
after a database outage or a slow database start.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from beanie import init_beanie
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient, DeleteOne, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    DocumentTooLarge,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)

from app.errors import BadInput, Conflict, ServiceError, Unavailable
from app.metrics import Metrics
from app.models import IMAGE_INDEXES, Image

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


MaintenanceTask = Callable[[AsyncCollection[dict[str, Any]]], Awaitable[object]]


@dataclass(frozen=True)
class PagePlan:
    total: int  # every match
    ids: list[Any] | None  # the page's ids in order; None: the server's own find is no slower
    # Each image's `revision` when its id was read: one looked up with another (changed or
    # deleted in between) makes the server find the page itself, so that a page is always one
    # moment's answer.
    revisions: list[Any] | None = None


class Shortcuts(Protocol):
    """Cheaper ways to the same answers than the database server's own, for one engine (the
    embedded FerretDB/SQLite: app/ferretdb_sqlite/). None wherever they cannot tell exactly."""

    def decides(self, condition: Mapping[str, Any]) -> bool:
        """Whether the shortcuts can answer for `condition` at all, told without reading data
        (some answers may still be None at run time)."""
        ...

    async def count(self, collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any]) -> int | None: ...

    async def plan_page(
        self,
        collection: AsyncCollection[dict[str, Any]],
        condition: Mapping[str, Any],
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int,
    ) -> PagePlan | None: ...

    async def distinct_values(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any]
    ) -> list[Any] | None: ...

    async def value_counts(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        """How many matching documents hold each value at `field` (an array's distinct elements
        once each): every value at least as frequent as the `limit`-th most frequent."""
        ...

    async def one_by_one(self, collection: AsyncCollection[dict[str, Any]], count: int) -> bool:
        """Whether `count` statements, each by a lone `_id`, cost the server less than one
        statement over their `$in` (which the engine answers by reading the whole collection)."""
        ...


# Lookups by id of one page, sent at once.
LOOKUPS_AT_ONCE = 16


class Database:
    def __init__(
        self,
        *,
        uri: str,
        name: str,
        timeout_ms: int,
        metrics: Metrics,
        setup: Sequence[MaintenanceTask] = (),
        maintenance: Sequence[MaintenanceTask] = (),
        shortcuts: Shortcuts | None = None,
    ) -> None:
        self.name = name
        self._shortcuts = shortcuts
        self._metrics = metrics
        # Run once the indexes exist, before requests are served.
        self._setup = list(setup)
        # Run in the background, one after the other, once the database is first reached.
        self._maintenance = list(maintenance)
        self._background: set[asyncio.Task[None]] = set()
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="image-storage",
        )
        self._ready = asyncio.Event()
        self._indexed: set[str] = set()  # collections whose indexes `indexed` made

    async def open(self) -> None:
        """Initialise now if the database answers, else keep trying in the background."""
        try:
            await self._initialise()
        except PyMongoError as error:
            log.warning("database not reachable at start-up, retrying in the background: %s", error)
            self._start_background(self._retry_until_ready())

    async def _initialise(self) -> None:
        database = self.client[self.name]
        await init_beanie(database=database, document_models=[Image], skip_indexes=True)
        collection = database[Image.Settings.name]
        await ensure_indexes(collection, IMAGE_INDEXES)
        for task in self._setup:
            await task(collection)
        self._ready.set()
        self._start_background(_maintain(collection, self._maintenance))

    def _start_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # a reference, or the task may be collected mid-way
        task.add_done_callback(self._background.discard)

    async def _retry_until_ready(self) -> None:
        while not self._ready.is_set():
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._initialise()
                log.info("database reachable again: initialised")
            except PyMongoError as error:
                log.debug("database still unreachable: %s", error)

    @property
    def initialised(self) -> bool:
        """Whether the database has been reached and set up since start-up."""
        return self._ready.is_set()

    async def indexed(self, name: str, indexes: list[IndexModel]) -> AsyncCollection[dict[str, Any]]:
        """The collection `name` of the service's database, its `indexes` made on first use.
        Call inside `errors()`."""
        self.require_ready()
        collection: AsyncCollection[dict[str, Any]] = self.client[self.name][name]
        if name not in self._indexed:
            await ensure_indexes(collection, indexes)
            self._indexed.add(name)
        return collection

    async def count(self, collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any]) -> int:
        """How many documents of `collection` match `condition`. Call inside `errors()`."""
        if self._shortcuts is not None:
            counted = await self._shortcuts.count(collection, condition)
            if counted is not None:
                return counted
        return await collection.count_documents(condition)

    async def distinct(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any]
    ) -> list[Any]:
        """`distinct(field, condition)`. Call inside `errors()`."""
        if self._shortcuts is not None:
            found = await self._shortcuts.distinct_values(collection, field, condition)
            if found is not None:
                return found
        return await collection.distinct(field, condition)

    async def value_counts(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        """`Shortcuts.value_counts`, or None where there are none for this engine or they cannot
        tell (the caller then asks the server). Call inside `errors()`."""
        if self._shortcuts is None:
            return None
        return await self._shortcuts.value_counts(collection, field, condition, limit=limit)

    async def find_page(
        self,
        collection: AsyncCollection[dict[str, Any]],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int,
        count: bool,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The page of matches and, if `count`, the number of all of them where that costs no
        extra read of the collection (else None: the caller counts, or reads it off the page).
        Call inside `errors()`."""
        plan = None
        if self._shortcuts is not None and (count or sort):
            plan = await self._shortcuts.plan_page(collection, condition, sort=sort, skip=skip, limit=limit)
        total = plan.total if plan is not None and count else None
        if plan is not None and plan.ids is not None:
            documents = await _as_read(collection, plan.ids, plan.revisions, projection)
            if documents is not None:
                return documents, total
        found = collection.find(condition, projection, sort=list(sort) or None, skip=skip, limit=limit)
        if count and total is None and sort:
            # A sort reads every match on FerretDB, as long as the count does: side by side
            # the page costs one such read instead of two. The server's own count: shortcuts
            # asked above for no total have none (`self.count` would read SQLite again).
            items, total = await asyncio.gather(found.to_list(None), collection.count_documents(condition))
            return items, total
        return await found.to_list(None), total

    async def find_by_ids(
        self,
        collection: AsyncCollection[dict[str, Any]],
        ids: Sequence[Any],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The documents of `ids` that match `condition`, in `_id` order. Call inside `errors()`."""
        if not ids:
            return []
        listed = {"_id": {"$in": list(ids)}}
        among = {"$and": [condition, listed]} if condition else listed
        found, _ = await self.find_page(
            collection, among, projection, sort=[("_id", 1)], skip=0, limit=len(ids), count=False
        )
        return found

    async def batches(
        self,
        collection: AsyncCollection[dict[str, Any]],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any],
        size: int,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match, `size` at a time, each batch asked for once the previous one is done
        with. Paged by `_id` where the shortcuts decide `condition` (each page then costs a
        read of SQLite's); else from one cursor in natural order, since FerretDB pushes no
        range or sort down and each page would read and sort the whole collection."""
        # `decides` reads nothing: finding out costs no scan of the collection.
        if self._shortcuts is not None and self._shortcuts.decides(condition):
            async for batch in pages_by_id(collection, condition, projection, size, database=self):
                yield batch
            return
        async for batch in in_batches(collection.find(condition, projection, batch_size=size), size):
            yield batch

    async def delete_by_ids(self, collection: AsyncCollection[dict[str, Any]], ids: Sequence[Any]) -> int:
        """Delete the documents of `ids`; how many there were. Call inside `errors()`."""
        if not ids:
            return 0
        if self._shortcuts is not None and await self._shortcuts.one_by_one(collection, len(ids)):
            result = await collection.bulk_write([DeleteOne({"_id": image_id}) for image_id in ids], ordered=False)
            return result.deleted_count
        return (await collection.delete_many({"_id": {"$in": list(ids)}})).deleted_count

    def require_ready(self) -> None:
        if not self._ready.is_set():
            self._metrics.dependency_error("database", "NotInitialised")
            raise Unavailable("The database is unreachable; try again shortly.")

    @contextmanager
    def errors(self, *, user_query: bool = False) -> Iterator[None]:
        """`database_errors`, counting every outage in the metrics."""
        try:
            with database_errors(user_query=user_query):
                yield
        except Unavailable as error:
            self._metrics.dependency_error("database", error.cause)
            raise

    async def ping(self, *, timeout: float = 1.0) -> bool:
        try:
            await asyncio.wait_for(self.client.admin.command("ping"), timeout)
        except (PyMongoError, TimeoutError) as error:
            self._metrics.dependency_error("database", type(error).__name__)
            return False
        return True

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.close()


async def _as_read(
    collection: AsyncCollection[dict[str, Any]],
    ids: list[Any],
    revisions: list[Any] | None,
    projection: Mapping[str, Any] | None,
) -> list[dict[str, Any]] | None:
    """The documents of `ids` in that order, projected; None if one is gone or at another
    revision than `revisions` says."""
    looked_up, hide_revision = _showing_revision(projection)
    slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def one(image_id: Any) -> dict[str, Any] | None:
        async with slots:
            return await collection.find_one({"_id": image_id}, looked_up)

    found = await asyncio.gather(*(one(image_id) for image_id in ids))
    documents = []
    for index, document in enumerate(found):
        if document is None or (revisions is not None and document.get("revision") != revisions[index]):
            return None
        if hide_revision:
            document.pop("revision", None)
        documents.append(document)
    return documents


def _showing_revision(projection: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, bool]:
    """A projection that shows `revision` too, and whether it must then be hidden again."""
    if projection is None:
        return None, False
    if all(value == 0 for value in projection.values()):  # fields left out
        if projection.get("revision") != 0:
            return projection, False
        return {path: value for path, value in projection.items() if path != "revision"} or None, True
    if projection.get("revision") == 1:
        return projection, False
    return {**projection, "revision": 1}, True


async def _maintain(collection: AsyncCollection[dict[str, Any]], tasks: Sequence[MaintenanceTask]) -> None:
    """Run the maintenance tasks one after the other.

    Not side by side: a shutdown then cancels one database operation at most. Cancelled
    together while their connections were still being opened, PyMongo 4.20 left sockets open.
    """
    for task in tasks:
        try:
            await task(collection)
        except (PyMongoError, ServiceError) as error:
            # Retried at the next start; the service works without it meanwhile.
            log.warning("database maintenance stopped: %s", error)


# FerretDB 1.24 never answers an `update` command that carries 100 statements or more (measured
# with UpdateOne and ReplaceOne by `_id`: 99 in 0.5 s, 100 still unanswered after 20 s; SQLite
# backend). MongoDB splits a bulk write at 100,000 by itself.
FERRETDB_MAX_UPDATE_STATEMENTS = 99


@dataclass(frozen=True)
class Written:
    matched: int
    modified: int


async def write_in_parts(
    collection: AsyncCollection[dict[str, Any]],
    requests: Sequence[UpdateOne | ReplaceOne[dict[str, Any]]],
    *,
    ordered: bool,
) -> Written:
    """`bulk_write` of updates, sent FERRETDB_MAX_UPDATE_STATEMENTS at a time; the totals.

    Ordered, a failing part stops the rest, as one ordered bulk write would.
    """
    matched = modified = 0
    for start in range(0, len(requests), FERRETDB_MAX_UPDATE_STATEMENTS):
        part = list(requests[start : start + FERRETDB_MAX_UPDATE_STATEMENTS])
        result = await collection.bulk_write(part, ordered=ordered)
        matched, modified = matched + result.matched_count, modified + result.modified_count
    return Written(matched=matched, modified=modified)


async def pages_by_id(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    projection: Mapping[str, Any],
    size: int,
    *,
    database: Database | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The matches of `condition` in `_id` order, `size` at a time, each page asked for once the
    previous one is done with: for work that changes the matches as it goes. Through the
    `database`'s shortcuts when given (a sorted page reads the whole collection on FerretDB)."""
    after: Any = None
    while True:
        page = condition if after is None else {"$and": [condition, {"_id": {"$gt": after}}]}
        if database is None:
            batch = await collection.find(page, projection, sort=[("_id", 1)], limit=size).to_list(None)
        else:
            sort = [("_id", 1)]
            batch, _ = await database.find_page(
                collection, page, projection, sort=sort, skip=0, limit=size, count=False
            )
        if not batch:
            return
        after = batch[-1]["_id"]
        yield batch


async def in_batches(cursor: AsyncCursor[dict[str, Any]], size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """The cursor's documents, `size` at a time (the driver fetches them as they are asked for)."""
    batch: list[dict[str, Any]] = []
    async for document in cursor:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def ensure_indexes(collection: AsyncCollection[dict[str, Any]], indexes: list[IndexModel]) -> None:
    """Create the missing indexes, one per command.

    Not Beanie's index set-up: it re-sends every index in one createIndexes command, and
    FerretDB 1.24 drops the connection when several indexes in one command already exist.

    An index is present when one has its name or its keys (a database the legacy service
    created has its own on `file`; MongoDB refuses a second index on the same keys). One the
    server cannot build, because of the documents already stored or an older index in the
    way, is logged and skipped: the service works without it, slower or less guarded, and
    refusing to start would leave the team with no service at all.
    """
    existing = await collection.index_information()
    keys = {_keys(info["key"]) for info in existing.values()}
    for index in indexes:
        document = index.document
        if document["name"] in existing or _keys(document["key"].items()) in keys:
            continue
        try:
            await collection.create_indexes([index])
        except OperationFailure as error:
            log.error("index %s could not be created, the service runs without it: %s", document["name"], error)


def _keys(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """An index's key pattern, comparable whether a server gave its directions as ints or floats."""
    return tuple((name, int(way) if isinstance(way, (int, float)) else way) for name, way in pairs)


# Server error codes that mean "this value cannot be stored", not "the server is broken".
_REFUSED_VALUE_CODES = {2, 17419, 52, 55, 56, 57}  # BadValue, DocumentTooLarge, dollar/dotted/…


@contextmanager
def database_errors(*, user_query: bool = False) -> Iterator[None]:
    """Turn driver errors into domain errors: unreachable → Unavailable, refused value → BadInput.

    With `user_query`, any command error counts as the user's: the query compiler has already
    refused everything unsafe, so what the server still refuses (a projection path collision,
    say) is a query the user can fix.
    """
    try:
        yield
    except DuplicateKeyError:
        raise Conflict("Another image already uses this file path or id.") from None
    except (ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError) as error:
        raise Unavailable("The database is unreachable; try again shortly.", cause=type(error).__name__) from None
    except CursorNotFound:  # before OperationFailure, which it is a kind of: not the user's query
        lost = "The database lost its place in this request's results; try again."
        raise Unavailable(lost, cause="CursorNotFound") from None
    except BulkWriteError as error:  # before OperationFailure, which it is a kind of
        first = (error.details.get("writeErrors") or [{}])[0]
        message = _without_source_location(str(first.get("errmsg") or "a write was refused"))
        if first.get("code") == 11000:
            raise Conflict("Another image already uses this file path or id.") from None
        if first.get("code") in _REFUSED_VALUE_CODES:
            raise BadInput(f"The database refused a value: {message}.") from None
        raise
    except (WriteError, OperationFailure) as error:
        text = str((error.details or {}).get("errmsg") or error).split(", full error")[0]
        message = _without_source_location(text)
        if user_query and not isinstance(error, WriteError):
            raise BadInput(f"The database could not run this query: {message}.") from None
        if error.code in _REFUSED_VALUE_CODES:
            raise BadInput(f"The database refused a value: {message}.") from None
        raise
    except (DocumentTooLarge, InvalidDocument) as error:
        raise BadInput(f"The database refused the document: {error}.") from None


# FerretDB 1.24 starts some error messages with where in its Go source they were raised:
# "[sort.go:96 common.ValidateSortDocument] maximum sort keys exceeded: 40". Clients get the
# sentence, not the server's internals.
_GO_SOURCE_LOCATION = re.compile(r"^\[[^\]]*\.go:\d+[^\]]*\]\s*")


def _without_source_location(message: str) -> str:
    return _GO_SOURCE_LOCATION.sub("", message).rstrip(".")
