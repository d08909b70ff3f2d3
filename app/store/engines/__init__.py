"""The database engines the store runs on, each in its own module, recognised at start-up.

`mongodb.MongoDB` is the plain path. `ferretdb.FerretDB` is FerretDB 1.24, recognised by the
`ferretdbVersion` its `buildInfo` reply carries (MongoDB's has none). `ferretdb_sqlite` adds the
answers read from FerretDB's SQLite files, when the service was told where they are
(FERRETDB_SQLITE_DIRECTORY, as `make run` does) and the server says it is FerretDB: a
directory configured beside MongoDB is ignored, with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.store.engines.ferretdb import FerretDB
from app.store.engines.ferretdb_sqlite.engine import FerretDBSQLite
from app.store.engines.mongodb import MongoDB

log = logging.getLogger(__name__)


def recognise(build_info: Mapping[str, Any], *, sqlite_directory: Path | None) -> MongoDB:
    """The engine a server is, from its `buildInfo` reply."""
    ferretdb_version = build_info.get("ferretdbVersion")
    if not isinstance(ferretdb_version, str):
        if sqlite_directory is not None:
            log.warning("FERRETDB_SQLITE_DIRECTORY is set but the server is not FerretDB: its files are not read")
        return MongoDB()
    if sqlite_directory is None:
        return FerretDB(ferretdb_version)
    return FerretDBSQLite(ferretdb_version, sqlite_directory)


__all__ = ["FerretDB", "FerretDBSQLite", "MongoDB", "recognise"]
