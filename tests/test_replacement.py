"""Replacing an image's bytes: whatever step a crash stops it at, the document describes the
bytes stored for it, readers get them, and the next writer, the start-up or fsck finishes the job.

The states a crash leaves are planted for real (staged file in the storage, document naming it
in the database), and one test kills a real service process with SIGKILL mid-replacements.
"""

from __future__ import annotations

import asyncio
import io
import random
import signal
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.writes import replacement
from app.domain.writes.leases import Leases, path_key
from app.errors import Unavailable
from app.main import create_app
from app.metrics import Metrics
from app.storage import Storage, build_storage
from app.store.leases import COLLECTION as LEASES
from app.store.leases import LeaseStore
from scripts.servers import REPO_ROOT, free_port
from tests.utils.images import make_image
from tests.utils.live import service_environment, start_service, wait_until_serving
from tests.utils.replacement import NEW, OLD, crash_after_new_document, facts
from tests.utils.s3 import S3Server
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import stored_keys
from tests.utils.waiting import eventually


@pytest.fixture
async def images(settings: Settings) -> AsyncIterator[Any]:
    """The images collection, behind the service's back."""
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    yield raw[settings.mongodb_database]["images"]
    await raw.close()


async def all_settled(images: Any) -> bool:
    """Whether no document names a staged file any more: every replacement is finished."""
    return await images.count_documents({replacement.PENDING: {"$exists": True}}) == 0


async def read(storage: Storage, key: str) -> bytes:
    stored = await storage.open(key)
    return b"".join([chunk async for chunk in stored.chunks])


async def test_an_interrupted_replacement_serves_its_new_bytes_everywhere(
    client: httpx.AsyncClient, app: FastAPI, images: Any
) -> None:
    image = await crash_after_new_document(client, app, images)
    assert await stored_keys(app) == {"p.png", image["staged"]}
    shown = (await client.get(f"/images/{image['_id']}")).json()
    assert (shown["size"], shown["width"], shown["height"]) == facts(NEW)
    assert replacement.PENDING not in shown  # bookkeeping, never shown
    assert (await client.get(f"/images/{image['_id']}/image")).content == NEW
    archive = await client.get("/export")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.read("p.png") == NEW
    # The crash came a step later: the staged file moved onto `p.png`, the document not yet told.
    await app.state.services.storage.move(image["staged"], "p.png")
    assert await stored_keys(app) == {"p.png"}
    assert (await client.get(f"/images/{image['_id']}/image")).content == NEW
    # Listed by path, the image is at its own path, not at the staged one.
    assert [item["file"] for item in (await client.get("/images")).json()["items"]] == ["p.png"]


async def test_start_up_finishes_an_interrupted_replacement(
    client: httpx.AsyncClient, app: FastAPI, images: Any, settings: Settings
) -> None:
    image = await crash_after_new_document(client, app, images)
    async with LifespanClient(create_app(settings)) as (restarted, restarted_app):
        await eventually(lambda: all_settled(images))
        assert await stored_keys(restarted_app) == {"p.png"}
        assert await read(restarted_app.state.services.storage, "p.png") == NEW
        assert (await restarted.get(f"/images/{image['_id']}/image")).content == NEW


async def test_start_up_finishes_a_replacement_a_live_writer_keeps_past_its_wait(
    client: httpx.AsyncClient, app: FastAPI, images: Any
) -> None:
    """Tried again, not left to the writer: a metadata change (a bulk one holds a batch of paths
    a while) keeps `pendingFile` as it is and does not settle it."""
    image = await crash_after_new_document(client, app, images)
    leases = images.database[LEASES]
    writer = Leases(store=LeaseStore(lambda: leases), ttl=0.6)  # another replica's, renewed every 0.2 s
    start_up = Leases(store=LeaseStore(lambda: leases), ttl=0.6, wait=0.6)
    storage = app.state.services.storage
    async with writer.hold([path_key("p.png")]):
        settling = asyncio.create_task(
            replacement.settle_all(app.state.services.store.images, storage=storage, leases=start_up)
        )
        await asyncio.sleep(2.0)  # the start-up's wait runs out, more than once
    assert await asyncio.wait_for(settling, 10) == 1
    assert await all_settled(images)
    assert await read(storage, "p.png") == NEW
    assert (await client.get(f"/images/{image['_id']}/image")).content == NEW


async def test_the_next_upload_finishes_an_interrupted_replacement_first(
    client: httpx.AsyncClient, app: FastAPI, images: Any
) -> None:
    image = await crash_after_new_document(client, app, images)
    newest = make_image(70, 60)
    again = await upload(client, newest, fields={"file": "p.png"})
    assert again.status_code == 200 and again.json()["_id"] == image["_id"]
    assert await stored_keys(app) == {"p.png"}
    assert (await client.get(f"/images/{image['_id']}/image")).content == newest
    document = await images.find_one({"_id": ObjectId(image["_id"])})
    assert replacement.PENDING not in document
    assert (document["size"], document["width"], document["height"]) == facts(newest)


@pytest.mark.parametrize("route", ["one", "many"])
async def test_deleting_an_interrupted_replacement_removes_both_files(
    client: httpx.AsyncClient, app: FastAPI, images: Any, route: str
) -> None:
    image = await crash_after_new_document(client, app, images)
    deleted = await client.delete(f"/images/{image['_id']}" if route == "one" else "/images?file=p.png")
    assert deleted.status_code == 200
    assert await stored_keys(app) == set()


async def test_replacements_leave_only_the_image_file(client: httpx.AsyncClient, app: FastAPI, images: Any) -> None:
    first = (await upload(client, OLD, fields={"file": "a/p.png"})).json()
    for width in (30, 40, 50):
        replaced = await upload(client, make_image(width, 10), fields={"file": "a/p.png"})
        assert replaced.json()["_id"] == first["_id"]
    assert await stored_keys(app) == {"a/p.png"}
    assert await read(app.state.services.storage, "a/p.png") == make_image(50, 10)
    assert await images.count_documents({replacement.PENDING: {"$exists": True}}) == 0


async def test_a_replacement_whose_move_fails_is_acknowledged_and_served(
    client: httpx.AsyncClient, app: FastAPI, images: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = (await upload(client, OLD, fields={"file": "p.png"})).json()
    storage = app.state.services.storage

    async def storage_gone(source: str, target: str) -> None:
        raise Unavailable("The storage is unreachable.")

    monkeypatch.setattr(storage, "move", storage_gone)
    replaced = await upload(client, NEW, fields={"file": "p.png"})
    assert replaced.status_code == 200
    assert (replaced.json()["size"], replaced.json()["width"]) == facts(NEW)[:2]
    assert (await client.get(f"/images/{image['_id']}/image")).content == NEW
    monkeypatch.undo()
    async with LifespanClient(create_app(settings)) as (_, restarted_app):
        await eventually(lambda: all_settled(images))
        assert await stored_keys(restarted_app) == {"p.png"}
        assert await read(restarted_app.state.services.storage, "p.png") == NEW


@pytest.mark.parametrize("path", [".imagestore/pending/x.png", ".imagestore", "./.imagestore//x.png"])
async def test_the_service_folder_is_no_user_path(client: httpx.AsyncClient, path: str) -> None:
    refused = await upload(client, OLD, fields={"file": path})
    assert refused.status_code == 400
    assert "service's own" in refused.text


# -- a real process killed mid-replacement ------------------------------------------------------

ROUNDS = 4
WRITERS = 6


async def replace_until_killed(url: str, path: str, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while not stop.is_set():
            content = make_image(random.randint(8, 120), random.randint(8, 120))
            try:
                await upload(http, content, fields={"file": path})
            except httpx.TransportError:
                return  # killed


async def test_killed_mid_replacements_every_image_keeps_bytes_it_describes(
    settings: Settings, storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest, images: Any
) -> None:
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    env = service_environment(settings, s3)

    def started(name: str) -> tuple[Any, str]:
        port = free_port()
        log_path = tmp_path / f"{name}.log"
        process_env = env | {"APP_HOST": "127.0.0.1", "APP_PORT": str(port)}
        process = start_service(process_env, cwd=REPO_ROOT, log_path=log_path)
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process, log_path)
        return process, url

    # A path per round: the dead process's lease on a path holds its writers for up to 30 s.
    paths = [f"round{number}.png" for number in range(ROUNDS)]
    for number, path in enumerate(paths):
        process, url = started(f"round{number}")
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await upload(http, OLD, fields={"file": path})).status_code == 200
        stop = asyncio.Event()
        writers = [asyncio.create_task(replace_until_killed(url, path, stop)) for _ in range(WRITERS)]
        await asyncio.sleep(random.uniform(0.5, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop.set()
        await asyncio.gather(*writers)

    process, url = started("after")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            # Before anything is settled: readers get the bytes each document describes.
            for path in paths:
                listed = (await http.get("/images", params={"file": path})).json()["items"]
                assert len(listed) == 1, path
                served = (await http.get(f"/images/{listed[0]['_id']}/image")).content
                assert facts(served) == (listed[0]["size"], listed[0]["width"], listed[0]["height"]), path

            # Settled by the start-up once the dead process's leases expire (30 s).
            await eventually(lambda: all_settled(images), seconds=90)
            storage = build_storage(settings, Metrics())
            try:
                for path in paths:
                    document = await images.find_one({"file": path})
                    stored = await read(storage, path)
                    assert facts(stored) == (document["size"], document["width"], document["height"]), path
            finally:
                await storage.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
