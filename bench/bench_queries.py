"""How much the service adds on top of the driver for its common read queries.

Seeds a collection with documents shaped as the service writes them, starts the real app
in-process, and times each route against the PyMongo calls that route issues, so the ratio
service/driver is the cost of routing, query compilation, validation and JSON rendering.

    .venv/bin/python -m bench.bench_queries [--documents 100000] [--repeat 30] [--json PATH]

With `MONGODB_CONNECTION_STRING` set it uses that server (in a fresh `bench_<random>`
database, dropped at the end); otherwise it starts a throwaway FerretDB. It prints figures
and never asserts on them: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from app.config import load_settings
from app.domain.images.data_keys import data_keys
from app.main import create_app
from app.models import format_time, to_stored_time
from scripts.servers import start_ferretdb

COLLECTION = "images"  # app.models.Image.Settings.name
WARMUP_CALLS = 3
PAGE_LIMIT = 100
LABELS = ("cat", "dog", "bird", "fish", "horse", "cow", "sheep", "car", "bus", "bike")
ISO_VALUES = (100, 200, 400, 800, 1600)
TIME_START = datetime(2023, 1, 1, tzinfo=UTC)
TIME_SPAN = timedelta(days=730)
# The middle tenth of the time span: with times drawn uniformly, about 10% of the documents.
RANGE_FROM = TIME_START + TIME_SPAN * 0.45
RANGE_TO = TIME_START + TIME_SPAN * 0.55
# Generous: the app builds its indexes over the seeded collection during start-up, and
# FerretDB's SQLite backend takes a while for that on 100k documents.
STARTUP_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0

Document = dict[str, Any]


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    server_uri: str  # with the bench database in its path, as the app takes it
    database: str


def open_target(stack: ExitStack) -> Target:
    """The server to run against, started here (and stopped by `stack`) when none is given."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    external = os.environ.get("MONGODB_CONNECTION_STRING")
    if external:
        # Keep the query string (authSource, tls...) and swap the database for our own.
        uri = urlsplit(external)._replace(path=f"/{name}").geturl()
        return Target(server_uri=uri, database=name)
    state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ferretdb-")))
    server = stack.enter_context(start_ferretdb(state))
    return Target(server_uri=f"{server.uri.rstrip('/')}/{name}", database=name)


async def describe_server(client: AsyncMongoClient[Document]) -> tuple[str, bool]:
    """A label such as `FerretDB v1.24.2` or `MongoDB 7.0.14`, and whether it is FerretDB."""
    info = await client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return f"FerretDB {info['ferretdbVersion']}", True
    return f"MongoDB {info.get('version', '?')}", False


# -- seeding -----------------------------------------------------------------------------------


def seed_documents(count: int, rng: random.Random) -> Iterator[Document]:
    """Documents as `Uploads.upload` stores them (no `_id`: the driver adds one)."""
    span_ms = int(TIME_SPAN.total_seconds() * 1000)
    for i in range(count):
        data = {
            "label": LABELS[i % len(LABELS)],
            "part_number": f"PN-{i % 1000:04d}",
            "count": i % 50,
            "camera": {"iso": ISO_VALUES[i % len(ISO_VALUES)]},
        }
        yield {
            "file": f"folder{i % 100}/img{i}.jpg",
            # Drawn at random rather than rising with i, so `time` order is not `_id` order
            # and a time range is not one contiguous run of the collection.
            "time": to_stored_time(TIME_START + timedelta(milliseconds=rng.randrange(span_ms))),
            "data": data,
            "dataKeys": data_keys(data),
            "userId": None,
            "size": 100_000,
            "contentType": "image/jpeg",
            "width": 640,
            "height": 480,
        }


async def seed(collection: AsyncCollection[Document], count: int, batch_size: int) -> float:
    """Insert `count` documents; the seconds it took."""
    started = time.perf_counter()
    batch: list[Document] = []
    for document in seed_documents(count, random.Random(20231101)):
        batch.append(document)
        if len(batch) == batch_size:
            # Unordered: nothing depends on insertion order, and the server may then skip
            # the one-by-one bookkeeping an ordered batch needs to stop at the first error.
            await collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await collection.insert_many(batch, ordered=False)
    return time.perf_counter() - started


# -- the app -----------------------------------------------------------------------------------


@asynccontextmanager
async def running_app(target: Target, uploads: Path, log_level: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, started in-process, and an HTTP client talking to it through ASGI."""
    settings = load_settings(
        mongodb_connection_string=target.server_uri,
        uploads_directory=uploads,
        # Whatever the shell exports, measure the same path: local storage, no auth, no scope.
        s3_bucket=None,
        oidc_jwks_uri=None,
        image_scope=None,
        # At INFO the access log writes a line per request, drowning the table in stderr;
        # `--app-log-level INFO` measures with it. (Ignored by a settings model without it.)
        log_level=log_level,
    )
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=STARTUP_TIMEOUT_S, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench") as http,
    ):
        await wait_until_ready(http, app)
        yield http


async def wait_until_ready(http: httpx.AsyncClient, app: FastAPI) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        response = await http.get("/")
        if response.status_code == 200 and response.json()["mongodb"]["connected"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"The app did not report MongoDB connected: {response.status_code} {response.text}")
        await asyncio.sleep(0.2)
    # The app starts its maintenance (the dataKeys backfill) in the background once connected.
    # It finds nothing here, but its query is a full scan on FerretDB that would overlap the
    # first measurements; so wait for it. A private attribute: if it disappears, don't wait.
    background: set[asyncio.Task[None]] = getattr(app.state.services.store.database, "_background", set())
    await asyncio.wait_for(asyncio.gather(*background, return_exceptions=True), STARTUP_TIMEOUT_S)


# -- measuring ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Result:
    query: str
    service_url: str
    driver_calls: str
    matches: int | None = None  # what the driver counted (None for /fields)
    service_ms: list[float] = field(default_factory=list)
    driver_ms: list[float] = field(default_factory=list)
    service_error: str | None = None  # the service's answer, verbatim, when it was not a 200
    same_answer: bool | None = None  # service and driver returned the same documents

    def summary(self) -> dict[str, Any]:
        service = _median(self.service_ms)
        driver = _median(self.driver_ms)
        return {
            "query": self.query,
            "service_url": self.service_url,
            "driver_calls": self.driver_calls,
            "matches": self.matches,
            "service_median_ms": service,
            "service_p90_ms": _p90(self.service_ms),
            "driver_median_ms": driver,
            "driver_p90_ms": _p90(self.driver_ms),
            "ratio": service / driver if service is not None and driver else None,
            "same_answer": self.same_answer,
            "service_error": self.service_error,
        }


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _p90(samples: list[float]) -> float | None:
    if len(samples) < 2:
        return samples[0] if samples else None
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await call()
    return (time.perf_counter() - started) * 1000, value


async def measure(
    result: Result,
    http: httpx.AsyncClient,
    driver_call: Callable[[], Awaitable[Any]],
    same: Callable[[Any, Any], bool],
    repeat: int,
) -> Result:
    """Warm up both sides, then time them alternately, so drift (caches, other load on the
    machine) hits both alike instead of whichever ran second."""

    async def service_call() -> httpx.Response:
        return await http.get(result.service_url)

    # On FerretDB every call can take seconds, so show where a long run is.
    print(f"  {result.query} ...", file=sys.stderr, flush=True)

    for _ in range(WARMUP_CALLS):
        response = await service_call()
        if response.status_code != 200:
            result.service_error = f"HTTP {response.status_code}: {response.text}"
        driver_answer = await driver_call()
    if result.service_error is None:
        result.same_answer = same(response.json(), driver_answer)

    for _ in range(repeat):
        if result.service_error is None:
            elapsed, response = await timed(service_call)
            if response.status_code != 200:
                result.service_error = f"HTTP {response.status_code}: {response.text}"
            else:
                result.service_ms.append(elapsed)
        elapsed, _ = await timed(driver_call)
        result.driver_ms.append(elapsed)
    # A long run may be cut short: each figure is out as soon as it exists.
    summary = result.summary()
    print(
        f"    service median {_ms(summary['service_median_ms'])} ms, "
        f"driver median {_ms(summary['driver_median_ms'])} ms",
        file=sys.stderr,
        flush=True,
    )
    return result


def same_page(service: Mapping[str, Any], driver: tuple[int, list[Document]]) -> bool:
    total, documents = driver
    return service["total"] == total and [item["_id"] for item in service["items"]] == [
        str(document["_id"]) for document in documents
    ]


async def run_queries(collection: AsyncCollection[Document], http: httpx.AsyncClient, repeat: int) -> list[Result]:
    """Each route, and the calls `Listing.find` / `Analytics.fields` make for it (see
    app/domain/query.py `parse_query_params`: filter, sort with the `_id` tie-break, skip 0,
    no projection)."""

    def page(condition: Document, sort: list[tuple[str, int]]) -> Callable[[], Awaitable[tuple[int, list[Document]]]]:
        async def call() -> tuple[int, list[Document]]:
            total = await collection.count_documents(condition)
            items = await collection.find(condition, None, sort=sort, skip=0, limit=PAGE_LIMIT).to_list(None)
            return total, items

        return call

    label_filter: Document = {"data.label": {"$in": ["cat"]}}
    label_sort = [("_id", 1)]
    # The service parses `from`/`to` into millisecond UTC datetimes; the driver gets the same.
    time_from, time_to = to_stored_time(RANGE_FROM), to_stored_time(RANGE_TO)
    time_filter: Document = {"time": {"$gte": time_from, "$lte": time_to}}
    time_sort = [("time", -1), ("_id", -1)]
    time_url = f"/images?limit={PAGE_LIMIT}&from={format_time(time_from)}&to={format_time(time_to)}&sort=time&order=-1"

    async def distinct_keys() -> list[Any]:
        return await collection.distinct("dataKeys", {})

    results = [
        await measure(
            Result(
                query="label=cat (data filter)",
                service_url=f"/images?limit={PAGE_LIMIT}&label=cat",
                driver_calls=f"count_documents({label_filter}) + find(sort={label_sort}, limit={PAGE_LIMIT})",
            ),
            http,
            page(label_filter, label_sort),
            same_page,
            repeat,
        ),
        await measure(
            Result(
                query="time range, sort time desc",
                service_url=time_url,
                driver_calls=f"count_documents(time $gte/$lte) + find(sort={time_sort}, limit={PAGE_LIMIT})",
            ),
            http,
            page(time_filter, time_sort),
            same_page,
            repeat,
        ),
        await measure(
            Result(query="GET /fields", service_url="/fields", driver_calls="distinct('dataKeys', {})"),
            http,
            distinct_keys,
            lambda service, driver: service == sorted(key for key in driver if isinstance(key, str)),
            repeat,
        ),
    ]
    results[0].matches = await collection.count_documents(label_filter)
    results[1].matches = await collection.count_documents(time_filter)
    return results


async def explain_time_range(database: AsyncDatabase[Document]) -> Document:
    """Which stages MongoDB's winning plan uses for the time-range page."""
    time_from, time_to = to_stored_time(RANGE_FROM), to_stored_time(RANGE_TO)
    command = {
        "find": COLLECTION,
        "filter": {"time": {"$gte": time_from, "$lte": time_to}},
        "sort": {"time": -1, "_id": -1},
        "limit": PAGE_LIMIT,
    }
    explained = await database.command({"explain": command, "verbosity": "queryPlanner"})
    stages: list[str] = []
    indexes: list[str] = []
    _collect_stages(explained.get("queryPlanner", {}).get("winningPlan", {}), stages, indexes)
    return {"stages": stages, "indexes": indexes, "ixscan": "IXSCAN" in stages}


def _collect_stages(node: Any, stages: list[str], indexes: list[str]) -> None:
    # Plans nest differently across versions (inputStage, inputStages, queryPlan under SBE),
    # so walk every value rather than a known path.
    if isinstance(node, Mapping):
        if isinstance(node.get("stage"), str):
            stages.append(node["stage"])
        if isinstance(node.get("indexName"), str):
            indexes.append(node["indexName"])
        for value in node.values():
            _collect_stages(value, stages, indexes)
    elif isinstance(node, list):
        for value in node:
            _collect_stages(value, stages, indexes)


# -- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, target: Target) -> Document:
    # SIGTERM would end the process on the spot, leaving the bench database, the FerretDB this
    # started and their files behind; cancelling instead unwinds through every `finally`.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    # Decoding as the app's client does (tz_aware), so both sides build the same Python values.
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        target.server_uri, tz_aware=True, serverSelectionTimeoutMS=10_000, appname="image-storage-bench"
    )
    try:
        server_kind, is_ferretdb = await describe_server(client)
        database = client[target.database]
        collection = database[COLLECTION]
        print(f"Seeding {args.documents} documents into {server_kind} ({target.database}) ...", file=sys.stderr)
        seed_seconds = await seed(collection, args.documents, args.batch_size)

        # Seeded first, so that start-up builds the indexes over a full collection, as an
        # upgrade of a deployment with data would.
        with tempfile.TemporaryDirectory(prefix="bench-uploads-") as uploads:
            started = time.perf_counter()
            async with running_app(target, Path(uploads), args.app_log_level) as http:
                startup_seconds = time.perf_counter() - started
                print("Measuring ...", file=sys.stderr)
                results = await run_queries(collection, http, args.repeat)

        explain = None if is_ferretdb else await explain_time_range(database)
        return {
            "documents": args.documents,
            "repeat": args.repeat,
            "app_log_level": args.app_log_level,
            "warmup": WARMUP_CALLS,
            "database": server_kind,
            "python": platform.python_version(),
            "seed_seconds": seed_seconds,
            "app_startup_seconds": startup_seconds,
            "transport": "in-process ASGI (httpx.ASGITransport): no sockets, no HTTP server",
            "results": [result.summary() for result in results],
            "explain_time_range": explain,
        }
    finally:
        try:
            await client.drop_database(target.database)
        finally:
            await client.close()


def render(report: Document) -> str:
    rows = [("query", "matches", "svc med ms", "svc p90 ms", "drv med ms", "drv p90 ms", "ratio", "same")]
    for row in report["results"]:
        rows.append(
            (
                row["query"],
                "-" if row["matches"] is None else str(row["matches"]),
                _ms(row["service_median_ms"]),
                _ms(row["service_p90_ms"]),
                _ms(row["driver_median_ms"]),
                _ms(row["driver_p90_ms"]),
                "-" if row["ratio"] is None else f"{row['ratio']:.2f}x",
                {True: "yes", False: "NO", None: "-"}[row["same_answer"]],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        f"{report['documents']} documents, {report['database']}, Python {report['python']}; "
        f"median/p90 of {report['repeat']} calls after {report['warmup']} warm-up calls",
        f"seeding {report['seed_seconds']:.1f} s ({report['documents'] / report['seed_seconds']:.0f} docs/s), "
        f"app start-up incl. index builds {report['app_startup_seconds']:.1f} s",
        f"service: {report['transport']}; driver: PyMongo AsyncMongoClient, same event loop",
        "",
    ]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    for row in report["results"]:
        if row["service_error"]:
            lines.append(f"service error for {row['service_url']}: {row['service_error']}")
        elif row["same_answer"] is False:
            lines.append(f"service and driver answers differ for {row['service_url']}")
    explain = report["explain_time_range"]
    if explain is None:
        lines.append("explain: skipped (FerretDB)")
    else:
        lines.append(
            f"explain time range: IXSCAN {'yes' if explain['ixscan'] else 'NO'}; "
            f"stages {' > '.join(explain['stages'])}; indexes {', '.join(explain['indexes']) or '-'}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_queries", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000, help="documents to seed (default 100000)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per query and side (default 30)")
    parser.add_argument("--batch-size", type=int, default=5_000, help="documents per insert_many (default 5000)")
    parser.add_argument(
        "--app-log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the app's LOG_LEVEL (default WARNING: no access log lines)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.documents < 1 or args.repeat < 1 or args.batch_size < 1:
        parser.error("--documents, --repeat and --batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with ExitStack() as stack:
        target = open_target(stack)
        try:
            report = asyncio.run(run(args, target))
        except asyncio.CancelledError:
            print("Terminated: bench database dropped, server stopped.", file=sys.stderr)
            return 143
    report["total_seconds"] = time.perf_counter() - started
    print(render(report))
    print(f"total run time {report['total_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
