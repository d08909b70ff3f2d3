"""The service against the floor: the same work done with raw PyMongo and plain file writes.

For each piece of work the bench measures the real service (its own process, over HTTP, local
storage) and the floor in the same run, alternately, on the same database server, and prints
the ratio service/floor:

- upload: `--images` PNGs of `--size-kb` at `--clients` concurrent clients, into an empty
  collection. Floor: write the file (beside a temporary name, then rename, as the service
  does) and `insert_one` its document.
- upload vs bare HTTP: the same uploads through bench/bare_upload.py, a bare FastAPI endpoint
  on the same uvicorn that parses the multipart body and writes the file, nothing else: what
  HTTP alone costs, beside the floor that has none.
- list with a data filter (`?label=cat&limit=100`), a time-sorted page, get by id, `/fields`:
  medians of `--repeat` calls. Floor: the find (and `count_documents` when the page is full,
  for the total it reports) or distinct a client of the database would issue for the answer.
- import: the service's own export of all the images, deleted and imported again in one
  request. Floor: one writer doing file write + `insert_one` per image.

    .venv/bin/python -m bench.bench_floor [--images 400] [--clients 8] [--size-kb 100] [--repeat 20]
                                          [--existing 50000]

With `--existing N`, N documents are planted on both sides first (no files), so every phase
runs against a collection of that size.

With `MONGODB_CONNECTION_STRING` set it uses that server (fresh databases, dropped at the end);
otherwise a throwaway FerretDB. It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from anyio import to_thread
from pymongo import AsyncMongoClient, MongoClient

from bench.bench_archives import Blob, Service, Target, image_document, image_file, noise_pngs, open_target
from scripts.servers import REPO_ROOT, free_port

LABEL = "cat"
Timed = Callable[[], Awaitable[Any]]


async def median_ms(call: Timed, repeat: int, *, warm_ups: int = 2) -> float:
    for _ in range(warm_ups):
        await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def write_file(root: Path, key: str, content: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    partial.write_bytes(content)
    os.replace(partial, path)


async def run_clients(count: int, clients: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Seconds for `count` calls of `one(index)` spread over `clients` concurrent workers."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started


async def measure(
    arguments: argparse.Namespace,
    service: Service,
    service_database: str,
    floor_target: Target,
    floor_root: Path,
    bare_url: str,
) -> list[Any]:
    blobs = noise_pngs(20, arguments.size_kb * 1024, random.Random(7))
    rows: list[Any] = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(floor_target.uri)
    floor = client[floor_target.database]["images"]
    await floor.create_index("file", unique=True, name="file_1")
    await floor.create_index([("time", 1), ("_id", 1)], name="time_1__id_1")
    await floor.create_index("dataKeys", name="dataKeys_1")
    limits = httpx.Limits(max_connections=arguments.clients)
    if arguments.existing:
        # Documents already stored (no files: nothing here reads them), on both sides alike.
        service_images = client[service_database]["images"]
        for start in range(0, arguments.existing, 5000):
            batch = range(start, min(start + 5000, arguments.existing))
            planted = [image_document(-1 - index, blobs[0]) for index in batch]
            await service_images.insert_many([dict(document) for document in planted], ordered=False)
            await floor.insert_many(planted, ordered=False)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=120, limits=limits) as http:

        async def upload(index: int, to: httpx.AsyncClient = http) -> None:
            blob: Blob = blobs[index % len(blobs)]
            document = image_document(index, blob)
            fields = {"file": document["file"], "label": document["data"]["label"], "origin": "upload"}
            response = await to.post("/images", files={"image": ("x.png", blob.content)}, data=fields)
            response.raise_for_status()

        async def floor_upload(index: int) -> None:
            blob = blobs[index % len(blobs)]
            await to_thread.run_sync(write_file, floor_root, image_file(index), blob.content)
            await floor.insert_one(image_document(index, blob))

        images = arguments.images
        service_s = await run_clients(images, arguments.clients, upload)
        floor_s = await run_clients(images, arguments.clients, floor_upload)
        rows.append(("upload, images/s", images / service_s, images / floor_s, service_s / floor_s))
        async with httpx.AsyncClient(base_url=bare_url, timeout=120, limits=limits) as bare:
            bare_s = await run_clients(images, arguments.clients, lambda index: upload(index, bare))
        rows.append(("upload vs bare HTTP, images/s", images / service_s, images / bare_s, service_s / bare_s))

        # An image from the middle of the collection: FerretDB finds one by `_id` by reading the
        # collection in order until it meets it, so the first image would flatter both sides.
        middle = (arguments.existing + images) // 2
        listed = (await http.get("/images", params={"limit": 1, "skip": middle})).json()["items"][0]
        floor_id = (await floor.find({}, {"_id": 1}, skip=middle, limit=1).to_list(None))[0]["_id"]

        async def floor_page(condition: dict[str, Any], sort: list[tuple[str, int]] | None) -> None:
            # What a page needs: its documents, and the count of all matches unless the page
            # is the last one (then it tells the total itself).
            items = await floor.find(condition, sort=sort, limit=100).to_list(None)
            if len(items) == 100:
                await floor.count_documents(condition)

        reads: list[tuple[str, Timed, Timed]] = [
            (
                "list ?label=cat&limit=100, ms",
                lambda: http.get("/images", params={"label": LABEL, "limit": 100}),
                lambda: floor_page({"data.label": LABEL}, None),
            ),
            (
                "page sorted by time, ms",
                lambda: http.get("/images", params={"sort": "time", "order": -1, "limit": 100}),
                lambda: floor_page({}, [("time", -1), ("_id", -1)]),
            ),
            (
                "get by id, ms",
                lambda: http.get(f"/images/{listed['_id']}"),
                lambda: floor.find_one({"_id": floor_id}),
            ),
            ("/fields, ms", lambda: http.get("/fields"), lambda: floor.distinct("dataKeys", {})),
        ]
        for name, service_call, floor_call in reads:
            service_ms = await median_ms(service_call, arguments.repeat)
            floor_ms = await median_ms(floor_call, arguments.repeat)
            rows.append((name, service_ms, floor_ms, service_ms / floor_ms))

        # The uploaded images only: a bulk delete of a large collection is slow on FerretDB.
        archive = (await http.get("/export", params={"origin": "upload"})).content
        (await http.delete("/images", params={"origin": "upload"})).raise_for_status()
        started = time.perf_counter()
        response = await http.post("/import", files={"archive": ("export.zip", archive, "application/zip")})
        response.raise_for_status()
        service_s = time.perf_counter() - started
        # The uploaded ones only (planted documents have negative indexes). Not everything at
        # once either: FerretDB/SQLite fails a delete of more than 32,766 documents.
        await floor.delete_many({"data.index": {"$gte": 0}})
        shutil.rmtree(floor_root, ignore_errors=True)
        floor_s = await run_clients(images, 1, floor_upload)
        rows.append(("import, images/s", images / service_s, images / floor_s, service_s / floor_s))
    await client.drop_database(floor_target.database)
    await client.close()
    return rows


def start_bare_upload(stack: ExitStack, work: Path) -> str:
    """bench/bare_upload.py on the service's uvicorn, stopped by `stack`; its base URL."""
    port = free_port()
    env = os.environ | {"BARE_UPLOAD_ROOT": str(work / "bare")}
    command = [sys.executable, "-m", "uvicorn", "bench.bare_upload:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    stack.callback(process.wait, 30)
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/openapi.json").raise_for_status()
            return url
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the bare upload endpoint did not start") from None
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--existing", type=int, default=0, help="documents already stored before the uploads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        target = open_target(stack, work / "ferretdb")
        floor_name = f"{target.database}_floor"
        floor_target = Target(uri=target.uri.replace(target.database, floor_name), database=floor_name)
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log")
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        bare_url = start_bare_upload(stack, work)
        rows = asyncio.run(measure(arguments, service, target.database, floor_target, work / "floor", bare_url))
        MongoClient(target.uri).drop_database(target.database)
    print(f"\n{'work':<32} {'service':>10} {'floor':>10} {'service cost':>13}")
    for name, service_value, floor_value, cost in rows:
        print(f"{name:<32} {service_value:>10.1f} {floor_value:>10.1f} {cost:>12.2f}×")
    print("\n(service cost: how many times the floor's time the service takes; 1.00× is the floor)")
    if arguments.json:
        keys = ("work", "service", "floor", "service_cost")
        arguments.json.write_text(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))


if __name__ == "__main__":
    main()
