"""`python -m app.fsck` at growing sizes: peak memory and time against the number of images.

For each size (cumulative: the same database and directory grow), as many documents as stored
files, with 0.1% of the files orphaned (no document) and 0.1% of the documents missing their
file, planted straight with PyMongo and on disk (local storage; 16-byte files, since fsck
never reads them). Then fsck runs as its own process, listing only (`--grace-seconds 0`), and
the bench prints its wall time, its peak RSS (`ru_maxrss`), the RSS ratio to the smallest
size, and whether it found exactly what was planted.

    .venv/bin/python -m bench.bench_fsck                               # 10k, 100k, 1M
    .venv/bin/python -m bench.bench_fsck --sizes 10000,100000

With `MONGODB_CONNECTION_STRING` set it uses that server (in a fresh database, dropped at the
end); otherwise a throwaway FerretDB. It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pymongo import AsyncMongoClient

from scripts.servers import REPO_ROOT, start_ferretdb

INSERT_BATCH = 5000
CONTENT = b"0123456789abcdef"
# Run as fsck's own process, so ru_maxrss is fsck's alone.
PEAK_WRAPPER = (
    "import resource, sys\n"
    "from app.fsck import main\n"
    "code = main(sys.argv[1:])\n"
    "print(f'peak_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def file_name(index: int) -> str:
    return f"batch{index // 1000:04d}/image{index:07d}.png"


async def grow(collection: Any, root: Path, start: int, end: int) -> tuple[int, int]:
    """Images start..end-1; every 1000th has no document, every 1000th (offset 500) no file."""
    orphans = missing = 0
    documents: list[dict[str, Any]] = []
    for index in range(start, end):
        name = file_name(index)
        if index % 1000 != 500:
            path = root / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(CONTENT)
        else:
            missing += 1
        if index % 1000 != 0:
            documents.append({"file": name, "userId": None, "data": {"n": index}, "size": len(CONTENT)})
        else:
            orphans += 1
        if len(documents) == INSERT_BATCH:
            await collection.insert_many(documents, ordered=False)
            documents = []
    if documents:
        await collection.insert_many(documents, ordered=False)
    return orphans, missing


def run_fsck(env: dict[str, str]) -> tuple[float, int, dict[str, int]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, "--grace-seconds", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"fsck failed ({result.returncode}):\n{result.stderr}")
    peak = next(int(line.split("=")[1]) for line in result.stderr.splitlines() if line.startswith("peak_rss_kb="))
    kinds: dict[str, int] = {}
    for line in result.stdout.splitlines():
        kind = line.split("\t")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return wall, peak, kinds


async def main(uri: str, sizes: list[int]) -> None:
    database_name = f"bench_{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    collection = client[database_name]["images"]
    await collection.create_index("file", unique=True, name="file_1")
    root = Path(tempfile.mkdtemp(prefix="bench-fsck-"))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_"))}
    database_uri = urlsplit(uri)._replace(path=f"/{database_name}").geturl()  # keeps ?authSource=…
    env |= {"MONGODB_CONNECTION_STRING": database_uri, "UPLOADS_DIRECTORY": str(root)}
    rows: list[tuple[int, float, float, str, float]] = []
    planted_orphans = planted_missing = 0
    done = 0
    try:
        for size in sorted(sizes):
            began = time.perf_counter()
            orphans, missing = await grow(collection, root, done, size)
            planted_orphans, planted_missing, done = planted_orphans + orphans, planted_missing + missing, size
            print(f"{size:>9,} images planted in {time.perf_counter() - began:.0f} s; running fsck…", file=sys.stderr)
            wall, peak_kb, kinds = run_fsck(env)
            exact = kinds == {"orphan file": planted_orphans, "missing file": planted_missing}
            peak_mb = peak_kb / 1024
            first = rows[0][2] if rows else peak_mb
            rows.append((size, wall, peak_mb, "yes" if exact else f"no: {kinds}", peak_mb / first))
            print(f"{size:>9,} images: fsck {wall:.1f} s, peak RSS {peak_mb:.1f} MB", file=sys.stderr)
    finally:
        await client.drop_database(database_name)
        await client.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'images':>10} {'fsck s':>8} {'peak RSS MB':>12} {'× smallest':>11}  found exactly the planted")
    for size, wall, peak_mb, exact, ratio in rows:
        print(f"{size:>10,} {wall:>8.1f} {peak_mb:>12.1f} {ratio:>11.2f}  {exact}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated numbers of images")
    arguments = parser.parse_args()
    chosen = [int(size) for size in arguments.sizes.split(",")]
    external = os.environ.get("MONGODB_CONNECTION_STRING")
    with ExitStack() as stack:
        if external:
            target = urlsplit(external)._replace(path="/").geturl()
        else:
            target = stack.enter_context(start_ferretdb(Path(tempfile.mkdtemp(prefix="bench-ferretdb-")))).uri
        asyncio.run(main(target, chosen))
