"""Snapshots keep their bytes across real processes: a `kill -9` right after any step of a
replacement or delete that keeps bytes loses none of them, and a snapshot deleted by one
process while another replaces its images loses nothing another snapshot holds and leaks
nothing once the last snapshot goes. Local and S3 storage."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from app.config import Settings
from app.storage.keys import KEPT, SYSTEM_FOLDER
from app.store.kept import HOLDS
from scripts.servers import REPO_ROOT, free_port
from tests.test_fsck import findings, fsck
from tests.utils.images import make_image
from tests.utils.live import service_environment, wait_until_serving
from tests.utils.s3 import S3Server
from tests.utils.service import upload

# (what the request does, the step after which its process dies), in an order where no crash
# leaves work that the next process's start-up would do through a step that kills it.
CRASH_POINTS = [
    ("delete", "copy"),
    ("delete", "hold"),
    ("delete", "delete"),
    ("replace", "copy"),
    ("replace", "hold"),
    ("replace", "move"),
    ("replace", "replace"),
]


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@contextmanager
def process(env: dict[str, str], log_path: Path, *, crash_after: str | None = None) -> Iterator[tuple[str, Any]]:
    """A service process (one that dies after `crash_after`, if given): its URL and process."""
    port = free_port()
    module = "scripts.run_service" if crash_after is None else "tests.utils.crash_after"
    extra = {"APP_HOST": "127.0.0.1", "APP_PORT": str(port), "LOG_LEVEL": "INFO"}
    if crash_after is not None:
        extra["CRASH_AFTER"] = crash_after
    with log_path.open("wb") as log:
        started = subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO_ROOT, env=env | extra, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, started, log_path)
        yield url, started
    finally:
        if started.poll() is None:
            started.send_signal(signal.SIGTERM)
        started.wait(30)


async def exported(http: httpx.AsyncClient, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The snapshot's export: each file's SHA-256, and mongodb_data.json's entries by file."""
    response = await http.get(f"/snapshots/{name}/export")
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    listed = {entry["file"]: entry for entry in json.loads(archive.read("mongodb_data.json"))}
    files = {name: sha(archive.read(name)) for name in archive.namelist() if not name.startswith("mongodb_data.")}
    return files, listed


def environment(settings: Settings, storage_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    return service_environment(settings, s3)


async def test_a_kill_after_any_step_of_keeping_loses_no_frozen_bytes(
    settings: Settings, storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = environment(settings, storage_kind, request)
    originals = {f"{action}-{step}.png": make_image(color=(n, 7, 7)) for n, (action, step) in enumerate(CRASH_POINTS)}
    ids = {}
    with process(env, tmp_path / "setup.log") as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for file, content in originals.items():
                ids[file] = (await upload(http, content, fields={"file": file})).json()["_id"]
            assert (await http.post("/snapshots", json={"name": "v1"})).status_code == 201

    for action, step in CRASH_POINTS:
        file = f"{action}-{step}.png"
        with process(env, tmp_path / f"{file}.log", crash_after=step) as (url, dying):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                with pytest.raises(httpx.TransportError):  # killed before it could answer
                    if action == "replace":
                        await upload(http, make_image(color=(200, 200, 200)), fields={"file": file})
                    else:
                        await http.delete(f"/images/{ids[file]}")
            assert dying.wait(10) == -signal.SIGKILL, file

    with process(env, tmp_path / "after.log") as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            files, listed = await exported(http, "v1")
            assert files == {file: sha(content) for file, content in originals.items()}
            assert not [entry for entry in listed.values() if "fileChanged" in entry]
            checked = await fsck(env, "--grace-seconds", "0")
            found = findings(checked)
            # What the crashes left is tidying, never a loss: no kept file missing, no image's.
            assert {kind for kind, _, _ in found} <= {"unneeded kept file", "orphan file", "unfinished replacement"}
            assert ("orphan file", "delete-delete.png", "found") in found  # its document went, its file not yet
            kept = f"{SYSTEM_FOLDER}/{KEPT}/"
            assert {name for kind, name, _ in found if kind == "unneeded kept file"} <= {
                f"{kept}{sha(originals[file])[:2]}/{sha(originals[file])}"
                for file in ("delete-copy.png", "replace-copy.png")
            }


async def test_a_snapshot_deleted_while_another_process_replaces_its_images_loses_and_leaks_nothing(
    settings: Settings, storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every round: an image with the same bytes as every other round's, frozen by `keep-N` and
    `race-N`; process B replaces it while process A deletes `race-N`. The bytes are one kept file
    that every `keep-N` holds: it stays until the last of them is deleted (by either process)."""
    env = environment(settings, storage_kind, request)
    twin = make_image(color=(42, 42, 42))
    rounds = 6
    with process(env, tmp_path / "a.log") as (url_a, _), process(env, tmp_path / "b.log") as (url_b, _):
        async with (
            httpx.AsyncClient(base_url=url_a, timeout=60) as a,
            httpx.AsyncClient(base_url=url_b, timeout=60) as b,
        ):
            for number in range(rounds):
                file = f"round-{number}.png"
                assert (await upload(a, twin, fields={"file": file})).status_code == 200
                only = {"file": file}
                for name in (f"keep-{number}", f"race-{number}"):
                    assert (await a.post("/snapshots", json={"name": name, "filter": only})).status_code == 201

                async def replace() -> httpx.Response:
                    await asyncio.sleep(random.uniform(0, 0.02))
                    return await upload(b, make_image(color=(number, 0, 99)), fields={"file": file})  # noqa: B023

                async def delete() -> httpx.Response:
                    await asyncio.sleep(random.uniform(0, 0.02))
                    return await a.delete(f"/snapshots/race-{number}")  # noqa: B023

                replaced, deleted = await asyncio.gather(replace(), delete())
                assert (replaced.status_code, deleted.status_code) == (200, 200)

            for number in range(rounds):
                files, _ = await exported(a if number % 2 else b, f"keep-{number}")
                assert files == {f"round-{number}.png": sha(twin)}

            # The holders go one by one, through either process; the bytes stay for the others.
            for number in range(rounds):
                assert (await (a if number % 2 else b).delete(f"/snapshots/keep-{number}")).status_code == 200
                for later in range(number + 1, rounds):
                    files, _ = await exported(b, f"keep-{later}")
                    assert files == {f"round-{later}.png": sha(twin)}

    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        assert await raw[settings.mongodb_database][HOLDS].count_documents({}) == 0
    finally:
        await raw.close()
    checked = await fsck(env, "--grace-seconds", "0")
    assert findings(checked) == set(), checked.stdout  # no kept file left: the last holder took it
