"""Thumbnails of the real 4000x3000 photo: latency cold and cached, throughput, memory under a burst.

    .venv/bin/python -m bench.bench_thumbnails [--images 25] [--json PATH]

Starts the real service as a process of its own (local storage, FerretDB started here unless
`MONGODB_CONNECTION_STRING` is set), uploads `tests/fixtures/cat.jpg` `--images` times
under different paths (each upload is its own image, so each has its own thumbnails), then:

1. **Cold and cached latency, one core.** The service's threads are pinned to one CPU. For each
   image, `GET /images/{id}/image?width=256` once (cold: read, decode, resize, encode, store,
   send), then again (cached: read back from the storage). Median and p90 in ms.
2. **Thumbnails per second, 8 clients**, unpinned: 8 widths of every image, all cold, then the
   same requests again, all cached.
3. **Bursts of 50, then 200** cold requests sent at once (more widths of every image): the
   service's peak RSS over each (VmHWM reset at its start), beside its RSS before it. Bounded
   means the larger burst peaks no higher than the smaller one.
4. **Bytes per list page of 10**: the legacy GUI's page downloads each full image; with
   `?width=256` it would download these thumbnails.

It prints figures and never asserts on them. The issue's goals: cold 256 px <= 150 ms on one
core, cached <= 10 ms, RSS bounded under the burst. Linux only (/proc, sched_setaffinity).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.bench_archives import SHORT_REQUEST, PhaseWatch, Service, open_target, read_status_kb
from scripts.servers import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "cat.jpg"
CLIENTS = 8
BURST = 200
PAGE = 10


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of the process, not only its main one (worker threads exist already)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), cpus)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000,
    }


async def timed_get(http: httpx.AsyncClient, url: str, params: dict[str, Any]) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = await http.get(url, params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.content


async def with_clients(http: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]], clients: int) -> float:
    """Requests per second, `clients` at a time."""
    queue = list(requests)

    async def client() -> None:
        while queue:
            url, params = queue.pop()
            await timed_get(http, url, params)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(requests) / (time.perf_counter() - started)


async def measure(service: Service, images: int) -> dict[str, Any]:
    photo = FIXTURE.read_bytes()
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=SHORT_REQUEST, limits=limits) as http:
        progress(f"uploading the photo {images} times")
        urls = []
        for index in range(images):
            files = {"image": ("cat.jpg", photo)}
            response = await http.post("/images", files=files, data={"file": f"{index}/cat.jpg"})
            response.raise_for_status()
            urls.append(f"/images/{response.json()['_id']}/image")

        cpus = os.sched_getaffinity(service.pid)
        pin(service.pid, {min(cpus)})
        progress("cold and cached 256 px thumbnails, the service on one core")
        cold, cached = [], []
        for url in urls:
            cold.append((await timed_get(http, url, {"width": 256}))[0])
            cached.append((await timed_get(http, url, {"width": 256}))[0])
        pin(service.pid, cpus)

        progress(f"{CLIENTS} clients, every request a thumbnail not made before, then the same again")
        widths = [(url, {"width": width}) for url in urls for width in range(200, 200 + CLIENTS)]
        cold_rate = await with_clients(http, widths, CLIENTS)
        cached_rate = await with_clients(http, widths, CLIENTS)

        bursts = []
        for size, first_width in ((BURST // 4, 300), (BURST, 400)):
            progress(f"a burst of {size} cold requests at once")
            burst = [(urls[index % len(urls)], {"width": first_width + index // len(urls)}) for index in range(size)]
            before_mb = read_status_kb(service.pid, "VmRSS")["VmRSS"] / 1024
            with PhaseWatch(service.peaks) as watch:
                started = time.perf_counter()
                await asyncio.gather(*(timed_get(http, url, params) for url, params in burst))
                seconds = time.perf_counter() - started
            assert watch.memory is not None
            bursts.append(
                {"requests": size, "seconds": seconds, "rss_before_mb": before_mb, "peak_rss_mb": watch.memory.peak_mb}
            )

        progress(f"a list page of {PAGE}: full images against thumbnails")
        full = sum([len((await timed_get(http, url, {}))[1]) for url in urls[:PAGE]])
        small = sum([len((await timed_get(http, url, {"width": 256}))[1]) for url in urls[:PAGE]])
    return {
        "images": images,
        "cpus": len(cpus),
        "cold_256": summary(cold),
        "cached_256": summary(cached),
        "cold_per_second_8_clients": cold_rate,
        "cached_per_second_8_clients": cached_rate,
        "bursts": bursts,
        "page_bytes": {"full": full, "thumbnails": small},
    }


def render(report: dict[str, Any]) -> str:
    page, cold, cached = report["page_bytes"], report["cold_256"], report["cached_256"]
    lines = [
        f"thumbnails of the 4000x3000 photo, {report['images']} images, service on 1 of {report['cpus']} cores "
        "for the latencies",
        "",
        "| measure | figure |",
        "|---|---|",
        f"| cold 256 px, median / p90 | {cold['median_ms']:.1f} / {cold['p90_ms']:.1f} ms |",
        f"| cached 256 px, median / p90 | {cached['median_ms']:.1f} / {cached['p90_ms']:.1f} ms |",
        f"| cold thumbnails/s, {CLIENTS} clients | {report['cold_per_second_8_clients']:.1f} |",
        f"| cached thumbnails/s, {CLIENTS} clients | {report['cached_per_second_8_clients']:.1f} |",
        *(
            f"| burst of {burst['requests']} at once: time; RSS before, peak during | {burst['seconds']:.1f} s; "
            f"{burst['rss_before_mb']:.1f}, {burst['peak_rss_mb']:.1f} MB |"
            for burst in report["bursts"]
        ),
        f"| list page of {PAGE}: full images / thumbnails | {page['full']:,} / {page['thumbnails']:,} bytes "
        f"({page['full'] / page['thumbnails']:.0f}x) |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=25, help="uploads of the photo (at least 10)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-thumbnails-")))
        target = open_target(stack, work / "database")
        service = Service(target=target, uploads=work / "uploads", log_path=work / "service.log")
        stack.callback(service.stop)
        with httpx.Client(base_url=service.base_url) as http:
            service.wait_until_ready(http)
        report = asyncio.run(measure(service, max(args.images, PAGE)))
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
