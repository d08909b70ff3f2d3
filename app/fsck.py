"""`python -m app.fsck`: list what crashes left inconsistent between the database and the storage.

    python -m app.fsck [--repair] [--grace-seconds 3600]

Reads the service's own settings from the environment (MONGODB_*, UPLOADS_DIRECTORY or S3_*).
Prints one line per finding and a summary; `--repair` deletes orphan files, leftover temporary
files, stale resized copies, expired leases and kept files no snapshot holds (never a document,
never a file a snapshot holds), releases the holds of deleted snapshots, copies missing kept
files again where an image still has their bytes, and finishes interrupted replacements.
Exit status: 0 when nothing is left to fix, 1 when something is (missing files,
or findings without --repair), 2 when the database or the storage cannot be reached or the
settings are unusable.
See app/domain/writes/repair.py for what each check means and why it is safe next to a running service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from app.config import ConfigError, Settings, database_configured, load_settings, use_recorded_address
from app.domain.datasets import kept_repair
from app.domain.datasets.kept import KeptBytes
from app.domain.writes import repair
from app.domain.writes.leases import Leases
from app.errors import ServiceError, Unavailable
from app.metrics import Metrics
from app.services import connect_store
from app.storage import build_storage


async def run(settings: Settings, *, repair_all: bool, grace: timedelta) -> int:
    metrics = Metrics()
    storage = build_storage(settings, metrics)
    store = connect_store(settings, metrics)
    leases = Leases(store=store.leases)
    counts: Counter[str] = Counter()
    unresolved = 0
    try:
        # An unreachable database is said first, and plainly.
        if not await store.ping(timeout=settings.mongodb_timeout_ms / 1000):
            raise Unavailable("the database is unreachable.")
        await store.open()
        if not store.initialised:
            raise Unavailable("the database is unreachable.")
        findings = repair.check(
            store=store,
            storage=storage,
            leases=leases,
            grace=grace,
            repair=repair_all,
        )
        kept = KeptBytes(store=store, storage=storage, leases=leases)
        kept_findings = kept_repair.check(kept, cutoff=datetime.now(UTC) - grace, repair=repair_all)
        with store.errors():
            for found in (findings, kept_findings):
                async for finding in found:
                    state = "repaired" if finding.repaired else "found"
                    print(f"{finding.kind}\t{finding.name}\t{finding.detail}\t{state}", flush=True)
                    counts[f"{finding.kind}s {state}"] += 1
                    unresolved += not finding.repaired
    finally:
        await leases.close()  # its releases, before the connections go
        await storage.close()
        await store.close()
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "nothing to fix"
    print(f"fsck of {storage.kind} storage at {storage.location}: {summary}", file=sys.stderr)
    return 1 if unresolved else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.fsck", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repair",
        action="store_true",
        help="delete orphan, temporary and stale resized files and expired leases, finish interrupted replacements",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=3600,
        help="leave files younger than this alone: they may belong to uploads in flight (default 3600)",
    )
    arguments = parser.parse_args(argv)
    # Beside `make run` with its embedded database: that database, wherever it listens.
    use_recorded_address()
    try:
        settings = load_settings()
        return asyncio.run(
            run(settings, repair_all=arguments.repair, grace=timedelta(seconds=max(arguments.grace_seconds, 0)))
        )
    except ConfigError as error:
        hint = "" if database_configured() else " Or run it beside `make run`, which notes where its database listens."
        print(f"fsck: {error}{hint}", file=sys.stderr)
    except ServiceError as error:
        print(f"fsck: {error.detail}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
