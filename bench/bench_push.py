"""`imagestore push` and `pull` against curl and `/export`, on the real service.

Writes `--rounds` + 1 folders of `--files` distinct noise JPEGs of ~`--size-kb` KB (default
2,000 × 100 KB), starts the real service on a fresh embedded database and uploads folder, and in
one run, round after round (each on a folder of its own, so every upload is a new image):

- uploads one folder with `xargs -P 8 curl -F image=@… -F file=…` (one process per file, as a
  script would) and another with `imagestore push --jobs 8`: the push's rate against curl's;
- pushes the same folder again (everything stored already; the median of three such reruns):
  its time against the first push's;
- pulls that folder's images with `imagestore pull` and reads `/export` of the same images to
  the end: the pull's throughput against the export's.

    .venv/bin/python -m bench.bench_push [--files 2000] [--size-kb 100] [--jobs 8] [--rounds 3]

Prints each round's figures and their medians, never asserting on them (the goals: push ≥ 1.0×
curl, a rerun ≤ 5% of the first push, pull ≥ 0.9× /export). Every time is a whole command as a
user runs it, interpreter start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.bench_archives import noise_jpeg, seeded_service

COMMAND = Path(sys.executable).parent / "imagestore"
# One curl per file, eight at once, the path under the folder as the image's `file`.
RERUNS = 3
CURL = 'curl -sS -o /dev/null -f -F "image=@$1" -F "file=$PREFIX/${1#./}" "$URL/images"'


@dataclass
class Round:
    curl_s: float
    push_s: float
    rerun_s: float
    pull_s: float
    export_s: float
    pulled_mb: float
    exported_mb: float


def write_folder(root: Path, files: int, size: int, rng: random.Random) -> int:
    total = 0
    for index in range(files):
        data, _ = noise_jpeg(size, rng)
        path = root / f"cam{index % 4}" / f"{index:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return total


def timed(command: list[str] | str, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, shell=isinstance(command, str), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def one_round(number: int, url: str, folders: list[Path], work: Path, jobs: int, env: dict[str, str]) -> Round:
    curl_folder, push_folder = folders[number], folders[number + 1]
    curl_s = timed(
        f"find . -name '*.jpg' -print0 | xargs -0 -P {jobs} -n 1 sh -c '{CURL}' _",
        cwd=curl_folder,
        env=env | {"PREFIX": f"curl{number}"},
    )
    prefix = f"push{number}"
    push = [str(COMMAND), "--quiet", "push", str(push_folder), "--prefix", prefix, "--jobs", str(jobs)]
    push_s = timed(push, env=env)
    # A rerun is the same work each time: the median of three, so one scheduling hiccup on a
    # shared machine does not decide a figure of a few hundred milliseconds.
    rerun_s = statistics.median(timed(push, env=env) for _ in range(RERUNS))

    selection = json.dumps({"file": {"$regex": f"^{prefix}/"}})
    dest = work / f"pulled{number}"
    pull_s = timed([str(COMMAND), "--quiet", "pull", str(dest), "--filter", selection], env=env)
    pulled = sum(path.stat().st_size for path in dest.rglob("*.jpg"))
    shutil.rmtree(dest)
    started = time.perf_counter()
    exported = 0
    with httpx.stream("GET", f"{url}/export", params={"filter": selection}, timeout=600) as response:
        for chunk in response.iter_bytes():
            exported += len(chunk)
    export_s = time.perf_counter() - started
    return Round(curl_s, push_s, rerun_s, pull_s, export_s, pulled / 1e6, exported / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    rng = random.Random(28)
    with ExitStack() as stack:
        seeded = seeded_service(stack, prefix="bench-push-", seed=lambda collection, uploads: None)
        url = seeded.service.base_url
        work = seeded.uploads.parent
        folders = [work / f"folder{index}" for index in range(arguments.rounds + 1)]
        size = sum(write_folder(folder, arguments.files, arguments.size_kb * 1024, rng) for folder in folders)
        print(
            f"{seeded.database}; {arguments.files} files of ~{arguments.size_kb} KB a folder"
            f" ({size / len(folders) / 1e6:.0f} MB), jobs {arguments.jobs}"
        )
        # Checksums kept between runs go to a folder of this run's (the user's cache stays out of it).
        cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-push-cache-")))
        env = os.environ | {"IMAGESTORE_URL": url, "URL": url, "IMAGESTORE_CACHE_DIR": str(cache)}
        rounds = []
        for number in range(arguments.rounds):
            done = one_round(number, url, folders, work, arguments.jobs, env)
            rounds.append(done)
            print(
                f"round {number + 1}: curl {done.curl_s:6.2f} s, push {done.push_s:6.2f} s"
                f" ({done.curl_s / done.push_s:.2f}x), rerun {done.rerun_s:5.2f} s ({done.rerun_s / done.push_s:.1%}),"
                f" pull {done.pulled_mb / done.pull_s:5.1f} MB/s, /export {done.exported_mb / done.export_s:5.1f} MB/s"
                f" ({(done.pulled_mb / done.pull_s) / (done.exported_mb / done.export_s):.2f}x)"
            )
        files = arguments.files
        print(f"medians over {len(rounds)} rounds:")
        print(
            f"  push / curl rate:    {statistics.median(r.curl_s / r.push_s for r in rounds):.2f}x (goal >= 1.0x);"
            f" push {statistics.median(files / r.push_s for r in rounds):.0f} files/s,"
            f" curl {statistics.median(files / r.curl_s for r in rounds):.0f} files/s"
        )
        print(f"  rerun / first push:  {statistics.median(r.rerun_s / r.push_s for r in rounds):.1%} (goal <= 5%)")
        ratio = statistics.median((r.pulled_mb / r.pull_s) / (r.exported_mb / r.export_s) for r in rounds)
        print(f"  pull / export:       {ratio:.2f}x (goal >= 0.9x)")
        stored = httpx.get(f"{url}/images", params={"limit": "1"}).json()["total"]
        if stored != 2 * files * len(rounds):
            print(f"PROBLEM: {stored} images stored, {2 * files * len(rounds)} sent")


if __name__ == "__main__":
    main()
