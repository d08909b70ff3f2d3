"""Snapshots keep their bytes: an image a snapshot froze, replaced or deleted since, still
exports with the frozen bytes; kept bytes are stored once per checksum and go with their last
snapshot; the version names exactly what was frozen. Local and S3 storage.

Crashes and a second process: tests/test_snapshot_bytes_processes.py."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.datasets.kept import FLAG
from app.domain.datasets.versions import VersionHash
from app.errors import Unavailable
from app.storage.keys import KEPT, SYSTEM_FOLDER, kept_key
from app.store.kept import HOLDS, MARKS
from tests.utils.graphql import gql_data
from tests.utils.images import make_image
from tests.utils.service import upload
from tests.utils.stored import stored_keys

KEPT_PREFIX = f"{SYSTEM_FOLDER}/{KEPT}/"


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Any]:
    """The service's database, behind its back."""
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    yield raw[settings.mongodb_database]
    await raw.close()


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def image(client: httpx.AsyncClient, file: str, content: bytes, **data: str) -> dict[str, Any]:
    response = await upload(client, content, fields={"file": file, **data})
    assert response.status_code == 200, response.text
    uploaded: dict[str, Any] = response.json()
    return uploaded


async def snapshot(client: httpx.AsyncClient, name: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/snapshots", json={"name": name, "filter": query or {}})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def exported(client: httpx.AsyncClient, name: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The snapshot's export: each file's bytes, and mongodb_data.json's entries by file."""
    response = await client.get(f"/snapshots/{name}/export")
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    listed = {entry["file"]: entry for entry in json.loads(archive.read("mongodb_data.json"))}
    files = {name: archive.read(name) for name in archive.namelist() if not name.startswith("mongodb_data.")}
    return files, listed


async def kept_files(app: FastAPI) -> set[str]:
    return {key for key in await stored_keys(app) if key.startswith(KEPT_PREFIX)}


async def shown(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.get(f"/snapshots/{name}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_snapshot_exports_the_bytes_of_images_replaced_and_deleted_since(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first, second, third = make_image(color=(1, 0, 0)), make_image(color=(0, 1, 0)), make_image(color=(0, 0, 1))
    replaced = await image(client, "a.png", first, label="cat")
    deleted = await image(client, "b.png", second, label="dog")
    await image(client, "c.png", third)
    await snapshot(client, "v1")

    # A metadata change first: what tells a write that a snapshot froze the image stays with it.
    assert (await client.patch(f"/images/{deleted['_id']}", json={"label": "wolf"})).status_code == 200
    shown_image = (await client.get(f"/images/{deleted['_id']}")).json()
    assert FLAG not in shown_image and FLAG not in json.dumps((await exported(client, "v1"))[1])  # never shown
    assert (await image(client, "a.png", make_image(color=(9, 9, 9))))["_id"] == replaced["_id"]
    assert (await client.delete(f"/images/{deleted['_id']}")).status_code == 200
    files, listed = await exported(client, "v1")
    assert {name: sha(content) for name, content in files.items()} == {
        "a.png": sha(first),
        "b.png": sha(second),
        "c.png": sha(third),
    }
    assert not [entry for entry in listed.values() if "fileChanged" in entry]
    assert listed["a.png"]["data"] == {"label": "cat"}
    # Kept by checksum, in the service's own folder; the unchanged image's bytes are not copied.
    assert await kept_files(app) == {kept_key(sha(first)), kept_key(sha(second))}
    assert (await shown(client, "v1"))["keptBytes"] == len(first) + len(second)
    # The listing's content addresses still name the frozen bytes.
    # The frozen listing's content addresses still answer, with the kept bytes, for good.
    for item in (await client.get("/snapshots/v1/images")).json()["items"]:
        served = await client.get(item["url"])
        assert (served.status_code, sha(served.content)) == (200, item["checksum"]), item["file"]
        assert "immutable" in served.headers["cache-control"]
    gone = await client.get(f"/images/{deleted['_id']}/content/{sha(first)}-{len(first)}")  # not its bytes
    assert gone.status_code == 404


async def test_bytes_are_kept_once_and_released_with_their_last_snapshot(
    client: httpx.AsyncClient, app: FastAPI, database: Any
) -> None:
    twin = make_image(color=(3, 3, 3))
    a = await image(client, "a.png", twin)
    b = await image(client, "b.png", twin)  # the same bytes at another path
    await snapshot(client, "v1")
    await snapshot(client, "v2")
    assert (await shown(client, "v1"))["keptBytes"] == 0  # nothing replaced yet: nothing kept

    await image(client, "a.png", make_image(color=(4, 4, 4)))
    assert (await client.delete(f"/images/{b['_id']}")).status_code == 200
    assert await kept_files(app) == {kept_key(sha(twin))}  # one file for both images
    # Both hold them: deleting either alone frees nothing.
    assert [(item["name"], item["keptBytes"]) for item in (await client.get("/snapshots")).json()] == [
        ("v1", 0),
        ("v2", 0),
    ]

    assert (await client.delete("/snapshots/v1")).status_code == 200
    assert await kept_files(app) == {kept_key(sha(twin))}
    assert (await shown(client, "v2"))["keptBytes"] == len(twin)
    files, _ = await exported(client, "v2")
    assert (sha(files["a.png"]), sha(files["b.png"])) == (sha(twin), sha(twin))

    assert (await client.delete("/snapshots/v2")).status_code == 200
    assert await kept_files(app) == set()
    assert a["_id"] != b["_id"]
    # Nothing of either is left: marks, holds, frozen images.
    assert await database[MARKS].count_documents({}) == await database[HOLDS].count_documents({}) == 0
    assert not [name for name in await database.list_collection_names() if name.startswith("snapshot_")]


async def test_an_image_no_snapshot_holds_is_replaced_and_deleted_without_keeping_anything(
    client: httpx.AsyncClient, app: FastAPI, database: Any
) -> None:
    await image(client, "frozen.png", make_image(color=(5, 5, 5)))
    await snapshot(client, "v1")
    free = await image(client, "free.png", make_image(color=(6, 6, 6)))  # after the snapshot
    await image(client, "free.png", make_image(color=(7, 7, 7)))
    assert (await client.delete(f"/images/{free['_id']}")).status_code == 200
    assert await kept_files(app) == set()
    assert await database[HOLDS].count_documents({}) == 0
    assert await database[MARKS].count_documents({}) == 1  # the frozen image's mark only


async def test_a_bulk_delete_keeps_the_bytes_of_the_frozen_images(client: httpx.AsyncClient, app: FastAPI) -> None:
    contents = {f"bulk/{number}.png": make_image(color=(number, 1, 1)) for number in range(5)}
    for file, content in contents.items():
        await image(client, file, content)
    await snapshot(client, "v1", {"file": {"$in": ["bulk/0.png", "bulk/1.png", "bulk/2.png"]}})
    response = await client.request("DELETE", "/images", params={"filter": json.dumps({"file": {"$regex": "^bulk/"}})})
    assert response.status_code == 200, response.text
    files, _ = await exported(client, "v1")
    assert {name: sha(content) for name, content in files.items()} == {
        file: sha(contents[file]) for file in ("bulk/0.png", "bulk/1.png", "bulk/2.png")
    }
    assert len(await kept_files(app)) == 3


async def test_the_version_names_exactly_what_was_frozen(client: httpx.AsyncClient) -> None:
    a = await image(client, "a.png", make_image(color=(1, 2, 3)), label="cat", note="é")
    await image(client, "b.png", make_image(color=(3, 2, 1)))
    v1 = await snapshot(client, "v1")
    version = v1["version"]
    assert len(version) == 64
    # Any client computes it from the listing: canonical JSON of {id, file, checksum, time, data}.
    items = (await client.get("/snapshots/v1/images")).json()["items"]
    fields = ("file", "checksum", "time", "data")
    entries = [{"id": item["_id"], **{field: item[field] for field in fields}} for item in items]
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == version
    hashed = VersionHash()
    hashed.add([{**item, "_id": item["_id"]} for item in items])
    assert hashed.hexdigest() == version

    # The same content, another name and moment: the same version, and it never moves.
    assert (await snapshot(client, "v1-again"))["version"] == version
    await exported(client, "v1")
    assert (await shown(client, "v1"))["version"] == version
    graphql = await gql_data(client, '{ snapshot(name: "v1") { version keptBytes } }')
    assert graphql["snapshot"] == {"version": version, "keptBytes": 0}

    # Any frozen change makes another version: data, then bytes, then time.
    assert (await client.patch(f"/images/{a['_id']}", json={"label": "lion"})).status_code == 200
    after_data = (await snapshot(client, "v2"))["version"]
    await image(client, "b.png", make_image(color=(9, 9, 9)))
    after_bytes = (await snapshot(client, "v3"))["version"]
    await upload(client, make_image(color=(9, 9, 9)), fields={"file": "b.png", "time": "2020-01-01T00:00:00Z"})
    after_time = (await snapshot(client, "v4"))["version"]
    assert len({version, after_data, after_bytes, after_time}) == 4
    assert (await shown(client, "v1"))["version"] == version


async def test_a_snapshot_made_before_bytes_were_kept_keeps_them_from_now_on(
    client: httpx.AsyncClient, app: FastAPI, database: Any
) -> None:
    """As a snapshot the previous release made: no version and no `marked` in its entry, no marks
    on its images, and an image replaced back then without keeping its bytes."""
    kept, lost = make_image(color=(1, 1, 1)), make_image(color=(2, 2, 2))
    await image(client, "same.png", kept)
    await image(client, "changed.png", lost)
    made = await snapshot(client, "old")
    await database[MARKS].delete_many({})
    await database["images"].update_many({}, {"$unset": {FLAG: ""}})
    await image(client, "changed.png", make_image(color=(3, 3, 3)))  # before this release: not kept
    assert await kept_files(app) == set()
    await database["snapshots"].update_one({"name": "old"}, {"$unset": {"version": "", "marked": ""}})
    kept_bytes = app.state.services.snapshots.kept
    kept_bytes._all_marked = False  # as a process started on this database finds it

    # Until the start-up has marked its images, every write asks each snapshot; then the marks do.
    await image(client, "same.png", make_image(color=(4, 4, 4)))
    assert await kept_files(app) == {kept_key(sha(kept))}
    assert await kept_bytes.mark_old_snapshots() == 1
    assert await database[MARKS].count_documents({}) == 2
    assert (await database["snapshots"].find_one({"name": "old"}))["marked"] is True

    assert (await shown(client, "old"))["version"] == made["version"]  # computed, then recorded
    assert (await database["snapshots"].find_one({"name": "old"}))["version"] == made["version"]
    files, listed = await exported(client, "old")
    assert files == {"same.png": kept}
    assert listed["changed.png"]["fileChanged"] is True
    assert "fileChanged" not in listed["same.png"]


async def test_a_snapshot_deleted_while_the_storage_is_down_is_deleted_and_its_bytes_go_later(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = make_image(color=(8, 8, 8))
    await image(client, "a.png", content)
    await snapshot(client, "v1")
    await image(client, "a.png", make_image(color=(9, 8, 8)))
    storage = app.state.services.storage

    async def down(key: str) -> None:
        raise Unavailable("The storage is unreachable.")

    monkeypatch.setattr(storage, "delete", down)
    assert (await client.delete("/snapshots/v1")).status_code == 200  # deleted, as asked
    assert (await client.get("/snapshots/v1")).status_code == 404
    assert await kept_files(app) == {kept_key(sha(content))}  # not released yet
    monkeypatch.undo()
    await snapshot(client, "v2")
    assert (await client.delete("/snapshots/v2")).status_code == 200  # its sweep releases v1's too
    assert await kept_files(app) == set()
