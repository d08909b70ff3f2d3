"""The training formats' exports against the plain `/export`, in one run: throughput, and
whether the service's peak memory stays flat as the dataset grows.

For each image count it seeds a fresh database and uploads folder (~`--size-kb` noise PNGs, each
image with a label, two to four boxes, and a `subset` of train/val/test), starts the real service
as a process of its own (so its memory can be read from /proc), and then, `--rounds` times,
downloads the plain export and each format's (split by `subset` unless `--split ''`), in an order rotated each round
so none always runs first on a warm cache. Every archive is saved and checked: a valid zip whose
report.json counts every image (the plain export: one entry per image plus its two files).

    .venv/bin/python -m bench.bench_formats [--images 2000 10000] [--rounds 2] [--size-kb 20]
                                            [--formats coco yolo imagefolder hf webdataset] [--split KEY]

Figures: images/s per format, its ratio to the plain export's in the same round (the median of
the rounds), and the service's peak RSS during the download (VmHWM, reset before each). It
prints figures and never asserts on them: timings depend on the machine. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.domain.images.data_keys import data_keys
from bench.bench_archives import (
    LABELS,
    LONG_REQUEST,
    MB,
    Blob,
    PhaseWatch,
    Service,
    cpu_seconds,
    image_document,
    image_file,
    noise_pngs,
    progress,
    seeded_service,
)

FORMATS = ("coco", "yolo", "imagefolder", "hf", "webdataset")
PLAIN = "plain"
SUBSETS = ("train", "train", "train", "val", "test")
INSERT_BATCH = 1000


@dataclass(kw_only=True)
class Download:
    seconds: float
    peak_mb: float
    archive_bytes: int
    service_cpu_s: float
    database_cpu_s: float | None


@dataclass(kw_only=True)
class CountResult:
    images: int
    database: str = ""
    downloads: dict[str, list[Download]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def document(index: int, blob: Blob, rng: random.Random) -> dict[str, Any]:
    stored = image_document(index, blob)
    boxes = []
    for _ in range(rng.randint(2, 4)):
        w, h = rng.randint(1, blob.width // 2), rng.randint(1, blob.height // 2)
        x, y = rng.randint(0, blob.width - w), rng.randint(0, blob.height - h)
        boxes.append({"label": rng.choice(LABELS), "x": x, "y": y, "w": w, "h": h, "score": round(rng.random(), 3)})
    stored["data"] = {**stored["data"], "subset": SUBSETS[index % len(SUBSETS)], "boxes": boxes}
    stored["dataKeys"] = data_keys(stored["data"])
    return stored


def seed(collection: Any, uploads: Path, count: int, blobs: list[Blob]) -> None:
    rng = random.Random(7)
    batch = []
    for index in range(count):
        blob = blobs[index % len(blobs)]
        path = uploads / image_file(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob.content)
        batch.append(document(index, blob, rng))
        if len(batch) == INSERT_BATCH or index == count - 1:
            collection.insert_many(batch, ordered=False)
            batch = []


def download(
    http: httpx.Client, service: Service, name: str, archive: Path, images: int, split: str | None, database: int | None
) -> Download | str:
    params = {} if name == PLAIN else {"format": name, **({"split": split} if split else {})}
    cpu = cpu_seconds(service.pid), None if database is None else cpu_seconds(database)
    with PhaseWatch(service.peaks) as watch, archive.open("wb") as out:
        started = time.perf_counter()
        with http.stream("GET", "/export", params=params, timeout=LONG_REQUEST) as response:
            if response.status_code != 200:
                response.read()
                return f"{name}: HTTP {response.status_code}: {response.text}"
            for chunk in response.iter_raw():
                out.write(chunk)
        seconds = time.perf_counter() - started
    assert watch.memory is not None
    problem = check(archive, name, images)
    if problem:
        return f"{name}: {problem}"
    return Download(
        seconds=seconds,
        peak_mb=watch.memory.peak_mb,
        archive_bytes=archive.stat().st_size,
        service_cpu_s=cpu_seconds(service.pid) - cpu[0],
        database_cpu_s=None if database is None or cpu[1] is None else cpu_seconds(database) - cpu[1],
    )


def check(archive: Path, name: str, images: int) -> str | None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            if name == PLAIN:
                entries = len(zipped.namelist())
                return None if entries == images + 2 else f"{entries} entries, expected {images + 2}"
            report = json.loads(zipped.read("report.json"))
    except (zipfile.BadZipFile, KeyError) as error:
        return f"not a whole archive: {error}"
    written = sum(split["images"] for split in report["splits"].values())
    return None if written == images else f"report.json counts {written} images, expected {images}"


def run_count(images: int, names: list[str], rounds: int, blobs: list[Blob], split: str | None) -> CountResult:
    result = CountResult(images=images, downloads={name: [] for name in names})
    with ExitStack() as stack:
        progress(f"[{images}] seeding")
        seeded = seeded_service(
            stack,
            prefix=f"bench-formats-{images}-",
            seed=lambda collection, uploads: seed(collection, uploads, images, blobs),
        )
        result.database = seeded.database
        service, workdir = seeded.service, seeded.uploads.parent
        with httpx.Client(base_url=service.base_url, trust_env=False) as http:
            for round_number in range(rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    progress(f"[{images}] round {round_number + 1}: {name}")
                    done = download(http, service, name, workdir / "export.zip", images, split, seeded.server_pid)
                    if isinstance(done, str):
                        result.problems.append(done)
                        progress(f"[{images}] !!! {done}")
                    else:
                        result.downloads[name].append(done)
    return result


def _per_image(runs: list[Download], images: int) -> str:
    service = statistics.median(run.service_cpu_s for run in runs) * 1000 / images
    database = [run.database_cpu_s for run in runs if run.database_cpu_s is not None]
    shown = f"{statistics.median(database) * 1000 / images:.2f}" if database else "-"
    return f"{service:>25.2f} / {shown}"


def render(results: list[CountResult], names: list[str]) -> str:
    lines = []
    for result in results:
        lines.append(f"\n{result.images} images ({result.database})")
        lines.append(
            f"{'format':<12} {'images/s':>9} {'vs plain':>9} {'rounds':>18} {'peak RSS':>9} {'MB':>7}"
            f" {'CPU ms/image (service / database)':>34}"
        )
        plain = result.downloads.get(PLAIN, [])
        for name in names:
            runs = result.downloads.get(name, [])
            if not runs:
                continue
            rates = [result.images / run.seconds for run in runs]
            ratios = [(plain[index].seconds / run.seconds) for index, run in enumerate(runs) if index < len(plain)]
            lines.append(
                f"{name:<12} {statistics.median(rates):>9.0f} "
                f"{(statistics.median(ratios) if ratios else float('nan')):>8.2f}× "
                f"{', '.join(f'{ratio:.2f}' for ratio in ratios):>18} "
                f"{max(run.peak_mb for run in runs):>7.0f}MB {runs[-1].archive_bytes / MB:>7.0f}"
                f" {_per_image(runs, result.images)}"
            )
        lines.extend(f"!!! {problem}" for problem in result.problems)
    if len(results) > 1:
        small, large = results[0], results[-1]
        lines.append(f"\npeak RSS, {small.images} → {large.images} images:")
        for name in names:
            before, after = small.downloads.get(name), large.downloads.get(name)
            if before and after:
                low, high = max(run.peak_mb for run in before), max(run.peak_mb for run in after)
                lines.append(f"  {name:<12} {low:.0f} MB → {high:.0f} MB ({(high / low - 1) * 100:+.0f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size-kb", type=int, default=20)
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--split", default="subset", help="the split key (train/val/test); '' for one split, all")
    args = parser.parse_args(argv)
    names = [PLAIN, *args.formats]
    blobs = noise_pngs(50, args.size_kb * 1024, random.Random(1))
    results = [run_count(images, names, args.rounds, blobs, args.split or None) for images in args.images]
    print(render(results, names))
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
