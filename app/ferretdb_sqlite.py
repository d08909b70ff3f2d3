"""FerretDB's SQLite files, when the service knows where they are (`make run` starts it so).

Two things the wire protocol cannot do:

- **Index what FerretDB 1.24 looks `_id` up by.** Its SQLite backend finds a document by id with
  `_ferretdb_sjson->'$._id' = ?` (internal/backends/sqlite/metadata/metadata.go, `IDColumn`),
  used by every find, update and delete whose filter is a lone `_id` and by every write of a
  document it has read. But it builds its own `_id` index on `_ferretdb_sjson->"_id"`
  (metadata/registry.go, `indexesCreate`), and SQLite uses an expression index only for the very
  same expression. So each of those reads the whole table: 138 ms for one `find_one` among
  100,000 documents, 0.6 ms with an index on the expression it queries. FerretDB does not know
  this index (it is not in its metadata, `listIndexes` does not show it, it cannot clash with the
  names FerretDB gives, which start with the table name); it goes with the table when the
  collection is dropped, and the next start adds it again.
- **Count the images cheaply**, to tell the operator when to move to MongoDB: through FerretDB a
  count reads every document.

Both are best effort: without them the service is correct, only slower or silent.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

log = logging.getLogger(__name__)

# Above this many images a filtered list page takes FerretDB/SQLite more than a second
# (bench/bench_embedded.py; README, "How far the embedded database goes").
ADVISED_MOST_IMAGES = 10_000

# FerretDB waits this long for a lock itself (`busy_timeout`, pool/uri.go); indexing a
# collection of a million documents holds the write lock for about a second.
BUSY_TIMEOUT_SECONDS = 10.0


async def tune(collection: AsyncCollection[dict[str, Any]], *, directory: Path) -> None:
    """Index the images collection's ids, and advise MongoDB once if it has grown past what suits."""
    database, name = collection.database.name, collection.name
    try:
        indexed = await asyncio.to_thread(index_ids, directory, database, name)
        images = await asyncio.to_thread(count, directory, database, name)
    except (OSError, sqlite3.Error) as error:
        log.warning("could not index FerretDB's SQLite files in %s (lookups by id stay slow): %s", directory, error)
        return
    if indexed:
        log.info("FerretDB SQLite: %s.%s indexed by the expression FerretDB looks ids up by", database, name)
    if images > ADVISED_MOST_IMAGES:
        log.warning(
            "The embedded database holds %d images. Above %d, filtered lists take FerretDB/SQLite more than "
            'a second each: move to MongoDB (docker/compose.yaml; README, "How far the embedded database goes").',
            images,
            ADVISED_MOST_IMAGES,
        )


def index_ids(directory: Path, database: str, collection: str) -> bool:
    """Index `collection` by the expression FerretDB looks `_id` up by; False if it is not there."""
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return False
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS {_quoted('_imagestore_' + table + '_id')} "
            f"ON {_quoted(table)} (_ferretdb_sjson->'$._id')"
        )
        return True


def count(directory: Path, database: str, collection: str) -> int:
    """The number of documents in `collection` (0 if it does not exist)."""
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return 0
        row = connection.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()
        return int(row[0])


@contextmanager
def _connection(directory: Path, database: str) -> Iterator[sqlite3.Connection]:
    # FerretDB keeps one file per database, `<name>.sqlite`. Read-write but never create: a
    # wrong directory must not leave empty database files behind.
    path = directory / f"{database}.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"no FerretDB database file at {path}")
    uri = f"{path.resolve().as_uri()}?mode=rw"
    # Autocommit: each statement is its own transaction, holding the write lock no longer.
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    with closing(connection):
        yield connection


def _table(connection: sqlite3.Connection, collection: str) -> str | None:
    row = connection.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)).fetchone()
    return None if row is None else str(row[0])


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
