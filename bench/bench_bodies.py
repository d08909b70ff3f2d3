"""Hostile bodies against a real service process: its memory, and whether it keeps answering.

Starts the service (`scripts/run_service.py`, its own throwaway FerretDB, local storage) and
sends every body-taking route a 2 GB body and a 300 MB body, each once with Content-Length and
once streamed without it, and a body that stalls after its first bytes. Meanwhile it samples the
process's RSS (/proc/<pid>/status) and times `GET /healthz` every 50 ms.

    .venv/bin/python -m bench.bench_bodies [--json PATH]

It prints figures (peak RSS over idle, slowest /healthz, the status each body got) and never
asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from scripts.servers import REPO_ROOT, free_port

GB = 1024**3
MB = 1024**2
CHUNK = 1 * MB
STALL_SECONDS = 3.0
BOUNDARY = "bench-boundary"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def service_rss_mb(process: subprocess.Popen[bytes]) -> float:
    """The uvicorn process: run_service's own process (FerretDB is a separate process group)."""
    return rss_mb(process.pid)


def framing(path: str, content_type: str) -> tuple[bytes, bytes]:
    """What goes before and after the filler, so that a multipart body is a valid form whose
    file part is the filler (the parser streams it to a spool file, the worst case)."""
    if not content_type.startswith("multipart/"):
        return b'{"blob": "', b'"}'
    before = b""
    if path == "/graphql":
        operations = json.dumps(
            {"query": "mutation($f: Upload!) { uploadImage(file: $f) { id } }", "variables": {"f": None}}
        )
        before += _part("operations", operations.encode()) + _part("map", b'{"0": ["variables.f"]}')
        name = "0"
    else:
        name = "archive" if path == "/import" else "image"
    before += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="a.png"\r\n\r\n'.encode()
    return before, f"\r\n--{BOUNDARY}--\r\n".encode()


def _part(name: str, value: bytes) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"


async def body(before: bytes, after: bytes, filler: int) -> AsyncIterator[bytes]:
    yield before
    sent = 0
    while sent < filler:
        size = min(CHUNK, filler - sent)
        sent += size
        yield b"0" * size
    yield after


async def send(url: str, method: str, path: str, content_type: str, size: int, mode: str) -> str:
    before, after = framing(path, content_type)
    headers = {"content-type": content_type, "apollo-require-preflight": "1"}
    if mode == "stalled":
        return await send_stalled(url, method, path, headers, before)
    filler = size - len(before) - len(after)
    if mode == "declared":
        headers["content-length"] = str(size)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            response = await client.request(method, path, content=body(before, after, filler), headers=headers)
            return str(response.status_code)
    except httpx.HTTPError as error:
        return f"cut ({type(error).__name__})"


async def send_stalled(url: str, method: str, path: str, headers: dict[str, str], before: bytes) -> str:
    """A body declared within the route's limit (1 MB of JSON, 300 MB of upload), its first bytes,
    then nothing: the server's answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    declared = 300 * MB if headers["content-type"].startswith("multipart/") else MB
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {declared}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + before + b"0" * 1024)
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), STALL_SECONDS * 5)
        return status_line.decode().split()[1] if status_line else "closed"
    except TimeoutError:
        return "no answer"
    finally:
        writer.close()


async def watch(url: str, process: subprocess.Popen[bytes], stop: asyncio.Event, samples: dict[str, float]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get("/healthz")
            samples["healthz_ms"] = max(samples["healthz_ms"], (time.perf_counter() - started) * 1000)
            samples["rss_mb"] = max(samples["rss_mb"], service_rss_mb(process))
            await asyncio.sleep(0.05)


async def run(url: str, process: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        png = bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
        created = await client.post("/images", files={"image": ("b.png", png)}, data={"file": "b.png"})
        image_id = created.json()["_id"]
    routes = [
        ("PATCH", f"/images/{image_id}", "application/json"),
        ("PUT", f"/images/{image_id}", "application/json"),
        ("PATCH", "/images", "application/json"),
        ("POST", "/graphql", "application/json"),
        ("POST", "/graphql", f"multipart/form-data; boundary={BOUNDARY}"),
        ("POST", "/images", f"multipart/form-data; boundary={BOUNDARY}"),
        ("POST", "/import", f"multipart/form-data; boundary={BOUNDARY}"),
    ]
    results = []
    await asyncio.sleep(1)
    idle = service_rss_mb(process)
    for method, path, content_type in routes:
        for size, mode in [
            (2 * GB, "declared"),
            (2 * GB, "streamed"),
            (300 * MB, "declared"),
            (300 * MB, "streamed"),
            (MB, "stalled"),
        ]:
            samples = {"healthz_ms": 0.0, "rss_mb": idle}
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(url, process, stop, samples))
            started = time.perf_counter()
            status = await send(url, method, path, content_type, size, mode)
            seconds = time.perf_counter() - started
            stop.set()
            await watcher
            row = {
                "route": f"{method} {path.replace(image_id, '{id}')} ({content_type.split(';')[0]})",
                "body": "stalled" if mode == "stalled" else f"{size // MB} MB {mode}",
                "status": status,
                "seconds": round(seconds, 2),
                "peak_rss_over_idle_mb": round(samples["rss_mb"] - idle, 1),
                "slowest_healthz_ms": round(samples["healthz_ms"], 1),
            }
            results.append(row)
            print(
                f"{row['route']:48} {row['body']:18} {row['status']:>12} {row['seconds']:7.2f} s "
                f"{row['peak_rss_over_idle_mb']:7.1f} MB {row['slowest_healthz_ms']:7.1f} ms",
                flush=True,
            )
    print(f"idle RSS {idle:.1f} MB")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-bodies-") as work:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_"))}
        env |= {
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "DATA_DIRECTORY": str(Path(work) / "data"),
            "UPLOADS_DIRECTORY": str(Path(work) / "uploads"),
            "REQUEST_BODY_TIMEOUT_SECONDS": str(STALL_SECONDS),
            "LOG_LEVEL": "WARNING",
        }
        log = (Path(work) / "service.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.run_service"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            print(f"{'route':48} {'body':18} {'status':>12} {'time':>9} {'RSS+':>10} {'/healthz':>10}")
            rows = asyncio.run(run(url, process))
            if arguments.json:
                arguments.json.write_text(json.dumps(rows, indent=2))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


if __name__ == "__main__":
    main()
