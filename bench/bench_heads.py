"""Oversized request heads against the real service, with uvicorn's own parser and with ours.

Two service processes on one throwaway FerretDB, identical but for uvicorn's HTTP protocol:
`httptools` (uvicorn's own: before) and `app.server:BoundedHttpToolsProtocol` (what `make run`
and the container use: after). Each gets, in rounds that alternate which goes first:

- uploads: `--images` PNGs of ~100 KB at 8 concurrent clients, then `--large` 40 MB BMPs one
  after the other, to show what the bound costs a body's every read: the rate, and the
  service's CPU time (/proc/<pid>/stat, 10 ms ticks) per image or MB. All the upload rounds
  come first: a service that has read a 60 MB head keeps the memory it took, and was measured
  uploading large files 1.2–1.5× slower after it.
- a 60 MB request line (`GET /images?ids[]=aaaa…`) and a 60 MB header (`X-Filler: aaaa…` on
  `GET /healthz`), sent over a raw socket in 64 KiB writes until the service answers or closes
  the connection. Meanwhile `GET /healthz` is timed every 50 ms on another connection and the
  service's peak RSS is read (VmHWM, reset before each send).

    .venv/bin/python -m bench.bench_heads [--rounds 7] [--megabytes 60] [--images 200] [--large 4]

It prints figures and never asserts on them. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import select
import shutil
import socket
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image as PillowImage

from bench.bench_archives import Blob, PhaseWatch, Service, Target, cpu_seconds, noise_pngs, read_status_kb
from bench.bench_floor import run_clients
from scripts.servers import start_ferretdb

SIDES = {"before": "httptools", "after": "app.server:BoundedHttpToolsProtocol"}
CHUNK = 64 * 1024
MB = 1024 * 1024
HEADS = {
    "request line": (b"GET /images?ids[]=", b" HTTP/1.1\r\nHost: bench\r\n\r\n"),
    "header": (b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Filler: ", b"\r\n\r\n"),
}
POLL_SECONDS = 0.05


@dataclass(kw_only=True)
class HeadRun:
    answer: str = ""
    seconds: float = 0.0
    sent_mb: float = 0.0
    healthz_ms: list[float] = field(default_factory=list)
    peak_over_idle_mb: float = 0.0


def send_oversized(port: int, kind: str, size: int, run: HeadRun) -> None:
    """Send the head in 64 KiB writes until the service answers, closes, or all of it is sent."""
    prefix, suffix = HEADS[kind]
    filler = b"a" * CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        try:
            sock.sendall(prefix)
            while sent < size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(filler)
                sent += CHUNK
            if sent >= size:
                sock.sendall(suffix)
        except OSError:
            pass  # the service closed the connection: its answer, if any, is there to read
        sock.settimeout(120)
        try:
            status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
            run.answer = status_line.split(" ", 2)[1] if status_line else "closed"
        except OSError as error:
            run.answer = type(error).__name__
        run.seconds = time.perf_counter() - started
        run.sent_mb = sent / MB


def measure_head(service: Service, kind: str, size: int) -> HeadRun:
    run = HeadRun()
    idle_mb = read_status_kb(service.pid, "VmRSS")["VmRSS"] / 1024
    sender = threading.Thread(target=send_oversized, args=(service.port, kind, size, run))
    with PhaseWatch(service.peaks) as watch, httpx.Client(base_url=service.base_url, timeout=60) as http:
        http.get("/healthz")  # the connection is open before the send starts
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            http.get("/healthz").raise_for_status()
            run.healthz_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(POLL_SECONDS)
        sender.join()
    assert watch.memory is not None
    run.peak_over_idle_mb = watch.memory.peak_mb - idle_mb
    return run


def large_bmp(megabytes: int, rng: random.Random) -> bytes:
    """Random pixels in an uncompressed BMP: large, quick to make, and a real image."""
    width = 4096
    height = megabytes * MB // (width * 3)
    buffer = io.BytesIO()
    PillowImage.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(buffer, format="BMP")
    return buffer.getvalue()


@dataclass(frozen=True, kw_only=True)
class UploadRun:
    images_per_s: float  # small uploads, 8 clients
    cpu_ms_per_image: float  # the service's CPU (user + system) per small upload
    mb_per_s: float  # large uploads, one at a time
    cpu_ms_per_mb: float


async def measure_uploads(
    service: Service, round_index: int, small: list[Blob], large: bytes, images: int, large_count: int
) -> UploadRun:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=300) as http:

        async def upload(index: int, content: bytes, name: str) -> None:
            fields = {"file": f"r{round_index}/{name}{index}", "label": "bench"}
            response = await http.post("/images", files={"image": ("x", content)}, data=fields)
            response.raise_for_status()

        cpu = cpu_seconds(service.pid)
        small_s = await run_clients(images, 8, lambda index: upload(index, small[index % len(small)].content, "s"))
        small_cpu, cpu = cpu_seconds(service.pid) - cpu, cpu_seconds(service.pid)
        large_s = await run_clients(large_count, 1, lambda index: upload(index, large, "l"))
        large_cpu = cpu_seconds(service.pid) - cpu
        # Not timed: an empty collection and uploads folder for the next round, on both sides alike.
        (await http.delete("/images")).raise_for_status()
    megabytes = large_count * len(large) / MB
    return UploadRun(
        images_per_s=images / small_s,
        cpu_ms_per_image=small_cpu * 1000 / images,
        mb_per_s=megabytes / large_s,
        cpu_ms_per_mb=large_cpu * 1000 / megabytes,
    )


def describe(runs: list[HeadRun]) -> str:
    healthz = [ms for run in runs for ms in run.healthz_ms]
    answers = ",".join(sorted({run.answer for run in runs}))
    median = statistics.median(healthz) if healthz else 0.0
    return (
        f"{answers:>10} {statistics.median(run.seconds for run in runs):9.3f} "
        f"{statistics.median(run.sent_mb for run in runs):9.1f} {median:9.1f} {max(healthz, default=0.0):9.1f} "
        f"{len(healthz):6d} {max(run.peak_over_idle_mb for run in runs):9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--megabytes", type=int, default=60, help="size of the oversized request line and header")
    parser.add_argument("--images", type=int, default=200, help="small uploads per round and side")
    parser.add_argument("--large", type=int, default=4, help="40 MB uploads per round and side")
    arguments = parser.parse_args()
    rng = random.Random(7)
    small = noise_pngs(20, 100 * 1024, rng)
    large = large_bmp(40, rng)
    work = Path(tempfile.mkdtemp(prefix="bench-heads-"))
    heads: dict[tuple[str, str], list[HeadRun]] = {}
    uploads: dict[str, list[UploadRun]] = {side: [] for side in SIDES}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        ferretdb = stack.enter_context(start_ferretdb(work / "ferretdb"))
        services = {}
        for side, http in SIDES.items():
            target = Target(
                uri=f"{ferretdb.uri.rstrip('/')}/bench_heads_{side}",
                database=f"bench_heads_{side}",
                sqlite_directory=ferretdb.state_dir,
            )
            service = Service(target=target, uploads=work / side, log_path=work / f"{side}.log", http=http)
            stack.callback(service.stop)
            with httpx.Client(base_url=service.base_url) as client:
                service.wait_until_ready(client)
            services[side] = service
            # Not counted: the first uploads into a new database and folder are slower on either side.
            asyncio.run(measure_uploads(service, -1, small, large, 20, 1))
        # Uploads first: see the docstring.
        for round_index in range(arguments.rounds):
            for side in list(SIDES) if round_index % 2 == 0 else list(reversed(SIDES)):
                upload_run = asyncio.run(
                    measure_uploads(services[side], round_index, small, large, arguments.images, arguments.large)
                )
                uploads[side].append(upload_run)
                print(
                    f"round {round_index + 1} {side:6} uploads {upload_run.images_per_s:.1f} images/s "
                    f"({upload_run.cpu_ms_per_image:.2f} ms CPU each), "
                    f"{upload_run.mb_per_s:.1f} MB/s ({upload_run.cpu_ms_per_mb:.2f} ms/MB)",
                    flush=True,
                )
        for round_index in range(arguments.rounds):
            for side in list(SIDES) if round_index % 2 == 0 else list(reversed(SIDES)):
                for kind in HEADS:
                    run = measure_head(services[side], kind, arguments.megabytes * MB)
                    heads.setdefault((side, kind), []).append(run)
                    print(f"round {round_index + 1} {side:6} {kind:12} {describe([run])}", flush=True)
        for side, service in services.items():
            if service.log_tail():
                print(f"\nThe {side} service logged (last lines):\n{service.log_tail(6)}")
    print(f"\n{arguments.megabytes} MB heads, {arguments.rounds} rounds (medians; healthz and RSS over all of them)")
    print(
        f"{'side':6} {'head':12} {'answer':>10} {'seconds':>9} {'sent MB':>9} {'hz p50':>9} {'hz max':>9} "
        f"{'polls':>6} {'RSS+ MB':>9}"
    )
    for (side, kind), runs in heads.items():
        print(f"{side:6} {kind:12} {describe(runs)}")
    print("\nuploads: the median of the rounds, and after/before in each round")
    for name, unit in [
        ("images_per_s", "small uploads, images/s"),
        ("cpu_ms_per_image", "service CPU per small upload, ms"),
        ("mb_per_s", "large uploads, MB/s"),
        ("cpu_ms_per_mb", "service CPU per large MB, ms"),
    ]:
        before = [getattr(run, name) for run in uploads["before"]]
        after = [getattr(run, name) for run in uploads["after"]]
        ratios = ", ".join(f"{a / b:.2f}" for b, a in zip(before, after, strict=True))
        print(
            f"{unit:34} before {statistics.median(before):7.2f}  after {statistics.median(after):7.2f}  "
            f"({statistics.median(after) / statistics.median(before):.2f}×; rounds {ratios})"
        )


if __name__ == "__main__":
    main()
