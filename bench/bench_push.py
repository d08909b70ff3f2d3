"""`imagestore push` and `pull` against curl and `/export`, on the real service.

Writes two folders of `--files` distinct noise JPEGs of ~`--size-kb` KB (default 2,000 × 100 KB),
starts the real service on a fresh embedded database and uploads folder, and in one run:

- uploads folder A with `xargs -P 8 curl -F image=@… -F file=…` (one process per file, as a
  script would), and folder B with `imagestore push --jobs 8`: the push's rate against curl's;
- pushes B again (everything stored already): its time against the first push's;
- pulls B with `imagestore pull` and reads `/export` of the same images to the end: the pull's
  throughput against the export's.

    .venv/bin/python -m bench.bench_push [--files 2000] [--size-kb 100] [--jobs 8]

Prints figures and never asserts on them (the goals: push ≥ 1.0× curl, a rerun ≤ 5% of the first
push, pull ≥ 0.9× /export).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.bench_archives import noise_jpeg, seeded_service

COMMAND = Path(sys.executable).parent / "imagestore"
# One curl per file, eight at once, the path under the folder as the image's `file`.
CURL = 'curl -sS -o /dev/null -f -F "image=@$1" -F "file=curl/${1#./}" "$URL/images"'


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size-kb", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=8)
    arguments = parser.parse_args()
    rng = random.Random(28)
    with ExitStack() as stack:
        seeded = seeded_service(stack, prefix="bench-push-", seed=lambda collection, uploads: None)
        url = seeded.service.base_url
        work = seeded.uploads.parent
        folders = {name: work / name for name in ("a", "b")}
        size = sum(write_folder(folder, arguments.files, arguments.size_kb * 1024, rng) for folder in folders.values())
        mb = size / 2 / 1e6
        print(f"{seeded.database}; {arguments.files} files of ~{arguments.size_kb} KB per folder ({mb:.0f} MB)")
        env = os.environ | {"IMAGESTORE_URL": url, "URL": url}

        curl_s = timed(
            f"find . -name '*.jpg' -print0 | xargs -0 -P {arguments.jobs} -n 1 sh -c '{CURL}' _",
            cwd=folders["a"],
            env=env,
        )
        push = [str(COMMAND), "--quiet", "push", str(folders["b"]), "--prefix", "cli", "--jobs", str(arguments.jobs)]
        push_s = timed(push, env=env)
        rerun_s = timed(push, env=env)
        print(f"curl -P {arguments.jobs}:   {curl_s:7.2f} s  {arguments.files / curl_s:7.1f} files/s")
        print(f"push --jobs {arguments.jobs}: {push_s:7.2f} s  {arguments.files / push_s:7.1f} files/s")
        print(f"  push / curl rate: {curl_s / push_s:.2f}x (goal >= 1.0x)")
        print(f"push again:    {rerun_s:7.2f} s  {rerun_s / push_s:.1%} of the first push (goal <= 5%)")

        selection = json.dumps({"file": {"$regex": "^cli/"}})
        dest = work / "pulled"
        pull_s = timed([str(COMMAND), "--quiet", "pull", str(dest), "--filter", selection], env=env)
        shutil.rmtree(dest)
        started = time.perf_counter()
        exported = 0
        with httpx.stream("GET", f"{url}/export", params={"filter": selection}, timeout=600) as response:
            for chunk in response.iter_bytes():
                exported += len(chunk)
        export_s = time.perf_counter() - started
        print(f"pull:          {pull_s:7.2f} s  {mb / pull_s:7.1f} MB/s")
        print(f"/export:       {export_s:7.2f} s  {exported / 1e6 / export_s:7.1f} MB/s (its archive)")
        print(f"  pull / export throughput: {(mb / pull_s) / (exported / 1e6 / export_s):.2f}x (goal >= 0.9x)")
        stored = httpx.get(f"{url}/images", params={"limit": "1"}).json()["total"]
        if stored != 2 * arguments.files:
            print(f"PROBLEM: {stored} images stored, {2 * arguments.files} sent")


if __name__ == "__main__":
    main()
