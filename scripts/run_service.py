"""Run the service for development (`make run`), with a local FerretDB when no database is configured.

With none of the MongoDB variables set, a FerretDB server is built if needed and started on a
free loopback port, its SQLite files under `${DATA_DIRECTORY:-data}/ferretdb` so the data
outlives the run, and its address noted there for `make fsck` (app/config.py); it is stopped
when the service stops, however that happens (Ctrl-C, SIGTERM or an error). With any of them
set, the service uses that database and nothing else is started.

The service listens on APP_HOST, loopback unless told otherwise: `make run` has no
authentication unless OIDC is configured, so it is not offered to the network by default.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

if not __package__:
    # Run as `python scripts/run_service.py`: make `scripts` and `app` importable as when run
    # as `python -m scripts.run_service` from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import database_configured, embedded_directory, forget_address, record_address
from scripts.servers import FerretDB, start_ferretdb

DATABASE = "image_storage"

# Set once uvicorn serves: from then on a SIGTERM means uvicorn's graceful stop.
_serving = False


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Python's default for SIGTERM is to die on the spot, skipping `finally` and so leaving
    # FerretDB running in its own session. Uvicorn handles SIGTERM itself while serving, but
    # after its graceful shutdown it restores this handler and raises the signal again, so
    # this also turns that re-raise into an ordinary exit that runs the cleanup: status 0,
    # the stop that was asked for, done (a SIGTERM before serving is 143, as usual).
    raise SystemExit(0 if _serving else 128 + signum)


def main() -> int:
    from app.config import ConfigError, load_settings
    from app.server import serve

    global _serving
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    ferretdb: FerretDB | None = None
    try:
        if not database_configured():
            data_dir = embedded_directory()
            ferretdb = start_ferretdb(data_dir)
            uri = f"{ferretdb.uri}{DATABASE}"
            os.environ["MONGODB_CONNECTION_STRING"] = uri
            os.environ["FERRETDB_SQLITE_DIRECTORY"] = str(data_dir)
            record_address(data_dir, uri)
            print(f"No MongoDB configured: started FerretDB at {uri} (data in {data_dir}).", flush=True)
        try:
            settings = load_settings()
        except ConfigError as error:
            print(f"Configuration error: {error}", file=sys.stderr)
            return 1
        _serving = True
        serve(settings)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        if ferretdb is not None:
            # A second Ctrl-C or SIGTERM must not cut the stop short and orphan the server;
            # stop() is bounded anyway (SIGKILL after its timeout).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            forget_address(embedded_directory())
            ferretdb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
