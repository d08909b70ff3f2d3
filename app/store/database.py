"""The database connection: one AsyncMongoClient, the engine it reaches, Beanie on it.

The service starts even when the database is down: initialisation keeps retrying in the
background and requests answer 503 until it succeeds, so nobody has to restart the service
after a database outage or a slow database start. What engine the server is comes from its own
`buildInfo` reply, at each (re)connection (app/store/engines/).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient, IndexModel
from pymongo.errors import PyMongoError

from app.errors import ServiceError, Unavailable
from app.metrics import Metrics
from app.models import Image
from app.store.engines import recognise
from app.store.engines.mongodb import Collection, MongoDB
from app.store.errors import database_errors

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
CLOSE_GRACE = 2.0  # seconds the maintenance task under way has to finish at shutdown

# Work on the database done at start-up: before requests are served (setup), or in the
# background once the database is first reached (maintenance).
Task = Callable[[], Awaitable[object]]


class Database:
    def __init__(
        self,
        *,
        uri: str,
        name: str,
        timeout_ms: int,
        metrics: Metrics,
        sqlite_directory: Path | None = None,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._sqlite_directory = sqlite_directory
        self._setup: list[Task] = []
        self._maintenance: list[Task] = []
        self._background: set[asyncio.Task[None]] = set()
        self._maintaining: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()  # maintenance starts no further task once set
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="image-storage",
        )
        self._ready = asyncio.Event()
        self._indexed: set[str] = set()  # collections whose indexes `indexed` made
        self._key_ranged: set[str] = set()  # collections whose `_id` ranges the engine reads by index
        self._collections: dict[str, Collection] = {}
        # Until the server has said what it is, the plain path (nothing is served before).
        self.engine: MongoDB = MongoDB()
        self._image_indexes: list[IndexModel] = []

    def on_start(
        self, *, image_indexes: list[IndexModel], setup: Sequence[Task] = (), maintenance: Sequence[Task] = ()
    ) -> None:
        """What initialisation does: the images' indexes, then `setup` before requests are
        served, then `maintenance` in the background, one task after the other."""
        self._image_indexes = list(image_indexes)
        self._setup = list(setup)
        self._maintenance = list(maintenance)

    async def open(self) -> None:
        """Initialise now if the database answers, else keep trying in the background."""
        try:
            await self._initialise()
        except PyMongoError as error:
            log.warning("database not reachable at start-up, retrying in the background: %s", error)
            self._start_background(self._retry_until_ready())

    async def _initialise(self) -> None:
        database = self.client[self.name]
        build_info = await self.client.admin.command("buildInfo")
        self.engine = recognise(build_info, sqlite_directory=self._sqlite_directory)
        log.info("database engine: %s", self.engine.describe())
        await init_beanie(database=database, document_models=[Image], skip_indexes=True)
        images = database[Image.Settings.name]
        await self.engine.ensure_indexes(images, self._image_indexes)
        await self.engine.start(images)
        for task in self._setup:
            await task()
        self._ready.set()
        self._maintaining = self._start_background(_maintain(self._maintenance, self._stopping))

    def _start_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)  # a reference, or the task may be collected mid-way
        task.add_done_callback(self._background.discard)
        return task

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

    def collection(self, name: str, *, keep: bool = True) -> Collection:
        """The collection `name`. Kept (`keep`), not made again per call: every write of an
        upload asks for its collection, and PyMongo builds a database and a collection object
        (codec and write options) each time. Not kept for collections without end in number."""
        if not keep:
            return self.client[self.name][name]
        found = self._collections.get(name)
        if found is None:
            found = self._collections[name] = self.client[self.name][name]
        return found

    async def indexed(self, name: str, indexes: list[IndexModel], *, key_ranges: bool = False) -> Collection:
        """The collection `name`, its `indexes` made on first use. Call inside `errors()`.
        With `key_ranges`, also what makes the engine read `_id` ranges by index (`key_range`)."""
        self.require_ready()
        collection = self.collection(name)
        if name not in self._indexed:
            await self.engine.ensure_indexes(collection, indexes)
            self._indexed.add(name)
        if key_ranges and name not in self._key_ranged:
            await self.prepare_key_ranges(name)
        return collection

    async def prepare_key_ranges(self, name: str) -> None:
        """Make the engine read `_id` ranges of the collection `name` by index: at start-up (a
        store setup task, before the database is ready for requests) rather than in a first write."""
        await self.engine.index_keys(self.collection(name))
        self._key_ranged.add(name)

    def require_ready(self) -> None:
        if not self._ready.is_set():
            self._metrics.dependency_error("database", "NotInitialised")
            raise Unavailable("The database is unreachable; try again shortly.")

    @contextmanager
    def errors(self, *, user_query: bool = False) -> Iterator[None]:
        """Driver errors inside the block as the domain's (app/store/errors.py), counting every
        outage in the metrics."""
        try:
            with database_errors(user_query=user_query, readable=self.engine.error_text):
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
        """Stop the background work, then the connections. The maintenance task under way gets
        `CLOSE_GRACE` to finish (none starts after it): cancelled in the middle of a command,
        PyMongo 4.20 may leave that command's socket open."""
        self._stopping.set()
        maintaining = self._maintaining
        if maintaining is not None and not maintaining.done():
            await asyncio.wait([maintaining], timeout=CLOSE_GRACE)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.close()


async def _maintain(tasks: Sequence[Task], stopping: asyncio.Event) -> None:
    """Run the maintenance tasks one after the other, none once `stopping` is set.

    Not side by side: a shutdown then cancels one database operation at most. Cancelled
    together while their connections were still being opened, PyMongo 4.20 left sockets open.
    """
    for task in tasks:
        if stopping.is_set():
            return
        try:
            await task()
        except (PyMongoError, ServiceError) as error:
            # Retried at the next start; the service works without it meanwhile.
            log.warning("database maintenance stopped: %s", error)
