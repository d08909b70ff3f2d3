"""A process that holds leases and keeps renewing them until it is killed.

    python -m tests.utils.lease_holder URI DATABASE TTL KEY...

Each key is held by a writer of its own (`Leases.hold`, renewed every TTL/3), their takes spread
evenly over one renewal interval, so that a kill finds each at another point of its cycle. It
prints `held` once every key is held, then waits for its end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from app.domain.writes.leases import Leases
from app.store.leases import COLLECTION, LeaseStore

REPO_ROOT = Path(__file__).resolve().parents[2]


async def hold(uri: str, database: str, ttl: float, keys: list[str]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    leases = Leases(store=LeaseStore(lambda: client[database][COLLECTION]), ttl=ttl)
    await leases.prepare()
    held = asyncio.Semaphore(0)
    forever = asyncio.Event()

    async def writer(key: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with leases.hold([key]):
            held.release()
            await forever.wait()

    writers = [asyncio.create_task(writer(key, index * ttl / 3 / len(keys))) for index, key in enumerate(keys)]
    for _ in keys:
        await held.acquire()
    print("held", flush=True)
    await asyncio.gather(*writers)


@contextmanager
def holder(uri: str, database: str, ttl: float, keys: list[str]) -> Iterator[subprocess.Popen[str]]:
    """The holder of `keys`, once it holds them all; killed at the end if it still runs."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.utils.lease_holder", uri, database, str(ttl), *keys],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == "held\n", f"the lease holder did not start: {line!r}"
            yield process
        finally:
            process.kill()


if __name__ == "__main__":
    uri, database, ttl, *keys = sys.argv[1:]
    asyncio.run(hold(uri, database, float(ttl), keys))
