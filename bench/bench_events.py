"""Live events across replicas: how late a write made through one replica reaches a subscriber
of another.

Two service processes (`python -m app.server`, as the container runs it) on one database and
one uploads folder. A `GET /events` stream is open on each. Writes go through replica B, one
every `--interval` seconds (uploads, then a PATCH of each); for each, the time from B's answer
to the event's arrival on A's stream (another replica) and on B's own stream. Printed: median,
p90, p99 and the largest, in milliseconds, for both.

    .venv/bin/python -m bench.bench_events [--writes 400] [--interval 0.02]

With `MONGODB_CONNECTION_STRING` set it uses that server (a fresh database, dropped at the end);
otherwise a throwaway FerretDB with its SQLite files, as `make run`. It prints figures and
never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import ExitStack
from typing import Any

import httpx

from bench.bench_archives import Service, describe_server, workspace
from tests.utils.images import make_image


async def follow(url: str, arrivals: dict[str, float], ready: asyncio.Event) -> None:
    """Read `url`'s events, noting when each event's image (`file` and `data.n`) arrived."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), trust_env=False) as http,
        http.stream("GET", url) as response,
    ):
        response.raise_for_status()
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                image = json.loads(line.removeprefix("data:"))
                arrivals[f"{image['file']}#{image['data']['n']}"] = time.perf_counter()


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"median": statistics.median(ordered), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


async def measure(a: str, b: str, *, writes: int, interval: float) -> dict[str, Any]:
    on_a: dict[str, float] = {}
    on_b: dict[str, float] = {}
    ready_a, ready_b = asyncio.Event(), asyncio.Event()
    readers = [
        asyncio.create_task(follow(f"{a}/events", on_a, ready_a)),
        asyncio.create_task(follow(f"{b}/events", on_b, ready_b)),
    ]
    await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 30)
    answered: dict[str, float] = {}
    content = make_image()
    async with httpx.AsyncClient(base_url=b, timeout=60, trust_env=False) as through_b:
        ids: list[str] = []
        for index in range(writes):
            if index < writes // 2:
                file = f"bench/{index}.png"
                response = await through_b.post(
                    "/images", files={"image": (file, content)}, data={"file": file, "data": '{"n": 0}'}
                )
                response.raise_for_status()
                ids.append(response.json()["_id"])
                answered[f"{file}#0"] = time.perf_counter()
            else:
                number = index - writes // 2
                response = await through_b.patch(f"/images/{ids[number]}", json={"n": 1})
                response.raise_for_status()
                answered[f"bench/{number}.png#1"] = time.perf_counter()
            await asyncio.sleep(interval)
    deadline = time.monotonic() + 30
    while (len(on_a) < len(answered) or len(on_b) < len(answered)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    other = [(on_a[key] - at) * 1000 for key, at in answered.items() if key in on_a]
    own = [(on_b[key] - at) * 1000 for key, at in answered.items() if key in on_b]
    return {
        "writes": len(answered),
        "missing on the other replica": len(answered) - len(other),
        "missing on the writing replica": len(answered) - len(own),
        "other replica, ms": quantiles(other),
        "writing replica, ms": quantiles(own),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between writes")
    args = parser.parse_args()
    with ExitStack() as stack:
        space = workspace(stack, prefix="bench-events-")
        print(describe_server(space.client))
        services = []
        for name in "AB":
            log_path = space.workdir / f"{name}.log"
            service = Service(target=space.target, uploads=space.uploads, log_path=log_path, served=True)
            stack.callback(service.stop)
            with httpx.Client(base_url=service.base_url, trust_env=False) as http:
                service.wait_until_ready(http)
            services.append(service)
        figures = asyncio.run(
            measure(services[0].base_url, services[1].base_url, writes=args.writes, interval=args.interval)
        )
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
