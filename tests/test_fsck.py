"""`python -m app.fsck`: what crashes leave behind, planted for real, found and repaired."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import to_thread
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.media.thumbnails import variants_folder
from app.domain.writes import replacement
from app.domain.writes.leases import lease_document
from app.main import create_app
from app.storage.keys import kept_key
from app.store.kept import HOLDS, MARKS, hold_id
from app.store.leases import COLLECTION as LEASES
from scripts.servers import REPO_ROOT, free_port
from tests.utils.images import make_image
from tests.utils.live import service_environment
from tests.utils.replacement import NEW, crash_after_new_document
from tests.utils.s3 import S3Server
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import stored_keys
from tests.utils.waiting import eventually

OLD = time.time() - 7200
PART = ".orphan.png.0123456789abcdef0123456789abcdef.part"


def environment(settings: Settings, storage_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    return service_environment(settings, s3)


async def fsck(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return await to_thread.run_sync(
        lambda: subprocess.run(
            [sys.executable, "-m", "app.fsck", *arguments],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    )


def findings(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str, str]]:
    """(kind, name, state) of every line printed."""
    rows = [line.split("\t") for line in result.stdout.splitlines() if line]
    return {(row[0], row[1], row[3]) for row in rows}


def put_file(app: FastAPI, key: str, content: bytes, *, old: bool) -> None:
    """A file written behind the service's back, as a crash leaves it."""
    storage = app.state.services.storage
    if storage.kind == "local":
        path = storage.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if old:
            os.utime(path, (OLD, OLD))
    else:
        storage._client.put_object(storage.bucket, key, io.BytesIO(content), len(content))


async def test_fsck_finds_and_repairs_what_crashes_leave(
    make_settings: Callable[..., Settings], storage_kind: str, request: pytest.FixtureRequest
) -> None:
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (client, app):
        kept = (await upload(client, make_image(), fields={"file": "kept.png"})).json()
        lost = (await upload(client, make_image(), fields={"file": "folder/lost.png"})).json()
        await app.state.services.storage.delete("folder/lost.png")  # its file went missing
        put_file(app, "orphans/orphan.png", make_image(), old=True)
        put_file(app, "young.png", make_image(), old=False)
        # A thumbnail of a current image, and one a race left behind for a deleted image.
        assert (await client.get(f"/images/{kept['_id']}/image", params={"width": 8})).status_code == 200
        (current,) = [key for key in await stored_keys(app) if key.startswith(variants_folder(kept["_id"]))]
        stale = f"{variants_folder(str(ObjectId()))}/{'0' * 64}/w8-h0-inside-q80.jpeg"
        put_file(app, stale, make_image(format="JPEG"), old=True)
        if storage_kind == "local":
            put_file(app, f"orphans/{PART}", b"half a file", old=True)
        raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
        try:
            leases = raw[settings.mongodb_database][LEASES]
            expired = datetime.now(UTC) - timedelta(minutes=5)
            await leases.insert_one(lease_document("file:dead.png", "dead", expired))

            env = environment(settings, storage_kind, request)
            # On S3 the planted orphan cannot be made to look old: no grace period there.
            grace = ["--grace-seconds", "3600" if storage_kind == "local" else "0"]
            found = await fsck(env, *grace)
            assert found.returncode == 1, found.stderr
            expected = {
                ("orphan file", "orphans/orphan.png", "found"),
                ("missing file", "folder/lost.png", "found"),
                ("expired lease", "file:dead.png", "found"),
                ("stale resized copy", stale, "found"),
            }
            if storage_kind == "local":
                expected.add(("temporary file", f"orphans/{PART}", "found"))
            else:
                expected.add(("orphan file", "young.png", "found"))
            assert findings(found) == expected
            assert "kept.png" not in found.stdout
            assert await stored_keys(app) >= {"orphans/orphan.png", "young.png"}  # found, not touched

            repaired = await fsck(env, "--repair", *grace)
            assert repaired.returncode == 1  # the missing file cannot be repaired
            assert findings(repaired) == {
                (kind, name, "found" if kind == "missing file" else "repaired") for kind, name, _ in expected
            }
            left = await stored_keys(app)
            assert "orphans/orphan.png" not in left and f"orphans/{PART}" not in left
            assert "kept.png" in left
            assert current in left and stale not in left
            assert (storage_kind == "s3") != ("young.png" in left)  # within the grace period: kept
            assert await leases.count_documents({}) == 0
            # Documents are never deleted: the one whose file is missing is still listed.
            assert (await client.get(f"/images/{lost['_id']}")).status_code == 200
            assert (await client.get(f"/images/{kept['_id']}/image")).status_code == 200

            again = await fsck(env, *grace)
            assert findings(again) == {("missing file", "folder/lost.png", "found")}
            await client.delete(f"/images/{lost['_id']}")
            clean = await fsck(env, *grace)
            assert (clean.returncode, clean.stdout) == (0, "")
            assert "nothing to fix" in clean.stderr
        finally:
            await raw.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_fsck_with_unusable_settings_or_database_says_so(
    make_settings: Callable[..., Settings], storage_kind: str, request: pytest.FixtureRequest
) -> None:
    settings = make_settings()
    Path(settings.uploads_directory).mkdir(parents=True)
    env = environment(settings, storage_kind, request)
    bad_scope = await fsck(env | {"IMAGE_SCOPE": "everyone"})
    assert bad_scope.returncode == 2
    assert bad_scope.stderr.startswith("fsck: IMAGE_SCOPE")
    down = env | {"MONGODB_CONNECTION_STRING": f"mongodb://127.0.0.1:{free_port()}/x", "MONGODB_TIMEOUT_MS": "300"}
    unreachable = await fsck(down)
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().startswith("fsck: the database is unreachable")
    assert "Traceback" not in unreachable.stderr


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_the_service_removes_stale_temporaries_at_start_up(settings: Settings) -> None:
    uploads = Path(settings.uploads_directory)
    (uploads / "a").mkdir(parents=True)
    stale, fresh = uploads / "a" / PART, uploads / f".x.png.{'f' * 32}.part"
    for path in (stale, fresh):
        path.write_bytes(b"half")
    os.utime(stale, (OLD, OLD))
    async with LifespanClient(create_app(settings)) as (client, _):

        async def stale_gone() -> bool:
            return not stale.exists()

        await eventually(stale_gone, seconds=20)
        assert fresh.exists()  # may be a write in progress in another replica
        assert (await client.get("/healthz")).status_code == 200


async def test_listing_streams_every_file(app: FastAPI, client: httpx.AsyncClient) -> None:
    for index in range(25):
        put_file(app, f"deep/{index % 3}/{index}.png", b"x" * index, old=False)
    listed = [item async for batch in app.state.services.storage.list_files() for item in batch]
    assert sorted(item.key for item in listed) == sorted(f"deep/{index % 3}/{index}.png" for index in range(25))
    assert {item.key: item.size for item in listed}["deep/1/7.png"] == 7


async def test_fsck_finishes_interrupted_replacements_and_removes_abandoned_staged_files(
    make_settings: Callable[..., Settings], storage_kind: str, request: pytest.FixtureRequest
) -> None:
    settings = make_settings()
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        async with LifespanClient(create_app(settings)) as (client, app):
            images = raw[settings.mongodb_database]["images"]
            image = await crash_after_new_document(client, app, images)
            # A replacement that died before its document was written: a staged file nobody names.
            abandoned = replacement.staging_key(image["_id"])
            put_file(app, abandoned, make_image(), old=True)
            env = environment(settings, storage_kind, request)

            found = await fsck(env, "--grace-seconds", "0")
            assert found.returncode == 1, found.stderr
            assert findings(found) == {
                ("unfinished replacement", "p.png", "found"),
                ("orphan file", abandoned, "found"),
            }
            repaired = await fsck(env, "--repair", "--grace-seconds", "0")
            assert repaired.returncode == 0, repaired.stderr
            assert findings(repaired) == {
                ("unfinished replacement", "p.png", "repaired"),
                ("orphan file", abandoned, "repaired"),
            }
            assert await stored_keys(app) == {"p.png"}
            assert (await client.get(f"/images/{image['_id']}/image")).content == NEW
            assert await images.count_documents({replacement.PENDING: {"$exists": True}}) == 0
            clean = await fsck(env, "--grace-seconds", "0")
            assert (clean.returncode, clean.stdout) == (0, "")
    finally:
        await raw.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_fsck_over_more_images_than_one_batch_finds_exactly_what_is_wrong(
    make_settings: Callable[..., Settings], storage_kind: str, request: pytest.FixtureRequest
) -> None:
    """Past the batch sizes of every step (listing, documents, orphans), planted straight."""
    settings = make_settings()
    root = Path(settings.uploads_directory)
    count = 2600
    documents = []
    for index in range(count):
        name = f"f{index // 700}/image{index}.png"
        if index % 250 != 7:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(b"x")
        if index % 400 != 3:
            documents.append({"file": name, "userId": None, "data": {}})
    orphans = {f"f{index // 700}/image{index}.png" for index in range(count) if index % 400 == 3}
    missing = {f"f{index // 700}/image{index}.png" for index in range(count) if index % 250 == 7}
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        await raw[settings.mongodb_database]["images"].insert_many(documents)
    finally:
        await raw.close()
    env = environment(settings, storage_kind, request)
    found = await fsck(env, "--grace-seconds", "0")
    assert findings(found) == {("orphan file", name, "found") for name in orphans} | {
        ("missing file", name, "found") for name in missing
    }
    repaired = await fsck(env, "--repair", "--grace-seconds", "0")
    assert {name for kind, name, state in findings(repaired) if state == "repaired"} == orphans
    assert not any((root / name).exists() for name in orphans)
    assert sum(1 for path in root.rglob("*.png")) == count - len(orphans) - len(missing)


async def test_fsck_knows_the_bytes_kept_for_snapshots(
    make_settings: Callable[..., Settings], storage_kind: str, request: pytest.FixtureRequest
) -> None:
    """Kept files a snapshot holds are never findings (nor orphans); one nobody holds is, and so
    are the holds of a deleted snapshot and a held file that went missing."""
    settings = make_settings()
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        async with LifespanClient(create_app(settings)) as (client, app):
            held, lost, released = make_image(color=(1, 9, 9)), make_image(color=(2, 9, 9)), make_image(color=(3, 9, 9))
            for file, content in (("held.png", held), ("lost.png", lost), ("released.png", released)):
                await upload(client, content, fields={"file": file})
            assert (await client.post("/snapshots", json={"name": "v1"})).status_code == 201
            for file in ("held.png", "lost.png"):
                await upload(client, make_image(color=(7, 7, 7)), fields={"file": file})  # kept for v1
            await upload(client, lost, fields={"file": "twin.png"})  # an image with lost's bytes
            unneeded = kept_key(hashlib.sha256(b"nobody").hexdigest())
            put_file(app, unneeded, b"nobody", old=True)
            await app.state.services.storage.delete(kept_key(sha(lost)))  # deleted by hand
            # A snapshot deleted while its delete ran: its hold is left, on bytes kept for it alone.
            put_file(app, kept_key(sha(released)), released, old=True)
            gone = ObjectId()
            await raw[settings.mongodb_database][HOLDS].insert_one(
                {"_id": hold_id(sha(released), gone, ObjectId()), "checksum": sha(released), "snapshot": gone}
            )

            # A snapshot whose delete died after removing its entry: its frozen images and marks remain.
            await upload(client, make_image(color=(4, 9, 9)), fields={"file": "late.png"})
            assert (await client.post("/snapshots", json={"name": "cut-short"})).status_code == 201
            cut_short = (await raw[settings.mongodb_database]["snapshots"].find_one({"name": "cut-short"}))["_id"]
            await raw[settings.mongodb_database]["snapshots"].delete_one({"_id": cut_short})

            env = environment(settings, storage_kind, request)
            found = await fsck(env, "--grace-seconds", "0")
            expected = {
                ("leftover of a deleted snapshot", str(cut_short), "found"),
                ("unneeded kept file", unneeded, "found"),
                ("missing kept file", kept_key(sha(lost)), "found"),
                ("hold of a deleted snapshot", str(gone), "found"),
            }
            assert findings(found) == expected, found.stdout
            repaired = await fsck(env, "--repair", "--grace-seconds", "0")
            assert findings(repaired) == {(kind, name, "repaired") for kind, name, _ in expected}, repaired.stdout
            database = raw[settings.mongodb_database]
            assert f"snapshot_{cut_short}" not in await database.list_collection_names()
            assert await database[MARKS].count_documents({"snapshot": cut_short}) == 0
            assert await database[MARKS].count_documents({}) == 3  # v1's, of held, lost and released
            left = await stored_keys(app)
            assert kept_key(sha(held)) in left and kept_key(sha(lost)) in left  # copied again from twin.png
            assert unneeded not in left and kept_key(sha(released)) not in left
            response = await client.get("/snapshots/v1/export")
            archive = zipfile.ZipFile(io.BytesIO(response.content))
            assert (sha(archive.read("held.png")), sha(archive.read("lost.png"))) == (sha(held), sha(lost))
            clean = await fsck(env, "--grace-seconds", "0")
            assert (clean.returncode, clean.stdout) == (0, "")
    finally:
        await raw.close()


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
