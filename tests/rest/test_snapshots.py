"""Snapshots: frozen as they were, paged, compared, exported with the frozen bytes (the keeping
of bytes itself: tests/test_snapshot_bytes.py). Local and S3 storage (exports read files)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect

from app.config import Settings
from app.domain.datasets import snapshots
from tests.utils.graphql import gql, gql_data
from tests.utils.images import make_image
from tests.utils.seed import upload_seed
from tests.utils.service import upload


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return await upload_seed(client)


async def snapshot(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/snapshots", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def frozen(client: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    response = await client.get(f"/snapshots/{name}/images", params={"limit": 1000})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_snapshot_stays_as_it_was(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    created = await snapshot(client, {"name": "v1", "filter": {"data.label": "cat"}})
    assert (created["name"], created["count"], created["filter"]) == ("v1", 2, {"data.label": "cat"})
    before = await frozen(client, "v1")
    cats = sorted([seeded["cats/a.jpg"], seeded["cats/b.JPG"]], key=lambda image: image["_id"])
    assert before == cats  # the images as a listing shows them, in id order

    # The images change, move on, and go; the snapshot does not.
    a, b = seeded["cats/a.jpg"], seeded["cats/b.JPG"]
    assert (await client.patch(f"/images/{a['_id']}", json={"label": "lion"})).status_code == 200
    assert (await client.delete(f"/images/{b['_id']}")).status_code == 200
    await upload(client, make_image(), fields={"file": "cats/new.png", "label": "cat"})
    assert await frozen(client, "v1") == before
    shown = (await client.get("/snapshots/v1")).json()
    # b's bytes are kept for the snapshot alone now; nothing else about it changed.
    assert shown == {**created, "keptBytes": b["size"]}
    assert created["keptBytes"] == 0
    page = (await client.get("/snapshots/v1/images", params={"skip": 1, "limit": 1})).json()
    assert (page["total"], page["items"]) == (2, before[1:])


async def test_a_diff_is_exact(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    await snapshot(client, {"name": "v1"})
    changed = seeded["dogs/c.png"]
    gone = seeded["e.png"]
    same_data_new_file = seeded["dogs/d.png"]
    await client.patch(f"/images/{changed['_id']}", json={"label": "wolf"})
    await client.delete(f"/images/{gone['_id']}")
    replaced = await upload(client, make_image(color=(1, 2, 3)), fields={"file": "dogs/d.png"})
    assert replaced.json()["_id"] == same_data_new_file["_id"]
    added = (await upload(client, make_image(), fields={"file": "new.png"})).json()
    await snapshot(client, {"name": "v2"})

    diff = (await client.get("/snapshots/v1/diff/v2")).json()
    assert diff["added"] == {"count": 1, "ids": [added["_id"]]}
    assert diff["removed"] == {"count": 1, "ids": [gone["_id"]]}
    assert diff["changed"]["count"] == 2
    assert sorted(diff["changed"]["ids"]) == sorted([changed["_id"], same_data_new_file["_id"]])
    backwards = (await client.get("/snapshots/v2/diff/v1", params={"limit": 0})).json()
    assert (backwards["added"], backwards["removed"]) == ({"count": 1, "ids": []}, {"count": 1, "ids": []})
    assert (await client.get("/snapshots/v1/diff/v1")).json()["changed"] == {"count": 0, "ids": []}


async def test_an_export_holds_the_frozen_files_and_metadata(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    originals = {file: (await client.get(f"/images/{image['_id']}/image")).content for file, image in seeded.items()}
    await snapshot(client, {"name": "v1", "filter": {"file": {"$regex": "^dogs/"}}})
    await upload(client, make_image(color=(9, 9, 9)), fields={"file": "dogs/c.png"})  # new bytes
    await client.patch(f"/images/{seeded['dogs/d.png']['_id']}", json={"label": "wolf"})  # data only

    response = await client.get("/snapshots/v1/export")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(name for name in archive.namelist() if name.endswith(".png")) == ["dogs/c.png", "dogs/d.png"]
    assert archive.read("dogs/c.png") == originals["dogs/c.png"]  # the frozen bytes, kept
    assert archive.read("dogs/d.png") == originals["dogs/d.png"]
    listed = {entry["file"]: entry for entry in json.loads(archive.read("mongodb_data.json"))}
    assert listed["dogs/c.png"]["data"] == seeded["dogs/c.png"]["data"]  # the frozen metadata
    assert not [entry for entry in listed.values() if "fileChanged" in entry]
    assert listed["dogs/d.png"]["data"] == {"label": "Doggo", "key3": "value3"}  # as frozen, not "wolf"
    assert "mongodb_data.xlsx" in archive.namelist()


async def test_a_view_can_be_frozen(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    await client.put("/views/dogs", json={"filter": {"data.key3": "value3"}})
    created = await snapshot(client, {"name": "dogs-v1", "view": "dogs", "filter": {"data.label": "dog"}})
    assert created["count"] == 1
    assert [item["file"] for item in await frozen(client, "dogs-v1")] == ["dogs/c.png"]


async def test_snapshots_are_listed_deleted_and_refused_when_bad(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    await snapshot(client, {"name": "a"})
    await snapshot(client, {"name": "b", "filter": {"data.label": "dog"}})
    assert [(item["name"], item["count"]) for item in (await client.get("/snapshots")).json()] == [("a", 5), ("b", 1)]
    again = await client.post("/snapshots", json={"name": "a"})
    assert (again.status_code, again.json()["detail"]) == (
        409,
        "You have a snapshot named 'a' already; snapshots never change.",
    )
    for body, detail in (
        ({"name": ""}, "A snapshot's name is 1 to 100 characters"),
        ({"name": "x", "filter": {"$where": "1"}}, "The operator $where is not allowed"),
        ({"name": "x", "view": "nope"}, "No view named 'nope'."),
        ({"name": "x", "colour": "red"}, ""),
    ):
        response = await client.post("/snapshots", json=body)
        assert response.status_code in (400, 404), (body, response.text)
        assert response.json()["detail"].startswith(detail)
    assert (await client.get("/snapshots")).json()[-1]["name"] == "b"  # nothing half-made
    assert (await client.delete("/snapshots/a")).json() == {"name": "a"}
    for url in ("/snapshots/a", "/snapshots/a/images", "/snapshots/a/export", "/snapshots/a/diff/b"):
        assert (await client.get(url)).status_code == 404, url
    assert (await client.get("/snapshots/b/images", params={"limit": 0})).status_code == 400


async def test_graphql_snapshots(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    created = await gql_data(
        client,
        """mutation { createSnapshot(name: "v1", filter: {data: [{path: "label", eq: "cat"}]}) {
            name count images(limit: 1) { total items { file data } } } }""",
    )
    assert created["createSnapshot"]["count"] == 2
    assert created["createSnapshot"]["images"]["total"] == 2
    await client.patch(f"/images/{seeded['cats/a.jpg']['_id']}", json={"label": "lion"})
    await gql_data(
        client, 'mutation { createSnapshot(name: "v2", filter: {data: [{path: "label", eq: "cat"}]}) { name } }'
    )
    data = await gql_data(
        client,
        """{ snapshots { name count }
             snapshot(name: "v1") { images { items { data } } }
             snapshotDiff(name: "v1", other: "v2") { added { count } removed { count ids } changed { count } } }""",
    )
    assert data["snapshots"] == [{"name": "v1", "count": 2}, {"name": "v2", "count": 1}]
    assert {item["data"]["label"] for item in data["snapshot"]["images"]["items"]} == {"cat"}
    assert data["snapshotDiff"]["removed"] == {"count": 1, "ids": [seeded["cats/a.jpg"]["_id"]]}
    assert (await gql_data(client, 'mutation { deleteSnapshot(name: "v1") }'))["deleteSnapshot"] == "v1"
    error = (await gql(client, '{ snapshot(name: "v1") { name } }'))["errors"][0]
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_a_creation_that_fails_half_way_leaves_nothing(
    client: httpx.AsyncClient, seeded: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "BATCH", 2)  # five images: three batches
    original = AsyncCollection.insert_many
    batches = 0

    async def failing(self: AsyncCollection[Any], documents: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        if self.name.startswith("snapshot_"):
            batches += 1
            if batches == 2:
                raise AutoReconnect("connection lost")
        return await original(self, documents, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "insert_many", failing)
    response = await client.post("/snapshots", json={"name": "v1"})
    assert response.status_code == 503
    monkeypatch.setattr(AsyncCollection, "insert_many", original)
    assert (await client.get("/snapshots")).json() == []
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        names = await mongo[settings.mongodb_database].list_collection_names()
        assert not [name for name in names if name.startswith("snapshot_")]
    finally:
        await mongo.close()
    assert (await snapshot(client, {"name": "v1"}))["count"] == 5  # the name is free again
