"""The embedded FerretDB/SQLite's shortcuts fail safe (app/ferretdb_sqlite/): they only read
FerretDB's files, and only files laid out as they were written for."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from app.ferretdb_sqlite import files


def test_connections_read_only_unless_asked_to_write(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as made:
        made.execute("CREATE TABLE t (x)")
    with files.opened(tmp_path, "db") as connection, pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("INSERT INTO t VALUES (1)")
    with files.opened(tmp_path, "db", writable=True) as connection:  # tuning.py's index, once at start-up
        connection.execute("INSERT INTO t VALUES (1)")
    with files.opened(tmp_path, "db") as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
