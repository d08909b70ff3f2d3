"""The `_id` index FerretDB 1.24/SQLite lacks, and the advice to move to MongoDB.

FerretDB's SQLite backend finds a document by id with `_ferretdb_sjson->'$._id' = ?`
(internal/backends/sqlite/metadata/metadata.go, `IDColumn`), used by every find, update and
delete whose filter is a lone `_id` and by every write of a document it has read. But it builds
its own `_id` index on `_ferretdb_sjson->"_id"` (metadata/registry.go, `indexesCreate`), and
SQLite uses an expression index only for the very same expression. So each of those reads the
whole table: 138 ms for one `find_one` among 100,000 documents, 0.6 ms with an index on the
expression it queries. FerretDB does not know this index (it is not in its metadata,
`listIndexes` does not show it, it cannot clash with the names FerretDB gives, which start with
the table name); it goes with the table when the collection is dropped, and the next start adds
it again.

Adding it is the one write this package makes to FerretDB's files, so `index_ids` opens its own
read-write connection, once at start-up; every other connection here (the count below, and
all of shortcuts.py) is read-only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from app.store.engines.ferretdb_sqlite.files import opened, quoted, table_name

log = logging.getLogger(__name__)

# Above about this many images list pages and totals take more than a second, even read from
# SQLite (bench/bench_embedded.py; README, "How far the embedded database goes").
ADVISED_MOST_IMAGES = 100_000


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
            "The embedded database holds %d images. Above %d, list pages take FerretDB/SQLite more than a "
            "second each (snapshots and regex filters already above 10,000): move to MongoDB "
            '(docker/compose.yaml; README, "How far the embedded database goes").',
            images,
            ADVISED_MOST_IMAGES,
        )


def index_ids(directory: Path, database: str, collection: str) -> bool:
    """Index `collection` by the expression FerretDB looks `_id` up by; False if it is not there."""
    with opened(directory, database, writable=True) as connection:
        table = table_name(connection, collection)
        if table is None:
            return False
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS {quoted('_imagestore_' + table + '_id')} "
            f"ON {quoted(table)} (_ferretdb_sjson->'$._id')"
        )
        return True


def count(directory: Path, database: str, collection: str) -> int:
    """The number of documents in `collection` (0 if it does not exist)."""
    with opened(directory, database) as connection:
        table = table_name(connection, collection)
        if table is None:
            return 0
        row = connection.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()
        return int(row[0])
