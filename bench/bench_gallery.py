"""The gallery's first screen in real Chromium, on the embedded database holding many images.

Seeds a fresh database and uploads folder with `--images` documents (default 10,000) whose files
are ~`--size-kb` noise JPEGs (default 100 KB; `--distinct` different ones, written once per
image), each with its checksum as the service records it, starts the real service as a process
of its own, and then, `--rounds` times, opens /gallery at 1280x800 in a fresh browser context
(nothing cached) and times, from the navigation's start, until every thumbnail in the viewport
has loaded:

- cold: no thumbnail made yet (the service's stored copies are removed before the round);
- warm: the copies made, the browser's cache empty (another visitor's first visit);
- repeat: the same browser again (a reload): how many thumbnails it asks the service for.

    .venv/bin/python -m bench.bench_gallery [--images 10000] [--rounds 3] [--size-kb 100]

Prints figures and never asserts on them: timings depend on the machine (the goal for warm is
1.5 s). Needs Debian's Chromium (/usr/bin/chromium, as the browser tests).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import statistics
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from app.domain.images.data_keys import data_keys
from app.models import to_stored_time
from bench.bench_archives import (
    INSERT_BATCH,
    LABELS,
    TIME_START,
    noise_jpeg,
    progress,
    seeded_service,
)
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
VARIANTS = ".imagestore/variants"
CONTENT_ROUTE = "/images/{image_id}/content/{content}"
# Every thumbnail in the viewport loaded (lazy ones below it are not the first screen).
FIRST_SCREEN_LOADED = """() => {
  const shown = [...document.querySelectorAll('.tile img')].filter(image => {
    const box = image.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  });
  return shown.length > 0 && shown.every(image => image.complete && image.naturalWidth > 0) && shown.length;
}"""


@dataclass
class Figures:
    database: str = ""
    thumbnails: list[int] = field(default_factory=list)  # on the first screen
    cold_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    repeat_requests: list[int] = field(default_factory=list)


def seed(collection: Any, uploads: Path, count: int, blobs: list[tuple[bytes, int]]) -> None:
    checksums = [hashlib.sha256(content).hexdigest() for content, _ in blobs]
    batch = []
    for index in range(count):
        number = index % len(blobs)
        content, side = blobs[number]
        file = f"line{index % 20}/img{index:06d}.jpg"
        path = uploads / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        data = {"label": LABELS[index % len(LABELS)], "camera": ["dslr", "phone"][index % 2], "index": index}
        batch.append(
            {
                "file": file,
                "time": to_stored_time(TIME_START + timedelta(seconds=index)),
                "data": data,
                "dataKeys": data_keys(data),
                "userId": None,
                "size": len(content),
                "contentType": "image/jpeg",
                "width": side,
                "height": side,
                "checksum": checksums[number],
            }
        )
        if len(batch) == INSERT_BATCH or index == count - 1:
            collection.insert_many(batch, ordered=False)
            batch = []


def content_requests(url: str) -> int:
    text = httpx.get(f"{url}/metrics").text
    pattern = rf'^image_storage_http_requests_total\{{[^}}]*route="{re.escape(CONTENT_ROUTE)}"[^}}]*\}} (\S+)$'
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


def first_screen(page: Page, url: str) -> tuple[float, int]:
    """(ms from the navigation's start until the viewport's thumbnails loaded, how many)."""
    page.goto(f"{url}/gallery")
    shown = page.wait_for_function(FIRST_SCREEN_LOADED, timeout=120_000, polling=10).json_value()
    elapsed: float = page.evaluate("() => performance.now()")
    return elapsed, int(shown)


def run_round(browser: Browser, url: str, uploads: Path, figures: Figures) -> None:
    shutil.rmtree(uploads / VARIANTS, ignore_errors=True)
    for kind in ("cold", "warm"):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        elapsed, shown = first_screen(page, url)
        (figures.cold_ms if kind == "cold" else figures.warm_ms).append(elapsed)
        figures.thumbnails.append(shown)
        if kind == "warm":
            # Lazy thumbnails just below the viewport load after the first screen: let them.
            page.wait_for_load_state("networkidle")
            before = content_requests(url)
            page.reload()
            page.wait_for_function(FIRST_SCREEN_LOADED, timeout=120_000)
            page.wait_for_load_state("networkidle")
            figures.repeat_requests.append(content_requests(url) - before)
        context.close()


def run(images: int, rounds: int, size_kb: int, distinct: int) -> Figures:
    figures = Figures()
    rng = random.Random(7)
    blobs = [noise_jpeg(size_kb * 1024, rng) for _ in range(distinct)]
    with ExitStack() as stack:
        progress(f"seeding {images} images of ~{size_kb} KB")
        seeded = seeded_service(
            stack, prefix="bench-gallery-", seed=lambda collection, uploads: seed(collection, uploads, images, blobs)
        )
        figures.database = seeded.database
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        for number in range(rounds):
            progress(f"round {number + 1}")
            run_round(browser, seeded.service.base_url, seeded.uploads, figures)
    return figures


def render(figures: Figures, images: int, size_kb: int) -> str:
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ms (rounds: {', '.join(f'{value:.0f}' for value in values)})"

    return "\n".join(
        [
            f"{images} images of ~{size_kb} KB, {figures.database}, viewport 1280x800",
            f"thumbnails on the first screen: {sorted(set(figures.thumbnails))}",
            f"first screen, cold (thumbnails made on the way): {spread(figures.cold_ms)}",
            f"first screen, warm (made, browser cache empty):  {spread(figures.warm_ms)}",
            f"thumbnail requests on a reload: {figures.repeat_requests}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--distinct", type=int, default=60, help="different files among the images")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: scripts/ensure_chromium.sh installs it", file=sys.stderr)
        return 2
    figures = run(args.images, args.rounds, args.size_kb, args.distinct)
    print(render(figures, args.images, args.size_kb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
