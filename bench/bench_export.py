"""`GET /export` of a rare filter: a baseline revision beside the working tree, on one database.

Both builds serve the same embedded database (FerretDB 1.24 on SQLite, the service told where
its files are, as `make run` does) and the same uploads folder, each as a process of its own
(`python -m scripts.run_service` of its own source tree, with the database given, so it starts
nothing else), at the same time on two ports: the workload only reads. The baseline (`--baseline`,
build A) is checked out into a temporary `git worktree add --detach` and run with this venv's
Python, `PYTHONPATH` and working directory pointing at it; build B is this working tree.

`--documents` documents are planted with PyMongo as the service stores them, before either
service starts. Only the `--matches` that `filter={"data.part.number": "PN-RARE"}` selects,
spread evenly through the collection, have files: ~100 KB noise JPEGs and PNGs at their `file`
path. Then one warm-up export per build and `--repeat` rounds of one each, alternating which
build goes first, every archive downloaded whole to a file: time to first byte and total. Every
archive is checked: a valid zip holding exactly the matches, each with the bytes planted (its
checksum), mongodb_data.json listing that many images, mongodb_data.xlsx with a row each.

    .venv/bin/python -m bench.bench_export [--baseline a2fc977] [--documents 20000] [--matches 200]
                                           [--repeat 5] [--json PATH]

It prints figures and never asserts on them; a wrong archive or a failed export is printed with
`!!!`, left out of the figures, and makes the exit code 1. Interrupted (Ctrl-C, SIGTERM), it
stops both services and FerretDB, removes the worktree and its temp files, and prints the
rounds already done. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from openpyxl import load_workbook
from pymongo import MongoClient

from app.domain.archives.export import JSON_NAME, XLSX_NAME
from app.domain.images.data_keys import data_keys
from app.models import to_stored_time
from bench.bench_archives import (
    FOLDERS,
    LABELS,
    LONG_REQUEST,
    SERVICE_VARIABLES,
    STOP_TIMEOUT_S,
    TIME_START,
    cpu_seconds,
    noise_jpeg,
    noise_pngs,
    progress,
    read_status_kb,
    wait_until_serving,
)
from scripts.servers import REPO_ROOT, free_port, start_ferretdb

DATABASE = "image_storage"
COLLECTION = "images"  # app.models.Image.Settings.name
RARE = "PN-RARE"
FILTER = json.dumps({"data.part.number": RARE})
DISTINCT_SAMPLES = 20  # half JPEGs, half PNGs; the matches take them in turn
SAMPLE_BYTES = 100 * 1024
PLANT_BATCH = 5000
# Start-up builds the indexes over the planted collection before `GET /` reports connected.
READY_TIMEOUT_S = 180.0
# Then each service's maintenance runs in the background (a pass over the collection on
# FerretDB): the rounds start once the services and FerretDB have gone quiet.
SETTLE_LIMIT_S = 120.0
SETTLE_CPU_S = 0.1  # CPU seconds, all three processes together, over one second
LOG_TAIL_LINES = 12
MB = 1024 * 1024

Document = dict[str, Any]


# -- the data ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Sample:
    content: bytes
    width: int
    height: int
    content_type: str
    extension: str
    checksum: str  # SHA-256 of `content`, hex, as the service records it


def samples(count: int, target_bytes: int, rng: random.Random) -> list[Sample]:
    """`count` distinct noise images of about `target_bytes`, JPEGs and PNGs in turn."""
    made = []
    for index in range(count):
        if index % 2 == 0:
            content, side = noise_jpeg(target_bytes, rng)
            kind, extension = "jpeg", "jpg"
        else:
            blob = noise_pngs(1, target_bytes, rng)[0]
            content, side, kind, extension = blob.content, blob.width, "png", "png"
        made.append(
            Sample(
                content=content,
                width=side,
                height=side,
                content_type=f"image/{kind}",
                extension=extension,
                checksum=hashlib.sha256(content).hexdigest(),
            )
        )
    return made


def match_indexes(documents: int, matches: int) -> list[int]:
    """Which documents match: `matches` of them, evenly through the collection (in `_id` and
    `time` order alike), none at either end."""
    step = documents // matches
    return [ordinal * documents // matches + step // 2 for ordinal in range(matches)]


def image_document(index: int, sample: Sample, *, match: bool) -> Document:
    """As `Uploads.upload` stores a new image (app/domain/images/documents.py `new_document`: no
    owner, `__v` for the legacy service, first revision, the file's checksum); no `_id`, the
    driver adds one."""
    number = RARE if match else f"PN-{index % 1000:04d}"
    data = {"label": LABELS[index % len(LABELS)], "part": {"number": number, "rev": index % 7}, "index": index}
    return {
        "file": f"set{index % FOLDERS}/img{index:06d}.{sample.extension}",
        "userId": None,
        "time": to_stored_time(TIME_START + timedelta(seconds=index)),
        "data": data,
        "dataKeys": data_keys(data),
        "size": len(sample.content),
        "contentType": sample.content_type,
        "width": sample.width,
        "height": sample.height,
        "__v": 0,
        "revision": 1,
        "checksum": sample.checksum,
    }


def plant(uri: str, uploads: Path, documents: int, matches: int, pool: list[Sample]) -> dict[str, str]:
    """The documents, and the matches' files; the checksum of each match by its `file`."""
    ordinals = {index: ordinal for ordinal, index in enumerate(match_indexes(documents, matches))}
    expected: dict[str, str] = {}
    client: MongoClient[Document] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        images = client[DATABASE][COLLECTION]
        batch: list[Document] = []
        for index in range(documents):
            ordinal = ordinals.get(index)
            sample = pool[(index if ordinal is None else ordinal) % len(pool)]
            document = image_document(index, sample, match=ordinal is not None)
            if ordinal is not None:
                path = uploads / document["file"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sample.content)
                expected[document["file"]] = sample.checksum
            batch.append(document)
            if len(batch) == PLANT_BATCH or index == documents - 1:
                images.insert_many(batch, ordered=False)
                batch = []
    finally:
        client.close()
    return expected


# -- the two builds ----------------------------------------------------------------------------


def git(*arguments: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), *arguments], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"`git {' '.join(arguments)}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def check_out(stack: ExitStack, revision: str, path: Path) -> None:
    """`revision` at `path`, a detached worktree of this repository, removed when `stack` closes."""
    stack.callback(remove_worktree, path)  # first: an interrupted `add` leaves one half made
    git("worktree", "add", "--detach", "--quiet", str(path), revision)


def remove_worktree(path: Path) -> None:
    with suppress(RuntimeError):
        git("worktree", "remove", "--force", str(path))
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    with suppress(RuntimeError):
        git("worktree", "prune")


def working_tree_label() -> str:
    changed = git("status", "--porcelain", "--", "app", "scripts")
    return f"working tree at {git('rev-parse', '--short', 'HEAD')}" + (" + uncommitted changes" if changed else "")


class Build:
    """One build of the service: `python -m scripts.run_service` of a source tree, its own
    process (and session: a Ctrl-C reaches only the bench, which then stops it)."""

    def __init__(self, *, name: str, label: str, root: Path, environment: dict[str, str], log_path: Path) -> None:
        self.name, self.label, self.root, self.log_path = name, label, root, log_path
        self.port = free_port()
        self.env = {
            key: value
            for key, value in os.environ.items()
            # Whatever the shell exports (S3, auth, user scope, limits), both measure the same
            # path: local storage, no auth, no scope, default limits.
            if key.upper() not in SERVICE_VARIABLES and not key.upper().startswith("S3_") and key != "PYTHONPATH"
        }
        self.env.update(
            environment,
            APP_HOST="127.0.0.1",
            APP_PORT=str(self.port),
            LOG_LEVEL="WARNING",
            # Ahead of the venv's editable install of this working tree (a finder that comes
            # after the path), as is the working directory: `app` and `scripts` from `root`.
            PYTHONPATH=str(root),
        )
        self.app_path = self._app_path()
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss_mb: float | None = None
        self.log = ""

    def _app_path(self) -> str:
        """Where this build's Python finds `app`, checked to be under `root`."""
        result = subprocess.run(
            [sys.executable, "-c", "import app; print(app.__file__)"],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        found = result.stdout.strip()
        if result.returncode != 0 or not Path(found).resolve().is_relative_to(self.root.resolve()):
            raise RuntimeError(f"build {self.name} would not run {self.root}'s app: {found or result.stderr}")
        return found

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, http: httpx.Client) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scripts.run_service"],
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_serving(
            http, self.process, name=f"build {self.name}", log_tail=self.log_tail, timeout=READY_TIMEOUT_S, interval=0.2
        )

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful stop, then run_service's exit), SIGKILL past the deadline;
        its peak RSS and log kept for the report."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with suppress(OSError):
                self.peak_rss_mb = read_status_kb(self.process.pid, "VmHWM")["VmHWM"] / 1024
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log = self.log_tail()

    def log_tail(self) -> str:
        """The last lines of its log but uvicorn's start and stop notices (INFO whatever LOG_LEVEL)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join([line for line in lines if " INFO uvicorn.error: " not in line][-LOG_TAIL_LINES:])


def settle(pids: list[int]) -> float:
    """Wait until the processes together spend under SETTLE_CPU_S of CPU in a second (their
    start-up work done), at most SETTLE_LIMIT_S; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_LIMIT_S:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(pid) for pid in pids) - before < SETTLE_CPU_S:
            break
    return time.monotonic() - started


# -- one export --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Download:
    build: str
    round: int  # 0: the warm-up
    total_s: float
    first_byte_s: float | None = None
    archive_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def download(http: httpx.Client, build: str, round_index: int, archive: Path) -> Download:
    """`GET /export?filter=...` streamed whole to `archive`, timed from the request's start."""
    started = time.perf_counter()
    first: float | None = None
    with (
        archive.open("wb") as out,
        http.stream("GET", "/export", params={"filter": FILTER}, timeout=LONG_REQUEST) as response,
    ):
        if response.status_code != 200:
            response.read()
            problem = f"GET /export answered HTTP {response.status_code}: {response.text[:300]}"
            return Download(build=build, round=round_index, total_s=time.perf_counter() - started, problems=[problem])
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter()
            out.write(chunk)
    total = time.perf_counter() - started
    return Download(
        build=build,
        round=round_index,
        total_s=total,
        first_byte_s=None if first is None else first - started,
        archive_bytes=archive.stat().st_size,
    )


def check_archive(archive: Path, expected: dict[str, str]) -> list[str]:
    """What is wrong with the archive: entries, bytes (CRC and checksum), the JSON, the workbook."""
    problems = []
    wanted = {*expected, JSON_NAME, XLSX_NAME}
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            if len(names) != len(wanted) or set(names) != wanted:
                missing, unexpected = sorted(wanted - set(names)), sorted(set(names) - wanted)
                problems.append(
                    f"{len(names)} entries, expected {len(wanted)} (the {len(expected)} matches + {JSON_NAME} + "
                    f"{XLSX_NAME}); missing {missing[:3]}, unexpected {unexpected[:3]}"
                )
            # read() checks each entry's CRC too (BadZipFile).
            changed = [
                name
                for name in expected
                if name in names and hashlib.sha256(zipped.read(name)).hexdigest() != expected[name]
            ]
            if changed:
                problems.append(f"{len(changed)} images hold other bytes than planted, e.g. {changed[0]}")
            if JSON_NAME in names:
                listed = json.loads(zipped.read(JSON_NAME))
                files = {entry.get("file") for entry in listed}
                flagged = [entry["file"] for entry in listed if entry.get("fileMissing") or entry.get("fileChanged")]
                if len(listed) != len(expected) or files != set(expected) or flagged:
                    problems.append(
                        f"{JSON_NAME} lists {len(listed)} images ({len(files & set(expected))} of the matches), "
                        f"expected {len(expected)}; flagged without their file: {flagged[:3]}"
                    )
            if XLSX_NAME in names:
                workbook = load_workbook(io.BytesIO(zipped.read(XLSX_NAME)), read_only=True)
                rows = sum(1 for _ in workbook.worksheets[0].iter_rows()) - 1  # less the header
                workbook.close()
                if rows != len(expected):
                    problems.append(f"{XLSX_NAME} has {rows} rows, expected {len(expected)}")
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
        problems.append(f"not a valid archive: {type(error).__name__}: {error}")
    return problems


# -- the figures -------------------------------------------------------------------------------


def summarise(name: str, downloads: list[Download], matches: int) -> dict[str, Any]:
    """A build's timed rounds (warm-up and failed downloads left out)."""
    timed = [entry for entry in downloads if entry.build == name and entry.round > 0 and not entry.problems]
    if not timed:
        return {"rounds": 0}
    totals = [entry.total_s for entry in timed]
    firsts = [entry.first_byte_s for entry in timed if entry.first_byte_s is not None]
    median = statistics.median(totals)
    return {
        "rounds": len(timed),
        "median_s": median,
        "min_s": min(totals),
        "median_first_byte_s": statistics.median(firsts) if firsts else None,
        "images_per_s": matches / median,
        "best_images_per_s": matches / min(totals),
        "mb_per_s": statistics.median(entry.archive_bytes for entry in timed) / MB / median,
    }


def paired_ratios(downloads: list[Download]) -> list[float]:
    """B's throughput over A's in each timed round where both succeeded (A's time / B's)."""
    by_round: dict[int, dict[str, float]] = {}
    for entry in downloads:
        if entry.round > 0 and not entry.problems:
            by_round.setdefault(entry.round, {})[entry.build] = entry.total_s
    return [times["A"] / times["B"] for _, times in sorted(by_round.items()) if {"A", "B"} <= times.keys()]


def rounds_done(report: dict[str, Any]) -> str:
    done = max((entry["round"] for entry in report["downloads"]), default=0)
    return f"{done} rounds" if done == report["repeat"] else f"{done} of {report['repeat']} rounds"


def render(report: dict[str, Any]) -> str:
    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        "",
        f"GET /export?filter={report['filter']}: {report['matches']:,} matches of {report['documents']:,} "
        f"documents ({report['match_mb']:.1f} MB of JPEGs and PNGs), {rounds_done(report)} after a warm-up",
        f"FerretDB 1.24 on SQLite, the services reading its files; Python {report['python']}, "
        f"{report['cpus']} CPUs, load average at start {report['load_average_start'][0]:.1f}, "
        f"at end {report['load_average_end'][0]:.1f}",
        "",
        f"{'build':<6}{'median s':>10}{'min s':>9}{'1st byte s':>12}{'images/s':>10}{'best':>8}{'MB/s':>7}"
        f"{'peak RSS MB':>13}  source",
    ]
    for build in report["builds"]:
        figures = build["figures"]
        lines.append(
            f"{build['name']:<6}{number(figures.get('median_s')):>10}{number(figures.get('min_s')):>9}"
            f"{number(figures.get('median_first_byte_s')):>12}{number(figures.get('images_per_s'), 1):>10}"
            f"{number(figures.get('best_images_per_s'), 1):>8}{number(figures.get('mb_per_s'), 1):>7}"
            f"{number(build['peak_rss_mb'], 1):>13}  {build['label']}"
        )
    ratio, rounds = report["ratio"], report["paired_ratios"]
    if ratio is not None:
        spread = f"; per round {min(rounds):.2f}×–{max(rounds):.2f}×" if rounds else ""
        lines.append(f"\nB/A throughput: {ratio:.2f}× (of the medians){spread}; issue 22 asks for ≥ 3.5× at 20,000")
    lines.append("(images/s: matches over the median total; best: over the fastest; peak RSS: VmHWM at the end)")
    for problem in report["problems"]:
        lines.append(f"!!! {problem}")
    for build in report["builds"]:
        if build["log"].strip():
            lines.append(f"build {build['name']} logged (last lines):")
            lines += [f"    {line}" for line in build["log"].splitlines()]
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_export", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="a2fc977", metavar="REV", help="build A's revision (default a2fc977)")
    parser.add_argument("--documents", type=int, default=20_000, help="documents planted (default 20000)")
    parser.add_argument("--matches", type=int, default=200, help="of which match the filter, with files (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.matches <= args.documents or args.repeat < 1:
        parser.error("needs 1 <= --matches <= --documents and --repeat >= 1")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads the processes' CPU and memory from /proc: Linux only")
    try:
        args.baseline = git("rev-parse", "--short", f"{args.baseline}^{{commit}}")
    except RuntimeError as error:
        parser.error(f"--baseline {args.baseline}: {error}")
    return args


def _interrupt_on_sigterm(signum: int, _frame: object) -> None:
    # SIGTERM's default kills at once, leaving two services, FerretDB and a worktree behind; as
    # Ctrl-C's exception it unwinds the ExitStack, which stops and removes them, and the rounds
    # done are still printed.
    raise KeyboardInterrupt


def _shield() -> None:
    # The clean-up runs to the end: a second Ctrl-C would leave a worktree registered in git.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run(args: argparse.Namespace, builds: list[Build], downloads: list[Download], report: dict[str, Any]) -> None:
    with ExitStack() as stack:
        try:
            measure(args, stack, builds, downloads, report)
        finally:
            _shield()  # before the stack stops the services and removes the worktree


def measure(
    args: argparse.Namespace,
    stack: ExitStack,
    builds: list[Build],
    downloads: list[Download],
    report: dict[str, Any],
) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    check_out(stack, args.baseline, work / "baseline")
    ferretdb = stack.enter_context(start_ferretdb(work / "ferretdb"))
    uploads = work / "uploads"
    uploads.mkdir()
    pool = samples(DISTINCT_SAMPLES, SAMPLE_BYTES, random.Random(22))
    progress(f"planting {args.documents:,} documents, {args.matches:,} of them with files")
    started = time.perf_counter()
    uri = f"{ferretdb.uri}{DATABASE}"
    expected = plant(uri, uploads, args.documents, args.matches, pool)
    report["plant_s"] = time.perf_counter() - started
    report["match_mb"] = sum((uploads / name).stat().st_size for name in expected) / MB

    environment = {
        "MONGODB_CONNECTION_STRING": uri,
        "FERRETDB_SQLITE_DIRECTORY": str(ferretdb.state_dir),
        "UPLOADS_DIRECTORY": str(uploads),
    }
    sources = {"A": (work / "baseline", args.baseline), "B": (REPO_ROOT, working_tree_label())}
    clients: dict[str, httpx.Client] = {}
    for name, (root, label) in sources.items():
        build = Build(name=name, label=label, root=root, environment=environment, log_path=work / f"{name}.log")
        builds.append(build)
        stack.callback(build.stop)
        clients[name] = stack.enter_context(httpx.Client(base_url=build.base_url, trust_env=False))
        progress(f"starting build {name}: {label} (app from {build.app_path})")
        build.start(clients[name])  # one after the other: each builds the indexes it misses
    pids = [ferretdb.process.pid, *(build.process.pid for build in builds if build.process is not None)]
    progress(f"both up; quiet after {settle(pids):.0f} s")

    for round_index in range(args.repeat + 1):
        order = ["A", "B"] if round_index % 2 == 0 else ["B", "A"]
        for name in order:
            archive = work / f"{name}.zip"
            done = download(clients[name], name, round_index, archive)
            if not done.problems:
                done.problems = check_archive(archive, expected)
            downloads.append(done)
            what = "warm-up" if round_index == 0 else f"round {round_index}"
            first = "-" if done.first_byte_s is None else f"{done.first_byte_s:.2f}"
            progress(
                f"{what} {name}: {done.total_s:.2f} s (first byte {first} s), "
                f"{done.archive_bytes / MB:.1f} MB" + "".join(f"\n  !!! {problem}" for problem in done.problems)
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "filter": FILTER,
        "documents": args.documents,
        "matches": args.matches,
        "repeat": args.repeat,
        "match_mb": 0.0,
    }
    builds: list[Build] = []
    downloads: list[Download] = []
    interrupted = False
    try:
        run(args, builds, downloads, report)
    except KeyboardInterrupt:
        interrupted = True
    summaries = {build.name: summarise(build.name, downloads, args.matches) for build in builds}
    speeds = [summaries.get(name, {}).get("images_per_s") for name in ("A", "B")]
    report.update(
        load_average_end=os.getloadavg(),
        builds=[
            {
                "name": build.name,
                "label": build.label,
                "app": build.app_path,
                "figures": summaries[build.name],
                "peak_rss_mb": build.peak_rss_mb,
                "log": build.log,
            }
            for build in builds
        ],
        ratio=speeds[1] / speeds[0] if speeds[0] and speeds[1] else None,
        paired_ratios=paired_ratios(downloads),
        downloads=[asdict(entry) for entry in downloads],
        problems=[
            f"build {entry.build}, round {entry.round}: {problem}" for entry in downloads for problem in entry.problems
        ],
    )
    if downloads:
        print(render(report))
    if interrupted:
        print("interrupted", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 130 if interrupted else 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
