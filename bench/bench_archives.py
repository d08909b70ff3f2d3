"""Export and import of whole datasets as `.zip`: throughput, and whether memory stays flat.

For each image count it seeds a fresh database and uploads directory, starts the real service
as a process of its own (so its memory can be read from /proc), downloads `GET /export`,
deletes everything with `DELETE /images`, uploads the archive again to `POST /import`, and
checks that every image came back.

    .venv/bin/python -m bench.bench_archives [--images 2000 8000] [--size-kb 100] [--json PATH]

With `MONGODB_CONNECTION_STRING` set it uses that server (a fresh `bench_<random>` database
per image count, dropped at the end); otherwise it starts a throwaway FerretDB per count. It
prints figures and never asserts on them: timings depend on the machine. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from bson import ObjectId
from PIL import Image as PillowImage
from pymongo import MongoClient
from pymongo.collection import Collection

from app.config import Settings
from app.domain.archives.export import JSON_NAME, XLSX_NAME
from app.domain.images.data_keys import data_keys
from app.models import to_stored_time
from scripts.servers import REPO_ROOT, free_port, start_ferretdb

COLLECTION = "images"  # app.models.Image.Settings.name
DISTINCT_BLOBS = 20
FOLDERS = 50
INSERT_BATCH = 1000
LABELS = ("cat", "dog", "bird", "fish", "horse", "cow", "sheep", "car", "bus", "bike")
TIME_START = datetime(2023, 1, 1, tzinfo=UTC)
SAMPLE_INTERVAL_S = 0.05
# Import runs for long on FerretDB; how often to show (and record) how far it got.
PROGRESS_INTERVAL_S = 30.0
GROWTH_THRESHOLD = 0.20  # a larger peak at the larger count than this counts as "grows"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0  # beyond the service's own shutdown grace (30 s by default)
# Export and import stream for minutes on FerretDB; only the connection gets a deadline.
LONG_REQUEST = httpx.Timeout(30.0, read=None, write=None)
SHORT_REQUEST = httpx.Timeout(30.0)
LOG_TAIL_LINES = 20
MB = 1024 * 1024
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

Document = dict[str, Any]


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Target:
    uri: str  # with the bench database in its path, as the service takes it
    database: str
    # A FerretDB started here keeps its SQLite files there; the service is told, as `make run` does.
    sqlite_directory: Path | None = None
    server_pid: int | None = None  # a FerretDB started here: its process, for its CPU time


def open_target(stack: ExitStack, state_dir: Path) -> Target:
    """A fresh database on the given server, or on a FerretDB started here (stopped by `stack`)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    external = os.environ.get("MONGODB_CONNECTION_STRING")
    if external:
        # Keep the query string (authSource, tls...) and swap the database for our own.
        return Target(uri=urlsplit(external)._replace(path=f"/{name}").geturl(), database=name)
    server = stack.enter_context(start_ferretdb(state_dir))
    return Target(
        uri=f"{server.uri.rstrip('/')}/{name}",
        database=name,
        sqlite_directory=server.state_dir,
        server_pid=server.process.pid,
    )


def describe_server(client: MongoClient[Document]) -> str:
    info = client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return f"FerretDB {info['ferretdbVersion']} (MongoDB {info.get('version', '?')} wire protocol)"
    return f"MongoDB {info.get('version', '?')}"


# -- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Blob:
    content: bytes
    width: int
    height: int


def noise_pngs(count: int, target_bytes: int, rng: random.Random) -> list[Blob]:
    """Distinct random-noise PNGs of about `target_bytes` each.

    Noise does not compress, so a PNG of it weighs about 3 bytes per RGB pixel: a square of
    that area lands near the target without trial and error.
    """
    side = max(1, round(math.sqrt(target_bytes / 3)))
    blobs = []
    for _ in range(count):
        picture = PillowImage.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        blobs.append(Blob(content=buffer.getvalue(), width=side, height=side))
    return blobs


def noise_jpeg(target_bytes: int, rng: random.Random) -> tuple[bytes, int]:
    """A square noise JPEG of about `target_bytes`, and its side: noise weighs about the same per
    pixel at any size, so a small probe gives the side."""
    probe = 128
    side = max(8, round(probe * math.sqrt(target_bytes / len(_jpeg(probe, rng)))))
    return _jpeg(side, rng), side


def _jpeg(side: int, rng: random.Random) -> bytes:
    picture = PillowImage.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def image_file(index: int) -> str:
    return f"set{index % FOLDERS}/img{index}.png"


def image_document(index: int, blob: Blob) -> Document:
    """The document as `Uploads.upload` stores it (no `_id`: the driver adds one)."""
    data = {
        "label": LABELS[index % len(LABELS)],
        "part": {"number": f"PN-{index % 1000:04d}", "rev": index % 7},
        "index": index,
    }
    return {
        "file": image_file(index),
        "time": to_stored_time(TIME_START + timedelta(seconds=index)),
        "data": data,
        "dataKeys": data_keys(data),
        "userId": None,
        "size": len(blob.content),
        "contentType": "image/png",
        "width": blob.width,
        "height": blob.height,
    }


def seed(collection: Collection[Document], uploads: Path, count: int, blobs: list[Blob]) -> list[ObjectId]:
    """Write `count` files (the storage key is the `file` path: no user scope) and their
    documents; the ids, in insertion order."""
    ids: list[ObjectId] = []
    batch: list[Document] = []
    for index in range(count):
        blob = blobs[index % len(blobs)]
        path = uploads / image_file(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob.content)
        batch.append(image_document(index, blob))
        if len(batch) == INSERT_BATCH or index == count - 1:
            # Unordered: nothing depends on insertion order, and the server may then skip
            # the one-by-one bookkeeping an ordered batch needs to stop at the first error.
            ids.extend(collection.insert_many(batch, ordered=False).inserted_ids)
            batch = []
    return ids


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


class ImportProgress:
    """Counts the files the import has written so far, every 30 s, in a thread.

    Files rather than documents: a directory walk costs milliseconds and stays out of the
    database being measured (a count there is a full scan on FerretDB). The service writes an
    image's file just before its document, so the two counts differ by one at most.
    """

    def __init__(self, uploads: Path, total: int, label: str, interval: float = PROGRESS_INTERVAL_S) -> None:
        self.uploads, self.total, self.label, self.interval = uploads, total, label, interval
        self.timeline: list[tuple[float, int]] = []  # (seconds since the start, files written)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-progress", daemon=True)

    def __enter__(self) -> ImportProgress:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed, files = time.perf_counter() - self._started, count_files(self.uploads)
            previous_elapsed, previous_files = self.timeline[-1] if self.timeline else (0.0, 0)
            self.timeline.append((elapsed, files))
            rate = (files - previous_files) / (elapsed - previous_elapsed)
            progress(f"{self.label} {files}/{self.total} images after {elapsed:.0f} s ({rate:.1f} images/s lately)")


# -- memory and CPU of the service process -------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing bracket: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def read_status_kb(pid: int, *fields: str) -> dict[str, int]:
    """`VmRSS`, `VmHWM`... of a process, in kB, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            name, _, rest = line.partition(b":")
            if name.decode() in fields:
                values[name.decode()] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0); whether that worked.

    Then VmHWM read at the end of a phase is that phase's exact peak, which the 50 ms samples
    can only approach from below.
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class PeakTracker:
    """The process's lifetime peak RSS, kept across the per-phase resets of VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._peak_kb = 0

    def reset(self) -> bool:
        """Remember the peak so far, then reset VmHWM; whether the reset worked."""
        self._peak_kb = max(self._peak_kb, self.hwm_kb())
        return reset_peak(self.pid)

    def hwm_kb(self) -> int:
        return read_status_kb(self.pid, "VmHWM")["VmHWM"]

    def lifetime_peak_kb(self) -> int:
        return max(self._peak_kb, self.hwm_kb())


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread while a phase runs.

    Kept cheap for a 2-core machine shared with the service and the database: one pread of
    /proc/<pid>/status on a descriptor kept open and a bytes search per sample.
    """

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._fd = -1

    def __enter__(self) -> RssSampler:
        self._fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY)
        self._sample()  # the phase's first sample is taken before its work starts
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        with suppress(OSError):  # the process is gone; the samples so far stand
            self._sample()
        os.close(self._fd)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except OSError:
                return

    def _sample(self) -> None:
        text = os.pread(self._fd, 4096, 0)
        start = text.index(b"VmRSS:") + 6
        kilobytes = int(text[start : text.index(b"kB", start)])
        self.samples += 1
        if kilobytes > self.peak_kb:
            self.peak_kb = kilobytes


@dataclass(kw_only=True)
class PhaseMemory:
    sampled_peak_mb: float
    samples: int
    hwm_peak_mb: float | None  # VmHWM reset at the phase start, read at its end; None if unsupported

    @property
    def peak_mb(self) -> float:
        # The samples are a lower bound of the true peak; VmHWM is the true peak.
        return self.hwm_peak_mb if self.hwm_peak_mb is not None else self.sampled_peak_mb


class PhaseWatch:
    """The service's memory over one phase: sampled RSS, and VmHWM when it can be reset."""

    def __init__(self, peaks: PeakTracker) -> None:
        self.peaks = peaks
        self.memory: PhaseMemory | None = None
        self._sampler = RssSampler(peaks.pid)
        self._hwm_reset = False

    def __enter__(self) -> PhaseWatch:
        self._hwm_reset = self.peaks.reset()
        self._sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampler.__exit__(*exc)
        hwm = self.peaks.hwm_kb() / 1024 if self._hwm_reset else None
        self.memory = PhaseMemory(
            sampled_peak_mb=self._sampler.peak_kb / 1024, samples=self._sampler.samples, hwm_peak_mb=hwm
        )


# -- the service -------------------------------------------------------------------------------


SERVICE_VARIABLES = {name.upper() for name in Settings.model_fields}


class Service:
    """`uvicorn app.main:create_app --factory` as a child process, on a free loopback port;
    `http` is uvicorn's `--http` (its default when None). With `served`, `python -m app.server`
    instead, as the container runs it: app/server.py's `serve`, with its uvicorn options."""

    def __init__(
        self,
        *,
        target: Target,
        uploads: Path,
        log_path: Path,
        http: str | None = None,
        served: bool = False,
        root: Path = REPO_ROOT,  # the source tree to run (another revision's worktree, say)
        storage: Mapping[str, str] | None = None,  # S3_* variables: S3 storage instead of `uploads`
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {
            name: value
            for name, value in os.environ.items()
            # Whatever the shell exports (S3, auth, user scope, limits), measure the same path:
            # local storage, no auth, no scope, default limits.
            if name.upper() not in SERVICE_VARIABLES and not name.upper().startswith("S3_")
        }
        # Warnings only, as uvicorn's own `--log-level` below: the log is shown with the figures
        # when the service wrote anything, and an access line per request is not news.
        env.update(MONGODB_CONNECTION_STRING=target.uri, UPLOADS_DIRECTORY=str(uploads), LOG_LEVEL="WARNING")
        env.update(storage or {})
        if target.sqlite_directory is not None:
            env["FERRETDB_SQLITE_DIRECTORY"] = str(target.sqlite_directory)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if http is not None:
            command += ["--http", http]
        if served:
            if http is not None:
                raise ValueError("a service run as served takes the HTTP protocol app/server.py gives it")
            env.update(APP_HOST="127.0.0.1", APP_PORT=str(self.port))
            command = [sys.executable, "-m", "app.server"]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.exit_code: int | None = None
        self.peaks = PeakTracker(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_ready(self, http: httpx.Client) -> None:
        wait_until_serving(http, self.process, name="The service", log_tail=self.log_tail, timeout=READY_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            # uvicorn lets in-flight requests finish on SIGTERM, and an interrupted import
            # would run on for minutes: hence the deadline before SIGKILL.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exit_code = self.process.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# -- the phases --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Seeded:
    service: Service
    uploads: Path
    database: str  # the server's description, for the figures
    server_pid: int | None  # a FerretDB started here, for its CPU time


@dataclass(frozen=True, kw_only=True)
class Workspace:
    workdir: Path
    uploads: Path
    target: Target
    client: MongoClient[Document]  # to the bench database, dropped at the end


def workspace(stack: ExitStack, *, prefix: str) -> Workspace:
    """A temporary folder with an empty uploads folder, and a fresh database (on a FerretDB
    started here unless MONGODB_CONNECTION_STRING says otherwise); all removed by `stack`."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    uploads = workdir / "uploads"
    uploads.mkdir()
    target = open_target(stack, workdir / "ferretdb")
    client: MongoClient[Document] = MongoClient(target.uri, serverSelectionTimeoutMS=10_000)
    stack.callback(client.close)
    stack.callback(client.drop_database, target.database)
    return Workspace(workdir=workdir, uploads=uploads, target=target, client=client)


def seeded_service(stack: ExitStack, *, prefix: str, seed: Callable[[Collection[Document], Path], object]) -> Seeded:
    """A fresh database and uploads folder filled by `seed(collection, uploads)`, and the real
    service on them, ready; all of it removed or stopped by `stack`."""
    space = workspace(stack, prefix=prefix)
    workdir, uploads, target, client = space.workdir, space.uploads, space.target, space.client
    database = describe_server(client)
    seed(client[target.database][COLLECTION], uploads)
    service = Service(target=target, uploads=uploads, log_path=workdir / "service.log")
    stack.callback(service.stop)
    with httpx.Client(base_url=service.base_url, trust_env=False) as http:
        service.wait_until_ready(http)
    return Seeded(service=service, uploads=uploads, database=database, server_pid=target.server_pid)


@dataclass(kw_only=True)
class SizeResult:
    images: int
    database: str = ""
    image_bytes: int = 0  # the seeded files' total
    seed_s: float = 0.0
    baseline_rss_mb: float = 0.0  # the service right after it answered GET / as connected
    archive_bytes: int = 0
    archive_entries: int = 0
    export_ttfb_ms: float | None = None
    export_s: float | None = None
    export_memory: PhaseMemory | None = None
    delete_s: float | None = None
    deleted: int | None = None
    delete_memory: PhaseMemory | None = None
    import_s: float | None = None
    import_answer: Document | None = None
    import_memory: PhaseMemory | None = None
    import_timeline: list[tuple[float, int]] = field(default_factory=list)  # (seconds, images written)
    lifetime_hwm_mb: float | None = None  # the service's peak RSS over its whole life
    problems: list[str] = field(default_factory=list)  # mismatches and errors, verbatim
    service_log: str = ""  # the tail of the service's log, when it wrote anything

    def export_mb_s(self) -> float | None:
        return self.archive_bytes / MB / self.export_s if self.export_s else None

    def import_mb_s(self) -> float | None:
        return self.archive_bytes / MB / self.import_s if self.import_s else None


def run_export(http: httpx.Client, service: Service, archive: Path, result: SizeResult) -> bool:
    with PhaseWatch(service.peaks) as watch, archive.open("wb") as out:
        started = time.perf_counter()
        first: float | None = None
        with http.stream("GET", "/export", timeout=LONG_REQUEST) as response:
            if response.status_code != 200:
                response.read()
                result.problems.append(f"GET /export answered HTTP {response.status_code}: {response.text}")
                return False
            for chunk in response.iter_raw():
                if first is None:
                    first = time.perf_counter()
                out.write(chunk)
        finished = time.perf_counter()
    result.export_memory = watch.memory
    result.export_s = finished - started
    result.export_ttfb_ms = None if first is None else (first - started) * 1000
    result.archive_bytes = archive.stat().st_size

    # The central directory only: cheap, and shows a truncated or short archive at once.
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
    except zipfile.BadZipFile as error:
        result.problems.append(f"the exported archive is not a valid zip: {error}")
        return False
    result.archive_entries = len(names)
    expected = result.images + 2
    if len(names) != expected or JSON_NAME not in names or XLSX_NAME not in names:
        result.problems.append(
            f"the exported archive holds {len(names)} entries, expected {expected} "
            f"(every image + {JSON_NAME} + {XLSX_NAME})"
        )
    return True


def run_delete(
    http: httpx.Client, service: Service, uploads: Path, collection: Collection[Document], result: SizeResult
) -> bool:
    with PhaseWatch(service.peaks) as watch:
        started = time.perf_counter()
        response = http.delete("/images", timeout=LONG_REQUEST)
        result.delete_s = time.perf_counter() - started
    result.delete_memory = watch.memory
    if response.status_code != 200:
        result.problems.append(f"DELETE /images answered HTTP {response.status_code}: {response.text}")
        return False
    result.deleted = response.json().get("deletedCount")
    left_documents = collection.count_documents({})
    left_files = count_files(uploads)
    if result.deleted != result.images or left_documents or left_files:
        result.problems.append(
            f"DELETE /images: deletedCount {result.deleted} of {result.images}; "
            f"{left_documents} documents and {left_files} files left"
        )
        return False
    return True


def run_import(
    http: httpx.Client,
    service: Service,
    archive: Path,
    uploads: Path,
    collection: Collection[Document],
    seeded_ids: list[ObjectId],
    result: SizeResult,
) -> None:
    label = f"[{result.images}] import:"
    with (
        PhaseWatch(service.peaks) as watch,
        ImportProgress(uploads, result.images, label) as ticker,
        archive.open("rb") as upload,
    ):
        started = time.perf_counter()
        # A file object: httpx streams it from disk in chunks rather than reading it whole.
        response = http.post(
            "/import", files={"archive": ("export.zip", upload, "application/zip")}, timeout=LONG_REQUEST
        )
        result.import_s = time.perf_counter() - started
    result.import_memory = watch.memory
    result.import_timeline = ticker.timeline
    if response.status_code != 200:
        result.problems.append(f"POST /import answered HTTP {response.status_code}: {response.text}")
        return
    answer = response.json()
    skipped = answer.get("skipped")
    # The full answer only when short: 8000 skipped entries would drown the report.
    result.import_answer = answer if not skipped or len(skipped) <= 5 else {**answer, "skipped": skipped[:5]}
    if answer.get("imported") != result.images or skipped != []:
        result.problems.append(
            f"POST /import: imported {answer.get('imported')} of {result.images}, "
            f"{len(skipped) if isinstance(skipped, list) else skipped!r} skipped; first skipped: "
            f"{json.dumps(skipped[:5] if isinstance(skipped, list) else skipped)}"
        )
    restored_ids = {document["_id"] for document in collection.find({}, {"_id": 1})}
    files = count_files(uploads)
    if restored_ids != set(seeded_ids) or files != result.images:
        result.problems.append(
            f"after import: {len(restored_ids)} documents ({len(restored_ids & set(seeded_ids))} with their "
            f"original _id) and {files} files, expected {result.images} of each"
        )


def run_size(images: int, blobs: list[Blob]) -> SizeResult:
    result = SizeResult(images=images)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-archives-{images}-")))
        uploads = workdir / "uploads"
        uploads.mkdir()
        archive = workdir / "export.zip"

        target = open_target(stack, workdir / "ferretdb")
        client: MongoClient[Document] = MongoClient(target.uri, serverSelectionTimeoutMS=10_000)
        stack.callback(client.close)
        stack.callback(client.drop_database, target.database)
        result.database = describe_server(client)
        collection = client[target.database][COLLECTION]

        progress(f"[{images}] starting the service ({result.database})")
        service = Service(target=target, uploads=uploads, log_path=workdir / "service.log")
        stack.callback(service.stop)
        try:
            run_phases(service, collection, uploads, archive, blobs, result)
        except Exception as error:  # reported with the figures; the other counts still run
            result.problems.append(f"the run stopped: {type(error).__name__}: {error}")
        with suppress(OSError):  # the service may be gone
            result.lifetime_hwm_mb = service.peaks.lifetime_peak_kb() / 1024
        service.stop()
        # uvicorn shuts down cleanly on SIGTERM and then re-raises it, so -SIGTERM is a clean exit.
        if service.exit_code not in (0, -signal.SIGTERM, None):
            result.problems.append(f"the service exited with code {service.exit_code}")
        result.service_log = service.log_tail()
    for problem in result.problems:
        progress(f"[{images}] !!! {problem}")
    return result


def run_phases(
    service: Service,
    collection: Collection[Document],
    uploads: Path,
    archive: Path,
    blobs: list[Blob],
    result: SizeResult,
) -> None:
    images = result.images
    with httpx.Client(base_url=service.base_url, trust_env=False) as http:
        service.wait_until_ready(http)
        result.baseline_rss_mb = read_status_kb(service.pid, "VmRSS")["VmRSS"] / 1024

        progress(f"[{images}] seeding {images} images")
        started = time.perf_counter()
        seeded_ids = seed(collection, uploads, images, blobs)
        result.seed_s = time.perf_counter() - started
        result.image_bytes = sum(len(blobs[index % len(blobs)].content) for index in range(images))

        progress(f"[{images}] GET /export")
        if not run_export(http, service, archive, result):
            return
        progress(f"[{images}] DELETE /images")
        if not run_delete(http, service, uploads, collection, result):
            return
        progress(f"[{images}] POST /import ({result.archive_bytes / MB:.0f} MB)")
        run_import(http, service, archive, uploads, collection, seeded_ids, result)


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# -- the report --------------------------------------------------------------------------------


def growth(results: list[SizeResult], phase: str) -> Document | None:
    """How the phase's peak RSS at the largest count compares with the smallest count's."""
    measured = [
        (result.images, memory.peak_mb)
        for result in results
        if (memory := getattr(result, f"{phase}_memory")) is not None
    ]
    if len(measured) < 2:
        return None
    (small_n, small_peak), (large_n, large_peak) = min(measured), max(measured)
    if small_n == large_n:
        return None
    ratio = large_peak / small_peak - 1
    return {
        "phase": phase,
        "from_images": small_n,
        "to_images": large_n,
        "from_peak_mb": small_peak,
        "to_peak_mb": large_peak,
        "growth": ratio,
        "grows": ratio > GROWTH_THRESHOLD,
    }


def build_report(
    args: argparse.Namespace, results: list[SizeResult], total_s: float, load_start: tuple[float, float, float]
) -> Document:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # Timings on a shared machine mean little without the load they ran under.
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "database": results[0].database if results else None,
        "size_kb": args.size_kb,
        "sample_interval_s": SAMPLE_INTERVAL_S,
        "results": [
            {**asdict(result), "export_mb_s": result.export_mb_s(), "import_mb_s": result.import_mb_s()}
            for result in results
        ],
        "growth": [entry for phase in ("export", "import") if (entry := growth(results, phase)) is not None],
        "total_seconds": total_s,
    }


def render(report: Document) -> str:
    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def peak(memory: Document | None) -> str:
        return "-" if memory is None else number(memory["hwm_peak_mb"] or memory["sampled_peak_mb"])

    header = (
        "images",
        "archive MB",
        "base RSS MB",
        "exp TTFB ms",
        "exp s",
        "exp MB/s",
        "exp peak MB",
        "del s",
        "imp s",
        "imp MB/s",
        "imp peak MB",
        "HWM MB",
    )
    rows = [header]
    for row in report["results"]:
        rows.append(
            (
                str(row["images"]),
                number(row["archive_bytes"] / MB),
                number(row["baseline_rss_mb"]),
                number(row["export_ttfb_ms"], 0),
                number(row["export_s"]),
                number(row["export_mb_s"]),
                peak(row["export_memory"]),
                number(row["delete_s"]),
                number(row["import_s"]),
                number(row["import_mb_s"]),
                peak(row["import_memory"]),
                number(row["lifetime_hwm_mb"]),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        f"Python {report['python']}, {report['database']}, local storage, ~{report['size_kb']} KB noise PNGs; "
        "service: uvicorn in its own process, client: httpx over loopback",
        f"{report['cpus']} CPUs; load average (1/5/15 min) at start "
        f"{' '.join(f'{value:.1f}' for value in report['load_average_start'])}, at end "
        f"{' '.join(f'{value:.1f}' for value in report['load_average_end'])}",
        "",
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    exact = all(
        memory["hwm_peak_mb"] is not None
        for row in report["results"]
        for memory in (row["export_memory"], row["import_memory"])
        if memory is not None
    )
    lines += [
        "",
        (
            "peak = the service's VmHWM over the phase (reset at its start through /proc/<pid>/clear_refs)"
            if exact
            else "peak = the largest sampled VmRSS (VmHWM could not be reset per phase)"
        )
        + f"; 'sampled' = the largest VmRSS read every {report['sample_interval_s'] * 1000:.0f} ms; "
        "HWM = the service's peak RSS over its whole life (start-up and seeding included).",
    ]
    for row in report["results"]:
        phases = ", ".join(
            f"{name} {number(memory['sampled_peak_mb'])} ({memory['samples']} samples)"
            for name in ("export", "delete", "import")
            if (memory := row[f"{name}_memory"]) is not None
        )
        lines.append(
            f"  {row['images']}: seed {number(row['seed_s'], 2)} s; sampled peaks MB: {phases or '-'}; "
            f"deleted {row['deleted']}; archive entries {row['archive_entries']}"
        )
    for entry in report["growth"]:
        verdict = "GROWS" if entry["grows"] else "flat"
        lines.append(
            f"{entry['phase']} peak RSS {verdict} with the image count: {number(entry['from_peak_mb'])} MB at "
            f"{entry['from_images']} -> {number(entry['to_peak_mb'])} MB at {entry['to_images']} images "
            f"({entry['growth'] * 100:+.0f}%, threshold +{GROWTH_THRESHOLD * 100:.0f}%)"
        )
    if not report["growth"]:
        lines.append("peak RSS growth: needs two different image counts")
    for row in report["results"]:
        for problem in row["problems"]:
            lines.append(f"!!! {row['images']} images: {problem}")
        if row["service_log"].strip():
            lines.append(f"service log ({row['images']} images, last lines):")
            lines += [f"    {line}" for line in row["service_log"].splitlines()]
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_archives", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, nargs="+", default=[2000, 8000], metavar="N", help="image counts (default 2000 8000)"
    )
    parser.add_argument("--size-kb", type=int, default=100, help="approximate size of each image (default 100)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if min(args.images) < 1 or args.size_kb < 1:
        parser.error("--images and --size-kb must be at least 1")
    if not Path("/proc/self/status").exists():
        parser.error("this benchmark reads the service's memory from /proc: Linux only")
    return args


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SIGTERM's default kills at once, leaving the service, FerretDB and a gigabyte of temp
    # files behind; as an exception it unwinds the ExitStacks, which stop and remove them.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started, load_start = time.perf_counter(), os.getloadavg()
    blobs = noise_pngs(DISTINCT_BLOBS, args.size_kb * 1024, random.Random(20231101))
    results: list[SizeResult] = []
    try:
        for images in args.images:
            results.append(run_size(images, blobs))
    finally:
        # Interrupted or not, the counts that finished are worth their figures: a run on
        # FerretDB can take an hour.
        if results:
            report = build_report(args, results, time.perf_counter() - started, load_start)
            print(render(report))
            print(f"total run time {report['total_seconds']:.0f} s")
            if args.json:
                args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())


def wait_until_serving(
    http: httpx.Client,
    process: subprocess.Popen[bytes],
    *,
    name: str,
    log_tail: Callable[[], str],
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Until the service answers `GET /` with its database connected; RuntimeError, with the
    end of its log, if its `process` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n{log_tail()}")
        try:
            response = http.get("/", timeout=SHORT_REQUEST)
            if response.status_code == 200 and response.json()["mongodb"]["connected"]:
                return
            last = f"HTTP {response.status_code}: {response.text}"
        except httpx.TransportError as error:
            last = repr(error)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not ready after {timeout:.0f} s ({last}):\n{log_tail()}")
        time.sleep(interval)
