"""The embedded database `make run` starts, and the note it leaves so that tools beside it
(`make fsck`) find it.

Its FerretDB listens on a free port chosen at start, so nothing else could know where it is.
While it runs, `${DATA_DIRECTORY:-data}/ferretdb/address.json` holds its URI and its SQLite
directory; the file goes when it stops. A `kill -9` of `make run` leaves it behind, pointing at
a port nothing answers: a tool then says it cannot reach the database, and the next `make run`
writes it anew.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Any of these set means a database is configured and nothing is embedded.
MONGODB_VARIABLES = ("MONGODB_CONNECTION_STRING", "MONGODB_URL", "MONGODB_HOST", "MONGODB_PORT")
ADDRESS_FILE = "address.json"


def database_configured() -> bool:
    # An empty variable counts as unset, as in the service's own settings.
    return any(os.environ.get(name) for name in MONGODB_VARIABLES)


def embedded_directory() -> Path:
    return Path(os.environ.get("DATA_DIRECTORY") or "data") / "ferretdb"


def record_address(directory: Path, uri: str) -> None:
    """Written whole (a reader never sees half of it)."""
    note = directory / ADDRESS_FILE
    staged = note.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({"uri": uri, "sqliteDirectory": str(directory.resolve()), "pid": os.getpid()}))
    staged.replace(note)


def forget_address(directory: Path) -> None:
    (directory / ADDRESS_FILE).unlink(missing_ok=True)


def use_recorded_address() -> bool:
    """Point this process's settings at the embedded database `make run` recorded, when no
    database is configured; whether it did."""
    if database_configured():
        return False
    try:
        note = json.loads((embedded_directory() / ADDRESS_FILE).read_text())
        uri, sqlite_directory = note["uri"], note["sqliteDirectory"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(uri, str) or not isinstance(sqlite_directory, str):
        return False
    os.environ["MONGODB_CONNECTION_STRING"] = uri
    os.environ["FERRETDB_SQLITE_DIRECTORY"] = sqlite_directory
    return True
