"""What fsck has seen on each side, kept on disk so that its memory stays flat at any size.

Matching a million stored files against a million documents needs one side to be looked up
by key. Held in memory that is a set of a million paths; asked of the database one batch at a
time it may be, where an engine pushes no `$in` down, a scan of the whole collection per
batch. So both sides go, as they stream past, into a throwaway SQLite file of fsck's own
(roughly 150 bytes of disk per object) and are matched there, by its indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from app.storage.base import ListedFile

_SCHEMA = """
CREATE TABLE files (key TEXT PRIMARY KEY, size INTEGER, modified REAL) WITHOUT ROWID;
CREATE TABLE named (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE copies (key TEXT PRIMARY KEY, image_id TEXT, checksum TEXT, size INTEGER, modified REAL) WITHOUT ROWID;
CREATE TABLE current (image_id TEXT, checksum TEXT, PRIMARY KEY (image_id, checksum)) WITHOUT ROWID;
"""


class Inventory:
    """The stored files (as listed) and the keys that documents name (as file or staged file)."""

    def __init__(self, path: Path) -> None:
        # Nothing to keep after a crash of fsck itself: the file is thrown away with its folder.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)

    def add_files(self, files: Iterable[ListedFile]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?)",
            ((item.key, item.size, item.modified.timestamp()) for item in files),
        )

    def add_named(self, keys: Iterable[str]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO named VALUES (?)", ((key,) for key in keys))

    def add_copies(self, copies: Iterable[tuple[ListedFile, str | None, str | None]]) -> None:
        """Resized copies as listed, each with the image id and checksum its key names."""
        self._db.executemany(
            "INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?, ?)",
            ((item.key, image, checksum, item.size, item.modified.timestamp()) for item, image, checksum in copies),
        )

    def add_current(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(image id, checksum) of documents: the copies that may be served."""
        self._db.executemany("INSERT OR IGNORE INTO current VALUES (?, ?)", pairs)

    def stale_copies(self, *, modified_before: datetime, batch: int) -> Iterator[list[ListedFile]]:
        """Copies no document's image id and checksum name, modified before the cutoff."""
        cursor = self._db.execute(
            "SELECT key, size, modified FROM copies WHERE modified < ? AND NOT EXISTS "
            "(SELECT 1 FROM current WHERE current.image_id = copies.image_id AND current.checksum = copies.checksum) "
            "ORDER BY key",
            (modified_before.timestamp(),),
        )
        yield from _listed(cursor, batch)

    def listed_among(self, keys: list[str]) -> set[str]:
        """Which of `keys` the storage listing had."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters is 999 in old builds
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            found.update(row[0] for row in self._db.execute(f"SELECT key FROM files WHERE key IN ({marks})", part))
        return found

    def unnamed_files(self, *, modified_before: datetime, batch: int) -> Iterator[list[ListedFile]]:
        """Listed files no document names, last modified before the cutoff, a batch at a time."""
        cursor = self._db.execute(
            "SELECT key, size, modified FROM files WHERE modified < ? AND key NOT IN (SELECT key FROM named) "
            "ORDER BY key",
            (modified_before.timestamp(),),
        )
        yield from _listed(cursor, batch)

    def close(self) -> None:
        self._db.close()


def _listed(cursor: sqlite3.Cursor, batch: int) -> Iterator[list[ListedFile]]:
    """Rows of (key, size, modified), `batch` at a time, as listed files."""
    while rows := cursor.fetchmany(batch):
        yield [
            ListedFile(key=key, size=size, modified=datetime.fromtimestamp(modified, UTC))
            for key, size, modified in rows
        ]
