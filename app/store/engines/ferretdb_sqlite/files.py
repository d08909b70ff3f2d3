"""Opening FerretDB's SQLite files (read-only, but for tuning.py's index), and naming what is in them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

# The column of each collection's table that holds its documents (FerretDB's storage format:
# sql.py).
DOCUMENT = "_ferretdb_sjson"

# FerretDB waits this long for a lock itself (`busy_timeout`, pool/uri.go); indexing a
# collection of a million documents holds the write lock for about a second.
BUSY_TIMEOUT_SECONDS = 10.0


@contextmanager
def opened(directory: Path, database: str, *, writable: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to FerretDB's file of `database`: read-only unless `writable`.

    The files are FerretDB's: everything but the one index tuning.py adds only reads them, and
    a read-only connection makes sure a mistake here cannot change FerretDB's data.
    """
    # FerretDB keeps one file per database, `<name>.sqlite`. Never create it (neither mode
    # does): a wrong directory must not leave empty database files behind.
    path = directory / f"{database}.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"no FerretDB database file at {path}")
    uri = f"{path.resolve().as_uri()}?mode={'rw' if writable else 'ro'}"
    # Autocommit: each statement is its own transaction, holding the write lock no longer.
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    with closing(connection):
        yield connection


def table_name(connection: sqlite3.Connection, collection: str) -> str | None:
    row = connection.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)).fetchone()
    return None if row is None else str(row[0])


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
