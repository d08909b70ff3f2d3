"""The embedded default (`make run`: FerretDB on SQLite, local storage) as its collection grows.

At each size of `--sizes` the collection is first filled up to that many images (documents
planted with PyMongo as the service stores them, without files: nothing measured reads them),
then the service, its own process configured as `make run` configures it, is measured over HTTP:

- upload rate: `--images` PNGs of 100 KB at `--clients` concurrent clients;
- list with a data filter, `?label=cat&limit=100`: one image in ten matches, so the page is
  full and the service also counts every match for the total;
- list with a rare match, `filter={"data.part.number": ...}`: one image in a thousand;
- an unfiltered page sorted by time, `?sort=time&order=-1&limit=100`, with its total;
- get by id, of an image from the middle of the collection;
- `/fields`, and `/fields/label` (the values of one metadata key);
- facets: `/fields/label?counts=true` and `/facets/contentType`;
- a bulk change by filter, `PATCH /images?filter=...` of the one image in a thousand;
- a bulk delete by filter of 100 images (planted for it just before; timed once);
- per-element queries on boxes (`data.boxes`, one or two per planted image): the plain dotted
  `{"data.boxes.label": "cat"}` beside `$elemMatch` of a label and a width, and `$ne` through
  the array, both of which FerretDB answers wrongly, so the store asks it a wider filter and
  checks each document (app/store/engines/ferretdb_filters.py).

Latencies are medians of `--repeat` calls after one warm-up. Each figure is also printed as a
ratio to the same figure on the empty collection, measured in the same run.

    .venv/bin/python -m bench.bench_embedded [--sizes 0,10000,50000,100000] [--images 200]
                                             [--clients 8] [--repeat 3] [--untuned]

`--untuned` runs the service without `FERRETDB_SQLITE_DIRECTORY`, so without what it does with
FerretDB's files (app/store/engines/ferretdb_sqlite/: the `_id` index, and totals, pages and `/fields` read
in SQL): FerretDB alone. It always starts its own
FerretDB, since the embedded default is what it measures, and prints figures, never asserting.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.bench_archives import LABELS, Blob, Service, Target, image_document, noise_pngs
from bench.bench_floor import median_ms, run_clients
from scripts.servers import start_ferretdb

DATABASE = "image_storage"
PLANT_BATCH = 5000
WARM_UP = 40
DOOMED = 100  # images planted for the bulk delete at each size
# data.part.number of one image in a thousand (bench_archives.image_document)
RARE_FILTER = json.dumps({"data.part.number": "PN-0042"})
BOXES_PLAIN = json.dumps({"data.boxes.label": "cat"})
BOXES_ELEMENT = json.dumps({"data.boxes": {"$elemMatch": {"label": "cat", "w": {"$gt": 300}}}})
BOXES_NONE = json.dumps({"data.boxes.label": {"$ne": "cat"}})


def with_boxes(document: dict[str, Any], index: int) -> dict[str, Any]:
    """The planted image with one or two boxes: labels and widths varied by its index."""
    boxes = [{"label": LABELS[index % len(LABELS)], "x": 0, "y": 0, "w": index * 37 % 400, "h": 50}]
    if index % 2:
        boxes.append({"label": LABELS[(index + 3) % len(LABELS)], "x": 10, "y": 10, "w": index * 53 % 400, "h": 40})
    data = {**document["data"], "boxes": boxes}
    return {**document, "data": data, "dataKeys": sorted({*document["dataKeys"], "boxes"})}


Timed = Callable[[], Awaitable[httpx.Response]]


async def measure(arguments: argparse.Namespace, service: Service, target: Target) -> dict[int, dict[str, float]]:
    blobs = noise_pngs(20, 100 * 1024, random.Random(7))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.uri)
    images = client[target.database]["images"]
    planted = 0
    figures: dict[int, dict[str, float]] = {}
    limits = httpx.Limits(max_connections=arguments.clients)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=600, limits=limits) as http:

        async def upload(index: int) -> None:
            blob: Blob = blobs[index % len(blobs)]
            document = image_document(index, blob)
            fields = {"file": document["file"], "label": document["data"]["label"]}
            response = await http.post("/images", files={"image": ("x.png", blob.content)}, data=fields)
            response.raise_for_status()

        # Warm-up: the first requests of a process open connections and fill caches.
        await run_clients(WARM_UP, arguments.clients, upload)
        uploaded = WARM_UP
        for size in arguments.sizes:
            # Planted documents get negative indexes, uploads positive ones: no `file` twice.
            while planted + uploaded < size:
                batch = range(planted, min(planted + PLANT_BATCH, size - uploaded))
                planting = [with_boxes(image_document(-1 - index, blobs[0]), index) for index in batch]
                await images.insert_many(planting, ordered=False)
                planted += len(batch)

            seconds = await run_clients(
                arguments.images, arguments.clients, lambda index, first=uploaded: upload(first + index)
            )
            uploaded += arguments.images
            row = {"upload, images/s": arguments.images / seconds}

            if size >= 1000 and not (await http.get("/images", params={"filter": RARE_FILTER})).json()["total"]:
                raise RuntimeError("no image matches the rare filter: it would measure nothing")
            middle = (planted + uploaded) // 2
            listed = (await http.get("/images", params={"limit": 1, "skip": middle})).json()["items"][0]
            for name, call in reads(http, listed["_id"]):
                (await call()).raise_for_status()  # the warm-up, and a failing call stops the bench
                row[name] = await median_ms(call, arguments.repeat, warm_ups=0)
            doomed = [image_document(-1 - planted - index, blobs[0]) for index in range(DOOMED)]
            await images.insert_many([document | {"data": {"doomed": "yes"}} for document in doomed])
            started = time.perf_counter()
            response = await http.delete("/images", params={"doomed": "yes"})
            row["bulk delete of 100, ms"] = (time.perf_counter() - started) * 1000
            if response.json().get("deletedCount") != DOOMED:
                raise RuntimeError(f"the bulk delete missed some of the {DOOMED} images planted: {response.text}")
            figures[planted + uploaded] = row
            print(f"  measured at {planted + uploaded:,} images", flush=True)
    await client.close()
    return figures


def reads(http: httpx.AsyncClient, image_id: str) -> list[tuple[str, Timed]]:
    rare = {"filter": RARE_FILTER}
    marks = itertools.count()  # a new value each time: every call changes every match
    return [
        ("list ?label=cat (1 in 10), ms", lambda: http.get("/images", params={"label": "cat", "limit": 100})),
        ("list, 1 match in 1,000, ms", lambda: http.get("/images", params={"filter": RARE_FILTER, "limit": 100})),
        ("page sorted by time, ms", lambda: http.get("/images", params={"sort": "time", "order": -1, "limit": 100})),
        ("get by id, ms", lambda: http.get(f"/images/{image_id}")),
        ("/fields, ms", lambda: http.get("/fields")),
        ("/fields/label, ms", lambda: http.get("/fields/label")),
        ("facets of label, ms", lambda: http.get("/fields/label", params={"counts": "true"})),
        ("facets of contentType, ms", lambda: http.get("/facets/contentType")),
        ("bulk PATCH, 1 in 1,000, ms", lambda: http.patch("/images", params=rare, json={"checked": next(marks)})),
        ("boxes: dotted label (plain), ms", lambda: http.get("/images", params={"filter": BOXES_PLAIN, "limit": 100})),
        ("boxes: $elemMatch, ms", lambda: http.get("/images", params={"filter": BOXES_ELEMENT, "limit": 100})),
        ("boxes: $ne through the array, ms", lambda: http.get("/images", params={"filter": BOXES_NONE, "limit": 100})),
    ]


def print_table(figures: dict[int, dict[str, float]]) -> None:
    sizes = list(figures)
    first = figures[sizes[0]]
    print(f"\n{'work':<32}" + "".join(f"{size:>18,}" for size in sizes))
    for name in first:
        cells = []
        for size in sizes:
            value = figures[size][name]
            cells.append(f"{value:>9.1f} ({value / first[name]:>5.2f}×)")
        print(f"{name:<32}" + "".join(f"{cell:>18}" for cell in cells))
    print(f"\n(in brackets: the figure over the same figure at {sizes[0]:,} images, measured in this run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: sorted(int(part) for part in text.split(",")),
        default=[0, 10_000, 50_000, 100_000],
        help="collection sizes to measure at, comma-separated",
    )
    parser.add_argument("--images", type=int, default=200, help="uploads measured at each size")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--untuned", action="store_true", help="without the service reading FerretDB's files")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        ferretdb = stack.enter_context(start_ferretdb(work / "ferretdb"))
        directory = None if arguments.untuned else ferretdb.state_dir
        target = Target(uri=f"{ferretdb.uri.rstrip('/')}/{DATABASE}", database=DATABASE, sqlite_directory=directory)
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log")
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        print(
            f"FerretDB/SQLite, {'without' if arguments.untuned else 'with'} the service reading its files", flush=True
        )
        figures = asyncio.run(measure(arguments, service, target))
        if service.log_tail():
            print(f"\nThe service logged:\n{service.log_tail()}")
    print_table(figures)
    if arguments.json:
        arguments.json.write_text(json.dumps({str(size): row for size, row in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
