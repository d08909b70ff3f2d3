"""Dataset tools at scale: facets, cursor pages beside skip pages at the same depth, snapshots.

    .venv/bin/python -m bench.bench_datasets [--images 100000] [--repeat 3] [--json PATH]

Plants `--images` documents with PyMongo, shaped as the service stores them (no files: nothing
measured reads one; bench_archives.image_document, one `label` of ten), into FerretDB on SQLite
started here (the embedded default, as `make run` has it), or into `MONGODB_CONNECTION_STRING`
when set. Then, against the service as a process of its own:

- facets: `GET /fields/label?counts=true` and `GET /facets/contentType`;
- a page of 100 at depth `--images / 2`, sorted by time: by cursor (GraphQL `imagesConnection`
  with `after`, no count; REST `?after=`, which still counts the total, as the legacy shape
  has it) beside skip paging at the same depth (GraphQL `images(skip:)`, REST `?skip=`);
- the same pair in `_id` order (a cursor walk with no sort, and an unsorted skip page);
- `POST /snapshots` of every image: its time and the service's peak RSS while it runs
  (VmHWM reset at its start), beside the RSS before; and a get by id sent every 0.2 s while it
  runs, beside the same get alone (the snapshot must not block other requests).

Latencies are medians of `--repeat` calls after one warm-up. It prints figures, never asserting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.bench_archives import Blob, PhaseWatch, Service, image_document, open_target, read_status_kb

PLANT_BATCH = 5000
PAGE = 100
CONNECTION = """query($after: String, $sort: [SortInput!]) {
  imagesConnection(first: 100, after: $after, sort: $sort) { edges { node { id } } pageInfo { endCursor } }
}"""
SKIP_PAGE = """query($skip: Int!, $sort: [SortInput!]) {
  images(skip: $skip, limit: 100, sort: $sort) { total items { id } }
}"""
BY_TIME = [{"field": "time", "direction": "ASC"}]

Call = Callable[[], Awaitable[httpx.Response]]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def median_ms(call: Call, repeat: int) -> float:
    (await call()).raise_for_status()  # warm-up; a failing call stops the bench
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await call()
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        body = response.json()
        if isinstance(body, dict) and body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return statistics.median(samples) * 1000


async def plant(uri: str, database: str, count: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    images = client[database]["images"]
    blob = Blob(content=b"", width=1, height=1)
    for start in range(0, count, PLANT_BATCH):
        batch = range(start, min(start + PLANT_BATCH, count))
        await images.insert_many([image_document(index, blob) for index in batch], ordered=False)
    await client.close()


async def measure(service: Service, images: int, repeat: int) -> dict[str, Any]:
    depth = images // 2
    figures: dict[str, Any] = {"images": images, "depth": depth}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=900) as http:

        def rest(params: dict[str, Any]) -> Call:
            return lambda: http.get("/images", params=params)

        def graphql(query: str, variables: dict[str, Any]) -> Call:
            return lambda: http.post("/graphql", json={"query": query, "variables": variables})

        progress("facets")
        figures["facets /fields/label?counts=true, ms"] = await median_ms(
            lambda: http.get("/fields/label", params={"counts": "true"}), repeat
        )
        figures["facets /facets/contentType, ms"] = await median_ms(lambda: http.get("/facets/contentType"), repeat)

        progress(f"pages at depth {depth:,}")
        # The cursors at `depth`: the next-page cursors of the sorted pages just before it. A
        # cursor is bound to its filter and sort, not to the face: REST's serve GraphQL too.
        by_time = (await rest({"sort": "time", "skip": depth - PAGE, "limit": PAGE})()).json()["nextCursor"]
        by_id = (await rest({"sort": "_id", "skip": depth - PAGE, "limit": PAGE})()).json()["nextCursor"]
        pairs: list[tuple[str, Call]] = [
            (
                "by time: GraphQL imagesConnection(after), no count",
                graphql(CONNECTION, {"after": by_time, "sort": BY_TIME}),
            ),
            ("by time: GraphQL images(skip), with total", graphql(SKIP_PAGE, {"skip": depth, "sort": BY_TIME})),
            ("by time: REST ?after=, with total", rest({"sort": "time", "after": by_time, "limit": PAGE})),
            ("by time: REST ?skip=, with total", rest({"sort": "time", "skip": depth, "limit": PAGE})),
            ("by _id: REST ?after=, with total", rest({"after": by_id, "limit": PAGE})),
            ("natural order: REST ?skip= (the legacy default), with total", rest({"skip": depth, "limit": PAGE})),
        ]
        for name, call in pairs:
            figures[f"{name}, ms"] = await median_ms(call, repeat)

        progress("a snapshot of every image, and other requests meanwhile")
        some_id = (await rest({"limit": 1})()).json()["items"][0]["_id"]
        alone = await median_ms(lambda: http.get(f"/images/{some_id}"), repeat)
        rss_before = read_status_kb(service.pid, "VmRSS")["VmRSS"] / 1024
        with PhaseWatch(service.peaks) as watch:
            started = time.perf_counter()
            creating = asyncio.create_task(http.post("/snapshots", json={"name": "bench"}))
            meanwhile = []
            while not creating.done():
                asked = time.perf_counter()
                (await http.get(f"/images/{some_id}")).raise_for_status()
                meanwhile.append(time.perf_counter() - asked)
                await asyncio.sleep(0.2)
            created = await creating
            seconds = time.perf_counter() - started
        created.raise_for_status()
        assert watch.memory is not None
        figures["snapshot: images"] = created.json()["count"]
        figures["snapshot: seconds"] = seconds
        figures["snapshot: RSS before, MB"] = rss_before
        figures["snapshot: peak RSS during, MB"] = watch.memory.peak_mb
        figures["get by id alone, median ms"] = alone
        figures[f"get by id during the snapshot ({len(meanwhile)} calls), median ms"] = (
            statistics.median(meanwhile) * 1000
        )
        figures["get by id during the snapshot, slowest ms"] = max(meanwhile) * 1000
    return figures


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack: the service and FerretDB stop


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        target = open_target(stack, work / "database")
        progress(f"planting {arguments.images:,} images")
        asyncio.run(plant(target.uri, target.database, arguments.images))
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log")
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        figures = asyncio.run(measure(service, arguments.images, arguments.repeat))
    print("\n| measure | figure |\n|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:,.1f} |" if isinstance(value, float) else f"| {name} | {value:,} |")
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
