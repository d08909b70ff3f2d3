"""What keeping a snapshot's bytes costs a replacement and a delete, on local storage and S3.

Sides, each a service process of its own with its own database (one FerretDB started here)
and storage (a folder, or a bucket on one MinIO started here):

- `before` (local, s3): the revision before snapshots kept bytes (`--baseline`), no snapshot;
- `unheld` (local, s3): this revision, a snapshot exists but holds none of the images changed
  (each write pays the lookup of its image's mark, and finds none);
- `held` (local, s3): this revision, a snapshot taken just before each round (and before the
  deletes) holds every image changed (each write keeps the old bytes: a hard link locally, a
  server-side copy on S3, and a hold per image). So the k-th round runs with k snapshots, each
  looked up by the writes of marked images (the deletes with `--rounds` + 1).

Each side has `--images` images of `--size-kb` (JPEG noise). A round replaces every one of them
with new bytes at `--clients` clients; the sides take turns, the order rotated each round.
Then each side deletes its images one request at a time, at the same clients. Printed: the
median rate of each side and its ratio to `before` on the same storage. Then the time to create
a snapshot of `--snapshot-images` images, and a second one of the same images, before and now
(a creation freezes each batch under its paths' leases, marks its images and, the first time an
image is frozen, flags its document).

    .venv/bin/python -m bench.bench_snapshot_bytes [--images 200] [--rounds 5] [--clients 8]
                                                   [--size-kb 100] [--baseline 5437d07]
                                                   [--snapshot-images 2000]

It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from bench.bench_archives import Service, Target, noise_jpeg, workspace
from bench.bench_export import check_out, git
from scripts.servers import start_minio

BASELINE = "5437d07"  # the revision before snapshots kept bytes
RETRIES = 3


@dataclass(kw_only=True)
class Side:
    name: str
    storage: str  # local or s3
    holding: bool  # a snapshot holds the images each round changes
    service: Service
    replaced: list[float] = field(default_factory=list)  # replacements/s, per round
    deleted: float = 0.0  # deletes/s
    failed: int = 0  # replacements refused by a race on the storage folder (and sent again)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.storage})"


async def at_clients(count: int, clients: int, one: object) -> float:
    """Run `one(index)` for every index at `clients` at once; the rate per second."""
    queue = list(range(count))
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            await one(queue.pop())  # type: ignore[operator]

    await asyncio.gather(*(worker() for _ in range(clients)))
    return count / (time.perf_counter() - started)


async def replace_all(http: httpx.AsyncClient, side: Side, blobs: list[bytes], clients: int, count: int) -> float:
    async def one(index: int) -> None:
        for _ in range(RETRIES):
            content = blobs[random.randrange(len(blobs))]
            response = await http.post(
                "/images", files={"image": (f"{index}.jpg", content)}, data={"file": f"r/{index}.jpg"}
            )
            if response.status_code not in (409, 503):
                break
            # The revision before this issue loses a race between concurrent replacements now
            # and then (a folder removed under a write: a 503, or a 409 saying a file is in the
            # way): counted, and sent again.
            side.failed += 1
        if response.status_code != 200:
            raise RuntimeError(f"{side.label}: replacing r/{index}.jpg: HTTP {response.status_code} {response.text}")

    return await at_clients(count, clients, one)


async def measure(sides: list[Side], arguments: argparse.Namespace, blobs: list[bytes]) -> None:
    limits = httpx.Limits(max_connections=arguments.clients)
    clients = {
        side.label: httpx.AsyncClient(base_url=side.service.base_url, timeout=120, limits=limits) for side in sides
    }
    try:
        for side in sides:  # the images, and each side's standing snapshot
            http = clients[side.label]
            await replace_all(http, side, blobs, arguments.clients, arguments.images)
            if side.name == "unheld":
                other = await http.post("/images", files={"image": ("o.jpg", blobs[0])}, data={"file": "other/o.jpg"})
                other.raise_for_status()
                created = await http.post("/snapshots", json={"name": "other", "filter": {"file": "other/o.jpg"}})
                created.raise_for_status()
        for round_number in range(arguments.rounds):
            order = sides[round_number % len(sides) :] + sides[: round_number % len(sides)]
            for side in order:
                http = clients[side.label]
                if side.holding:  # uncounted: what the round's replacements keep bytes for
                    created = await http.post("/snapshots", json={"name": f"round-{round_number}"})
                    created.raise_for_status()
                side.replaced.append(await replace_all(http, side, blobs, arguments.clients, arguments.images))
            print(
                f"round {round_number + 1}: " + ", ".join(f"{s.label} {s.replaced[-1]:.0f}/s" for s in sides),
                flush=True,
            )
        for side in sides:
            http = clients[side.label]
            if side.holding:  # uncounted: what the deletes keep bytes for
                (await http.post("/snapshots", json={"name": "last"})).raise_for_status()
            listed = await http.get("/images", params={"limit": arguments.images + 10})
            ids = [item["_id"] for item in listed.json()["items"] if item["file"].startswith("r/")]

            async def delete(index: int, http: httpx.AsyncClient = http, ids: list[str] = ids) -> None:
                (await http.delete(f"/images/{ids[index]}")).raise_for_status()

            side.deleted = await at_clients(len(ids), arguments.clients, delete)
    finally:
        for http in clients.values():
            await http.aclose()


async def snapshot_seconds(service: Service, count: int, blob: bytes, clients: int) -> tuple[float, float]:
    """Upload `count` images labelled `frozen`, then time a snapshot of them, and a second one
    (their images frozen before)."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=600) as http:

        async def one(index: int) -> None:
            response = await http.post(
                "/images", files={"image": (f"{index}.jpg", blob)}, data={"file": f"s/{index}.jpg", "set": "frozen"}
            )
            response.raise_for_status()

        await at_clients(count, clients, one)
        times = []
        for _ in range(2):
            started = time.perf_counter()
            name = f"timed-{uuid.uuid4().hex[:6]}"
            created = await http.post("/snapshots", json={"name": name, "filter": {"data.set": "frozen"}})
            created.raise_for_status()
            times.append(time.perf_counter() - started)
        return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--snapshot-images", type=int, default=2000)
    arguments = parser.parse_args()
    revision = git("rev-parse", "--short", f"{arguments.baseline}^{{commit}}")
    rng = random.Random(11)
    blobs = [noise_jpeg(arguments.size_kb * 1024, rng)[0] for _ in range(20)]
    with ExitStack() as stack:
        space = workspace(stack, prefix="bench-snapshot-bytes-")
        minio = stack.enter_context(start_minio(space.workdir / "minio"))
        check_out(stack, revision, space.workdir / "baseline")
        sides: list[Side] = []
        for storage in ("local", "s3"):
            for name, holding in (("before", False), ("unheld", False), ("held", True)):
                database = f"{space.target.database}_{name}_{storage}"
                stack.callback(space.client.drop_database, database)
                target: Target = replace(space.target, uri=space.target.uri.replace(space.target.database, database))
                s3 = {
                    "S3_ENDPOINT": minio.url,
                    "S3_BUCKET": f"bench-{name}-{uuid.uuid4().hex[:8]}",
                    "S3_ACCESS_KEY_ID": minio.access_key,
                    "S3_SECRET_ACCESS_KEY": minio.secret_key,
                }
                service = Service(
                    target=target,
                    uploads=space.workdir / f"uploads-{name}-{storage}",
                    log_path=space.workdir / f"{name}-{storage}.log",
                    served=True,
                    root=space.workdir / "baseline" if name == "before" else Path.cwd(),
                    storage=s3 if storage == "s3" else None,
                )
                stack.callback(service.stop)
                with httpx.Client(base_url=service.base_url) as http:
                    service.wait_until_ready(http)
                sides.append(Side(name=name, storage=storage, holding=holding, service=service))
        asyncio.run(measure(sides, arguments, blobs))
        small = noise_jpeg(4 * 1024, rng)[0]
        creations = {
            side.name: asyncio.run(snapshot_seconds(side.service, arguments.snapshot_images, small, arguments.clients))
            for side in sides
            if side.storage == "local" and side.name in ("before", "unheld")
        }
    print(
        f"\nbaseline {revision}; {arguments.images} images of {arguments.size_kb} KB, {arguments.clients} clients, "
        f"{arguments.rounds} rounds (median)\n"
    )
    print(f"{'side':<18} {'replace/s':>10} {'vs before':>10} {'delete/s':>10} {'vs before':>10} {'lost races':>11}")
    for side in sides:
        before = next(other for other in sides if other.name == "before" and other.storage == side.storage)
        rate, base = statistics.median(side.replaced), statistics.median(before.replaced)
        print(
            f"{side.label:<18} {rate:>10.1f} {rate / base:>9.2f}× "
            f"{side.deleted:>10.1f} {side.deleted / before.deleted:>9.2f}× {side.failed:>11}"
        )
    before, now = creations["before"], creations["unheld"]
    for which, index in (("first", 0), ("second", 1)):
        print(
            f"{'' if index else chr(10)}{which} snapshot of the same {arguments.snapshot_images} images (local): "
            f"before {before[index]:.2f} s, now {now[index]:.2f} s ({now[index] / before[index]:.2f}×)"
        )


if __name__ == "__main__":
    main()
