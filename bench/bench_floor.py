"""The service against the floor: the same work done with raw PyMongo and plain file writes.

For each piece of work the bench measures the real service (its own process, over HTTP, local
storage) and the floor in the same run, alternately, on the same database server, and prints
the ratio service/floor:

- upload: `--images` JPEGs (`--format png`: PNGs) of `--size-kb` at `--clients` keep-alive
  clients, in `--rounds` rounds, each side in turn (the order reversed every other round), after
  an uncounted warm-up of each. Beside the service (run as the container runs it, `python -m
  app.server`): bench/bare_upload.py, the reference endpoint (plain Starlette on the uvicorn
  options of app/server.py's `serve`: parse the form, write the file, `insert_one` its document
  into the same database), the same endpoint without the insert, and the floor (write the file
  beside a temporary name and rename it, as the service does, and `insert_one` its document; no
  HTTP). For each: images/s, the service's time over its time, CPU per image of the process that
  does the work, of the database and of this client, and the peak RSS of its process over the
  upload rounds (VmHWM, reset at the start of each round).
- list with a data filter (`?label=cat&limit=100`), a time-sorted page, get by id, `/fields`:
  medians of `--repeat` calls. Floor: the find (and `count_documents` when the page is full,
  for the total it reports) or distinct a client of the database would issue for the answer.
- import: the service's own export of all the uploaded images, deleted and imported again in
  one request. Floor: one writer doing file write + `insert_one` per image.

    .venv/bin/python -m bench.bench_floor [--images 400] [--rounds 3] [--clients 8] [--size-kb 100]
                                          [--format jpeg] [--repeat 20] [--existing 50000]
                                          [--baseline REV]

With `--baseline REV`, that revision's service (a worktree of this repository, its own database
on the same server) uploads too, as one more side of each round: the upload before and after a
change, against one bare endpoint in one run.

With `--existing N`, N documents are planted on every side first (no files), so every phase
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
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from anyio import to_thread
from pymongo import AsyncMongoClient, IndexModel, MongoClient
from pymongo.asynchronous.collection import AsyncCollection

from bench.bare_upload import write_file
from bench.bench_archives import (
    FOLDERS,
    LABELS,
    Blob,
    Document,
    Service,
    Target,
    cpu_seconds,
    describe_server,
    image_document,
    noise_jpeg,
    noise_pngs,
    open_target,
    progress,
    read_status_kb,
    reset_peak,
)
from bench.bench_export import check_out, git
from scripts.servers import REPO_ROOT, free_port

LABEL = "cat"
Timed = Callable[[], Awaitable[Any]]
# (extension, content type) of each format the uploads can take.
FORMATS = {"jpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png")}
# Indexes of the warm-up uploads, far from the counted ones (0 up) and the planted ones (below 0).
WARM_UP_START = 1_000_000_000
BARE_COLLECTION = "bare_images"
# The goals of issue 23 for the upload, printed beside the figures.
GOAL_COST = 1.5
GOAL_PEAK_MB = 125.0


async def median_ms(call: Timed, repeat: int, *, warm_ups: int = 2) -> float:
    for _ in range(warm_ups):
        await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def run_clients(count: int, clients: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Seconds for `count` calls of `one(index)` spread over `clients` concurrent workers."""
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - started


# -- uploads -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Images:
    """The distinct images the uploads send in turn, and where image `index` goes."""

    blobs: list[Blob]
    extension: str
    content_type: str

    def blob(self, index: int) -> Blob:
        return self.blobs[index % len(self.blobs)]

    def path(self, index: int) -> str:
        return f"set{index % FOLDERS}/img{index}.{self.extension}"

    def document(self, index: int) -> Document:
        """The floor's document of image `index`, as the service stores it."""
        return image_document(index, self.blob(index)) | {"file": self.path(index), "contentType": self.content_type}


def make_images(kind: str, size_kb: int, count: int = 20) -> Images:
    rng = random.Random(7)
    extension, content_type = FORMATS[kind]
    if kind == "png":
        blobs = noise_pngs(count, size_kb * 1024, rng)
    else:
        blobs = []
        for _ in range(count):
            content, side = noise_jpeg(size_kb * 1024, rng)
            blobs.append(Blob(content=content, width=side, height=side))
    return Images(blobs=blobs, extension=extension, content_type=content_type)


@dataclass(kw_only=True)
class UploadSide:
    """One way of storing the uploads, and what its rounds measured."""

    name: str
    # Stores image `index`, with `origin` in its metadata.
    store: Callable[[int, str], Awaitable[None]] = field(repr=False)
    pid: int | None  # the process doing the work; None: this one (the floor)
    ready_rss_mb: float | None = None  # before the warm-up
    idle_rss_mb: float | None = None  # after it, before the rounds
    seconds: list[float] = field(default_factory=list)
    images: int = 0
    cpu_s: float = 0.0
    database_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.images / sum(self.seconds)

    def per_image_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.images

    def figures(self, *, database_measured: bool) -> dict[str, Any]:
        return {
            "side": self.name,
            "images": self.images,
            "images_per_s": self.rate,
            "round_seconds": self.seconds,
            "cpu_ms_per_image": self.per_image_ms(self.cpu_s),
            "database_cpu_ms_per_image": self.per_image_ms(self.database_cpu_s) if database_measured else None,
            "client_cpu_ms_per_image": self.per_image_ms(self.client_cpu_s) if self.pid is not None else None,
            "ready_rss_mb": self.ready_rss_mb,
            "idle_rss_mb": self.idle_rss_mb,
            "peak_rss_mb": self.peak_rss_mb,
        }


async def upload_round(side: UploadSide, start: int, count: int, clients: int, database_pid: int | None) -> None:
    """Images `start`.. `start + count - 1` stored through `side`, timed, with the CPU time
    and the peak RSS of the processes involved."""
    own = os.getpid()
    pids = [side.pid or own, database_pid, own]
    if side.pid is not None:
        reset_peak(side.pid)
    before = [cpu_seconds(pid) if pid else 0.0 for pid in pids]
    seconds = await run_clients(count, clients, lambda index: side.store(start + index, "upload"))
    after = [cpu_seconds(pid) if pid else 0.0 for pid in pids]
    side.seconds.append(seconds)
    side.images += count
    used = [end - begin for begin, end in zip(before, after, strict=True)]
    side.cpu_s += used[0]
    side.database_cpu_s += used[1]
    side.client_cpu_s += used[2] if side.pid is not None else 0.0
    if side.pid is not None:
        peak = read_status_kb(side.pid, "VmHWM")["VmHWM"] / 1024
        side.peak_rss_mb = max(side.peak_rss_mb or 0.0, peak)


async def warm_up(side: UploadSide, count: int, clients: int) -> None:
    """Uncounted uploads, with `origin` "warm-up": the first requests of a process pay for
    imports, pools and caches."""

    async def one(index: int) -> None:
        await side.store(WARM_UP_START + index, "warm-up")

    await run_clients(count, clients, one)


def rss_mb(pid: int) -> float:
    return read_status_kb(pid, "VmRSS")["VmRSS"] / 1024


async def copy_indexes(source: AsyncCollection[Document], destination: AsyncCollection[Document]) -> list[str]:
    """Give `destination` the indexes `source` has (keys, uniqueness); their names."""
    models = [
        IndexModel(list(spec["key"]), name=name, unique=bool(spec.get("unique", False)))
        for name, spec in (await source.index_information()).items()
        if name != "_id_"
    ]
    if models:
        await destination.create_indexes(models)
    return [model.document["name"] for model in models]


async def measure(
    arguments: argparse.Namespace,
    service: Service,
    target: Target,
    floor_target: Target,
    floor_root: Path,
    bare: BareUpload,
    images: Images,
    baseline: tuple[str, Service] | None = None,
) -> tuple[list[UploadSide], list[Any]]:
    rows: list[Any] = []
    client: AsyncMongoClient[Document] = AsyncMongoClient(target.uri)
    service_images = client[target.database]["images"]
    floor = client[floor_target.database]["images"]
    await floor.create_index("file", unique=True, name="file_1")
    await floor.create_index([("time", 1), ("_id", 1)], name="time_1__id_1")
    await floor.create_index("dataKeys", name="dataKeys_1")
    # The bare endpoint's documents go beside the service's, indexed as the service's are.
    bare_images = client[target.database][BARE_COLLECTION]
    indexes = await copy_indexes(service_images, bare_images)
    progress(f"the bare endpoint's collection has the service's indexes: {', '.join(indexes) or 'none'}")
    if arguments.existing:
        # Documents already stored (no files: nothing here reads them), on every side alike.
        for start in range(0, arguments.existing, 5000):
            batch = range(start, min(start + 5000, arguments.existing))
            planted = [image_document(-1 - index, images.blobs[0]) for index in batch]
            for collection in (service_images, bare_images, floor):
                await collection.insert_many([dict(document) for document in planted], ordered=False)
    limits = httpx.Limits(max_connections=arguments.clients, max_keepalive_connections=arguments.clients)
    async with (
        httpx.AsyncClient(base_url=service.base_url, timeout=120, limits=limits) as http,
        httpx.AsyncClient(base_url=bare.url, timeout=120, limits=limits) as bare_http,
        httpx.AsyncClient(
            base_url=baseline[1].base_url if baseline else service.base_url, timeout=120, limits=limits
        ) as baseline_http,
    ):

        def poster(to: httpx.AsyncClient, route: str, prefix: str = "") -> Callable[[int, str], Awaitable[None]]:
            async def post(index: int, origin: str) -> None:
                fields = {"file": prefix + images.path(index), "label": LABELS[index % len(LABELS)], "origin": origin}
                part = (f"x.{images.extension}", images.blob(index).content, images.content_type)
                response = await to.post(route, files={"image": part}, data=fields)
                response.raise_for_status()

            return post

        async def floor_upload(index: int, origin: str = "upload") -> None:
            # No `origin` in the floor's documents: they are told apart by `data.index`.
            await to_thread.run_sync(write_file, floor_root, images.path(index), images.blob(index).content)
            await floor.insert_one(images.document(index))

        sides = [
            UploadSide(name="service", store=poster(http, "/images"), pid=service.pid),
            UploadSide(name="bare endpoint", store=poster(bare_http, "/images"), pid=bare.pid),
            UploadSide(name="bare, no insert", store=poster(bare_http, "/files", "files/"), pid=bare.pid),
            UploadSide(name="floor (no HTTP)", store=floor_upload, pid=None),
        ]
        if baseline is not None:
            revision, baseline_service = baseline
            sides.append(
                UploadSide(
                    name=f"baseline {revision}", store=poster(baseline_http, "/images"), pid=baseline_service.pid
                )
            )
        for side in sides:
            side.ready_rss_mb = rss_mb(side.pid) if side.pid is not None else None
        for side in sides:
            await warm_up(side, arguments.warm_up, arguments.clients)
        (await http.delete("/images", params={"origin": "warm-up"})).raise_for_status()
        if baseline is not None:
            (await baseline_http.delete("/images", params={"origin": "warm-up"})).raise_for_status()
        await bare_images.delete_many({"data.origin": "warm-up"})
        await floor.delete_many({"data.index": {"$gte": WARM_UP_START}})
        for side in sides:
            side.idle_rss_mb = rss_mb(side.pid) if side.pid is not None else None
        count = arguments.images
        for round_number in range(arguments.rounds):
            for side in sides if round_number % 2 == 0 else sides[::-1]:
                await upload_round(side, round_number * count, count, arguments.clients, target.server_pid)
                progress(f"round {round_number + 1}, {side.name}: {count / side.seconds[-1]:.1f} images/s")
        service_side, bare_side, _, floor_side = sides[:4]
        uploaded = service_side.images
        service_s, floor_s, bare_s = (sum(side.seconds) for side in (service_side, floor_side, bare_side))
        rows.append(("upload, images/s", service_side.rate, floor_side.rate, service_s / floor_s))
        rows.append(("upload vs bare endpoint, images/s", service_side.rate, bare_side.rate, service_s / bare_s))

        # An image from the middle of the collection: FerretDB finds one by `_id` by reading the
        # collection in order until it meets it, so the first image would flatter both sides.
        middle = (arguments.existing + uploaded) // 2
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
        floor_s = await run_clients(uploaded, 1, floor_upload)
        rows.append(("import, images/s", uploaded / service_s, uploaded / floor_s, service_s / floor_s))
    await client.drop_database(floor_target.database)
    await client.close()
    return sides, rows


@dataclass(frozen=True, kw_only=True)
class BareUpload:
    url: str
    pid: int


def start_bare_upload(stack: ExitStack, work: Path, target: Target) -> BareUpload:
    """bench/bare_upload.py served as the service is, into the service's database; stopped by `stack`."""
    port = free_port()
    env = os.environ | {
        "BARE_UPLOAD_ROOT": str(work / "bare"),
        "BARE_UPLOAD_MONGODB": target.uri,
        "BARE_UPLOAD_COLLECTION": BARE_COLLECTION,
        "BARE_UPLOAD_PORT": str(port),
    }
    with (work / "bare.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_upload"],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack.callback(process.wait, 30)
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url)  # any answer (404 here) means it serves
            return BareUpload(url=url, pid=process.pid)
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                log_text = (work / "bare.log").read_text(errors="replace")
                raise RuntimeError(f"the bare upload endpoint did not start:\n{log_text}") from None
            time.sleep(0.1)


def upload_report(
    sides: list[UploadSide], arguments: argparse.Namespace, *, images_bytes: int, database_measured: bool
) -> list[str]:
    service = sides[0]
    lines = [
        f"uploads: {arguments.rounds} rounds of {arguments.images} {arguments.format.upper()}s of "
        f"{images_bytes / 1024:.0f} KB on average, at {arguments.clients} keep-alive clients, each side in turn",
        "",
        f"{'side':<17} {'images/s':>9} {'service cost':>13} {'CPU ms/image: own':>18} {'database':>9}"
        f" {'client':>7} {'RSS MB: ready':>14} {'idle':>6} {'peak':>6}",
    ]
    for side in sides:
        cost = sum(service.seconds) / sum(side.seconds)
        client = f"{side.per_image_ms(side.client_cpu_s):.2f}" if side.pid is not None else "-"
        database = f"{side.per_image_ms(side.database_cpu_s):.2f}" if database_measured else "-"
        ready, idle, peak = (
            f"{value:.1f}" if value is not None else "-"
            for value in (side.ready_rss_mb, side.idle_rss_mb, side.peak_rss_mb)
        )
        lines.append(
            f"{side.name:<17} {side.rate:>9.1f} {cost:>12.2f}× {side.per_image_ms(side.cpu_s):>18.2f}"
            f" {database:>9} {client:>7} {ready:>14} {idle:>6} {peak:>6}"
        )
    bare = sides[1]
    paired = [service_s / bare_s for service_s, bare_s in zip(service.seconds, bare.seconds, strict=True)]
    lines += [
        "",
        f"service/bare endpoint: {sum(service.seconds) / sum(bare.seconds):.2f}× the time (bare rate / service"
        f" rate; goal ≤ {GOAL_COST}×), by round: {', '.join(f'{ratio:.2f}×' for ratio in paired)}",
        f"service peak RSS over the upload rounds: {service.peak_rss_mb:.1f} MB (goal ≤ {GOAL_PEAK_MB:.0f} MB);"
        f" the bare endpoint's: {bare.peak_rss_mb:.1f} MB",
        *[
            f"{side.name}/bare endpoint: {sum(side.seconds) / sum(bare.seconds):.2f}× the time, by round: "
            + ", ".join(f"{side_s / bare_s:.2f}×" for side_s, bare_s in zip(side.seconds, bare.seconds, strict=True))
            + f"; peak RSS {side.peak_rss_mb:.1f} MB"
            for side in sides[4:]
        ],
        "(service cost: the service's upload time over the side's. CPU from /proc/<pid>/stat, 10 ms ticks:"
        " own = the process doing the work (the floor's is this bench), database = FerretDB when started here,"
        " client = this bench. RSS: ready = before the warm-up, idle = after it; peak = VmHWM reset at the"
        " start of each round, the largest at its end. Both bare rows are one process.)",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="uploads per side in each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=50, help="uncounted uploads per side first")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--format", choices=sorted(FORMATS), default="jpeg")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--existing", type=int, default=0, help="documents already stored before the uploads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--baseline", metavar="REV", help="also upload through this revision's service")
    arguments = parser.parse_args()
    if arguments.baseline:
        try:
            arguments.baseline = git("rev-parse", "--short", f"{arguments.baseline}^{{commit}}")
        except RuntimeError as error:
            parser.error(f"--baseline {arguments.baseline}: {error}")
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        target = open_target(stack, work / "ferretdb")
        sync_client: MongoClient[Document] = MongoClient(target.uri)
        stack.callback(sync_client.close)
        server = describe_server(sync_client)
        floor_name = f"{target.database}_floor"
        floor_target = Target(uri=target.uri.replace(target.database, floor_name), database=floor_name)
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log", served=True)
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        bare = start_bare_upload(stack, work, target)
        baseline = None
        if arguments.baseline:
            check_out(stack, arguments.baseline, work / "baseline")
            name = f"{target.database}_baseline"
            baseline_target = replace(target, uri=target.uri.replace(target.database, name), database=name)
            stack.callback(sync_client.drop_database, name)
            baseline_service = Service(
                target=baseline_target,
                uploads=work / "baseline-uploads",
                log_path=work / "baseline.log",
                served=True,
                root=work / "baseline",
            )
            stack.callback(baseline_service.stop)
            with httpx.Client(base_url=baseline_service.base_url) as http:
                baseline_service.wait_until_ready(http)
            baseline = (arguments.baseline, baseline_service)
        images = make_images(arguments.format, arguments.size_kb)
        sides, rows = asyncio.run(
            measure(arguments, service, target, floor_target, work / "floor", bare, images, baseline)
        )
        sync_client.drop_database(target.database)
    load_after = os.getloadavg()
    average_bytes = statistics.mean(len(blob.content) for blob in images.blobs)
    print(f"\n{server}; load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end\n")
    database_measured = target.server_pid is not None
    report_lines = upload_report(sides, arguments, images_bytes=int(average_bytes), database_measured=database_measured)
    print("\n".join(report_lines))
    print(f"\n{'work':<34} {'service':>10} {'floor':>10} {'service cost':>13}")
    for name, service_value, floor_value, cost in rows:
        print(f"{name:<34} {service_value:>10.1f} {floor_value:>10.1f} {cost:>12.2f}×")
    print("\n(service cost: how many times the floor's time the service takes; 1.00× is the floor)")
    if arguments.json:
        keys = ("work", "service", "floor", "service_cost")
        report = {
            "server": server,
            "load_average": [load_before[0], load_after[0]],
            "arguments": {name: str(value) for name, value in vars(arguments).items()},
            "uploads": [side.figures(database_measured=database_measured) for side in sides],
            "rows": [dict(zip(keys, row, strict=True)) for row in rows],
        }
        arguments.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
