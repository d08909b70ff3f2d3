"""How concurrent metadata writers fare, per strategy: keys kept and time taken.

N writers each add a different key to one document, all at once, from several client
connections (as several service processes would). Strategies, at the driver level:

- `per-key $set`: `update_one({_id}, {$set: {"data.k<i>": i}})`, one round trip each;
- `conditional replace`: read, then `replace_one({_id, revision: r}, …)`, retried (bounded) while
  it matches nothing: optimistic concurrency with a revision;
- `lease`: what the service does (app/domain/writes/leases.py): insert a lease document, read, replace,
  delete the lease;

and `service PATCH`: N concurrent `PATCH /images/{id}` through the real app in-process.

    .venv/bin/python -m bench.bench_concurrent_writes [--writers 50] [--rounds 5]

With `MONGODB_CONNECTION_STRING` set it uses that server (in a fresh database, dropped at the
end); otherwise a throwaway FerretDB. It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from asgi_lifespan import LifespanManager
from PIL import Image as PillowImage
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from app.config import load_settings
from app.domain.writes.leases import Leases
from app.main import create_app
from app.store.leases import LeaseStore
from scripts.servers import start_ferretdb

CONNECTIONS = 4


def small_png() -> bytes:
    buffer = io.BytesIO()
    PillowImage.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


MAX_ATTEMPTS = 50

Writer = Callable[[AsyncCollection[dict[str, Any]], int], Awaitable[int]]  # → database round trips


async def per_key_set(collection: AsyncCollection[dict[str, Any]], index: int) -> int:
    await collection.update_one({"_id": 1}, {"$set": {f"data.k{index}": index}})
    return 1


async def conditional_replace(collection: AsyncCollection[dict[str, Any]], index: int) -> int:
    trips = 0
    for _ in range(MAX_ATTEMPTS):
        document = await collection.find_one({"_id": 1})
        assert document is not None
        revision = document.get("revision", 0)
        new = {**document, "data": {**document["data"], f"k{index}": index}, "revision": revision + 1}
        result = await collection.replace_one({"_id": 1, "revision": revision}, new)
        trips += 2
        if result.matched_count:
            return trips
    return trips


def under_lease(leases_of: Callable[[AsyncCollection[dict[str, Any]]], Leases]) -> Writer:
    async def write(collection: AsyncCollection[dict[str, Any]], index: int) -> int:
        async with leases_of(collection).hold(["file:bench"]):
            document = await collection.find_one({"_id": 1})
            assert document is not None
            await collection.replace_one({"_id": 1}, {**document, "data": {**document["data"], f"k{index}": index}})
        return 4  # lease in, read, replace, lease out (when uncontended)

    return write


async def run_strategy(uri: str, database: str, writer: Writer, writers: int) -> tuple[int, float, int]:
    clients: list[AsyncMongoClient[dict[str, Any]]] = [AsyncMongoClient(uri) for _ in range(CONNECTIONS)]
    try:
        collections = [client[database]["bench"] for client in clients]
        await collections[0].delete_many({})
        await collections[0].insert_one({"_id": 1, "data": {}, "revision": 0})
        started = time.perf_counter()
        trips = await asyncio.gather(*(writer(collections[index % CONNECTIONS], index) for index in range(writers)))
        elapsed = time.perf_counter() - started
        document = await collections[0].find_one({"_id": 1})
        assert document is not None
        return len(document["data"]), elapsed, sum(trips)
    finally:
        for client in clients:
            await client.close()


async def run_service(uri: str, database: str, writers: int, uploads: Path) -> tuple[int, float, int]:
    settings = load_settings(mongodb_connection_string=f"{uri.rstrip('/')}/{database}", uploads_directory=uploads)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench") as client,
    ):
        created = await client.post("/images", files={"image": ("b.png", small_png())}, data={"file": "b.png"})
        image_id = created.json()["_id"]
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(client.patch(f"/images/{image_id}", json={f"k{index}": index}) for index in range(writers))
        )
        elapsed = time.perf_counter() - started
        assert {answer.status_code for answer in answers} == {200}
        data = (await client.get(f"/images/{image_id}")).json()["data"]
        await client.delete("/images")
        return len(data), elapsed, 0


async def main(uri: str, writers: int, rounds: int) -> None:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    leases: dict[int, Leases] = {}

    def leases_of(collection: AsyncCollection[dict[str, Any]]) -> Leases:
        # One Leases per connection, as one per service process.
        return leases.setdefault(id(collection), Leases(store=LeaseStore(lambda: collection.database["leases"])))

    strategies: dict[str, Callable[[], Awaitable[tuple[int, float, int]]]] = {
        "per-key $set": lambda: run_strategy(uri, database, per_key_set, writers),
        "conditional replace": lambda: run_strategy(uri, database, conditional_replace, writers),
        "lease": lambda: run_strategy(uri, database, under_lease(leases_of), writers),
    }
    with tempfile.TemporaryDirectory() as uploads:
        strategies["service PATCH (in-process)"] = lambda: run_service(uri, database, writers, Path(uploads))
        print(f"{writers} concurrent writers, each adding a different key; {rounds} rounds; {CONNECTIONS} connections")
        print(f"{'strategy':28} {'keys kept (min–max)':>20} {'median ms':>10} {'round trips':>12}")
        try:
            for name, run in strategies.items():
                results = [await run() for _ in range(rounds)]
                kept = [result[0] for result in results]
                median_ms = statistics.median(result[1] for result in results) * 1000
                trips = statistics.median(result[2] for result in results)
                trips_text = f"{trips:.0f}" if trips else "-"
                print(f"{name:28} {f'{min(kept)}–{max(kept)} of {writers}':>20} {median_ms:10.0f} {trips_text:>12}")
        finally:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
            await client.drop_database(database)
            await client.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    external = os.environ.get("MONGODB_CONNECTION_STRING")
    with ExitStack() as stack:
        if external:
            uri = urlsplit(external)._replace(path="/").geturl()
        else:
            uri = stack.enter_context(start_ferretdb(Path(tempfile.mkdtemp(prefix="bench-ferretdb-")))).uri
        asyncio.run(main(uri, arguments.writers, arguments.rounds))


if __name__ == "__main__":
    cli()
