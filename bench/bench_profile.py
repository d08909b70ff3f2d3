"""Where a request's time goes: CPU of the service, of the database server and of the client.

The real service as its own process (uvicorn, local storage) on its own FerretDB, both started
here, so that the CPU time of each process can be read from `/proc/<pid>/stat` before and after
each piece of work. For each, per request (per image for upload, import and export):

- wall time;
- CPU milliseconds of the service process, of FerretDB, and of this client;
- the service's share of the CPU the three spent.

Work: uploads of `--images` PNGs of 100 KB at `--clients` concurrent clients; then, one after the
other, `--repeat` times each: a page with a data filter (`?label=cat&limit=100`), a page sorted
by time, get by id, `/fields`; then an export of all the images and their import into an empty
collection. With `--existing N`, N documents are planted first (without files).

    .venv/bin/python -m bench.bench_profile [--images 400] [--clients 8] [--repeat 20] [--existing 0]

Linux only (it reads /proc). It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.bench_archives import Blob, Service, Target, cpu_seconds, image_document, noise_pngs
from bench.bench_floor import run_clients
from scripts.servers import start_ferretdb

DATABASE = "image_storage"
PLANT_BATCH = 5000


@dataclass(frozen=True)
class Split:
    wall_ms: float
    service_ms: float
    database_ms: float
    client_ms: float

    @property
    def service_share(self) -> float:
        spent = self.service_ms + self.database_ms + self.client_ms
        return self.service_ms / spent if spent else 0.0


async def split(work: Callable[[], Awaitable[Any]], *, per: int, service: int, database: int) -> Split:
    """Run `work` once; its wall and CPU time per unit, `per` units in all."""
    client = os.getpid()
    before = [cpu_seconds(pid) for pid in (service, database, client)]
    started = time.perf_counter()
    await work()
    wall = time.perf_counter() - started
    after = [cpu_seconds(pid) for pid in (service, database, client)]
    used = [(end - start) * 1000 / per for start, end in zip(before, after, strict=True)]
    return Split(wall_ms=wall * 1000 / per, service_ms=used[0], database_ms=used[1], client_ms=used[2])


async def measure(
    arguments: argparse.Namespace, service: Service, target: Target, database_pid: int
) -> dict[str, Split]:
    blobs = noise_pngs(20, 100 * 1024, random.Random(7))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.uri)
    images = client[target.database]["images"]
    for start in range(0, arguments.existing, PLANT_BATCH):
        batch = range(start, min(start + PLANT_BATCH, arguments.existing))
        await images.insert_many([image_document(-1 - index, blobs[0]) for index in batch], ordered=False)
    rows: dict[str, Split] = {}
    limits = httpx.Limits(max_connections=arguments.clients)
    pids = {"service": service.pid, "database": database_pid}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=600, limits=limits) as http:

        async def upload(index: int) -> None:
            blob: Blob = blobs[index % len(blobs)]
            document = image_document(index, blob)
            fields = {"file": document["file"], "label": document["data"]["label"], "origin": "upload"}
            response = await http.post("/images", files={"image": ("x.png", blob.content)}, data=fields)
            response.raise_for_status()

        await run_clients(40, arguments.clients, lambda index: upload(100_000_000 + index))  # warm-up
        rows["upload (per image)"] = await split(
            lambda: run_clients(arguments.images, arguments.clients, upload), per=arguments.images, **pids
        )
        listed = (await http.get("/images", params={"origin": "upload", "limit": 1})).json()["items"][0]

        def repeated(params: dict[str, Any], path: str = "/images") -> Callable[[], Awaitable[None]]:
            async def calls() -> None:
                for _ in range(arguments.repeat):
                    (await http.get(path, params=params)).raise_for_status()

            return calls

        reads = {
            "list ?label=cat&limit=100": repeated({"label": "cat", "limit": 100}),
            "page sorted by time": repeated({"sort": "time", "order": -1, "limit": 100}),
            "get by id": repeated({}, f"/images/{listed['_id']}"),
            "/fields": repeated({}, "/fields"),
        }
        for name, calls in reads.items():
            await calls()  # warm-up
            rows[name] = await split(calls, per=arguments.repeat, **pids)

        archive: list[bytes] = []

        async def export() -> None:
            archive.append((await http.get("/export", params={"origin": "upload"})).content)

        rows["export (per image)"] = await split(export, per=arguments.images, **pids)
        (await http.delete("/images", params={"origin": "upload"})).raise_for_status()

        async def import_archive() -> None:
            files = {"archive": ("export.zip", archive[0], "application/zip")}
            (await http.post("/import", files=files)).raise_for_status()

        rows["import (per image)"] = await split(import_archive, per=arguments.images, **pids)
    await client.close()
    return rows


def print_table(rows: dict[str, Split]) -> None:
    print(f"\n{'work':<28}{'wall ms':>10}{'service':>10}{'database':>10}{'client':>10}{'service share':>15}")
    for name, row in rows.items():
        print(
            f"{name:<28}{row.wall_ms:>10.2f}{row.service_ms:>10.2f}{row.database_ms:>10.2f}"
            f"{row.client_ms:>10.2f}{row.service_share:>14.0%}"
        )
    print("\n(milliseconds of CPU per request, or per image where marked; 2 cores shared by all three)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--existing", type=int, default=0, help="documents planted first")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        ferretdb = stack.enter_context(start_ferretdb(work / "ferretdb"))
        target = Target(
            uri=f"{ferretdb.uri.rstrip('/')}/{DATABASE}", database=DATABASE, sqlite_directory=ferretdb.state_dir
        )
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log")
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        rows = asyncio.run(measure(arguments, service, target, ferretdb.process.pid))
        if service.log_tail():
            print(f"\nThe service logged:\n{service.log_tail()}")
    print_table(rows)


if __name__ == "__main__":
    main()
