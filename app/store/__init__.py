"""The one door to the database: every collection call of the service goes through here.

The domain asks in its own words (a page, a count, distinct values, documents by ids, insert /
replace / delete, batches of a filter, lease take and release, events appended and read) and never imports the driver.
How each engine answers lives behind the store, one module per engine (app/store/engines/),
recognised from what the server says at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.metrics import Metrics
from app.store.database import Database, Task
from app.store.events import EventStore
from app.store.images import IMAGE_INDEXES, DuplicateGroup, FieldUpdate, ImageStore
from app.store.kept import KeptStore
from app.store.leases import COLLECTION as LEASES
from app.store.leases import LeaseStore
from app.store.secrets import SecretStore
from app.store.snapshots import SnapshotStore
from app.store.views import ViewStore


@dataclass(frozen=True, kw_only=True)
class Store:
    database: Database
    images: ImageStore
    leases: LeaseStore
    views: ViewStore
    snapshots: SnapshotStore
    kept: KeptStore  # what snapshots hold of the images' bytes
    secrets: SecretStore
    events: EventStore

    @classmethod
    def connect(
        cls, *, uri: str, name: str, timeout_ms: int, metrics: Metrics, sqlite_directory: Path | None = None
    ) -> Store:
        """The store of the database at `uri`; nothing is sent before `open`."""
        database = Database(
            uri=uri, name=name, timeout_ms=timeout_ms, metrics=metrics, sqlite_directory=sqlite_directory
        )
        return cls(
            database=database,
            images=ImageStore(database),
            leases=LeaseStore(lambda: database.collection(LEASES)),
            views=ViewStore(database),
            snapshots=SnapshotStore(database),
            kept=KeptStore(database),
            secrets=SecretStore(database),
            events=EventStore(database),
        )

    async def open(self, *, setup: Sequence[Task] = (), maintenance: Sequence[Task] = ()) -> None:
        """Reach the database (now, or in the background until it answers): the images'
        indexes, the engine's own start, `setup`, then `maintenance` in the background."""
        self.database.on_start(image_indexes=IMAGE_INDEXES, setup=setup, maintenance=maintenance)
        await self.database.open()

    def require_ready(self) -> None:
        """Unavailable until the database has been reached and set up."""
        self.database.require_ready()

    @contextmanager
    def errors(self, *, user_query: bool = False) -> Iterator[None]:
        """Database errors in the block as the domain's: Unavailable, Conflict, BadInput (with
        `user_query`, a query the server refuses is the caller's to fix)."""
        with self.database.errors(user_query=user_query):
            yield

    @property
    def initialised(self) -> bool:
        return self.database.initialised

    async def ping(self, *, timeout: float = 1.0) -> bool:
        return await self.database.ping(timeout=timeout)

    async def close(self) -> None:
        await self.database.close()


__all__ = ["DuplicateGroup", "FieldUpdate", "Store", "Task"]
