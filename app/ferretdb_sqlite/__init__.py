"""FerretDB's SQLite files, when the service knows where they are (`make run` starts it so).

What the wire protocol cannot do on the embedded FerretDB 1.24/SQLite, and this package does
from its files: index what FerretDB looks ids up by, and tell the operator when to move to
MongoDB (`tuning`); count matches, find pages and list `/fields` in SQL instead of having
FerretDB decode every document (`shortcuts`, with `sql` translating filters). All of it is best
effort: without it the service is correct, only slower or silent. So it fails safe: at start-up
`layout` checks that the server is FerretDB 1.24.x and that its files are laid out as `sql`
reads them, and on any mismatch nothing here reads or indexes them (one log line says why).
`files` opens them read-only, but for tuning's one index.
"""

from app.ferretdb_sqlite.shortcuts import SQLiteShortcuts
from app.ferretdb_sqlite.tuning import tune

__all__ = ["SQLiteShortcuts", "tune"]
