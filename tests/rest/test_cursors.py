"""Cursor paging: REST `after` / `nextCursor` and GraphQL `imagesConnection`. A walk meets every
image that survives it exactly once, whatever is inserted or deleted meanwhile, in any sort the
list allows (mixed types included); forged, foreign and misused cursors are refused."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from app.config import Settings
from tests.utils.commands import recorded
from tests.utils.graphql import gql, gql_data

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # documents only

START = datetime(2024, 1, 1, tzinfo=UTC)


def document(index: int, rng: random.Random) -> dict[str, Any]:
    """An image as an upload stores it, without a file (listing never reads one)."""
    data = {"n": rng.randint(0, 50), "label": rng.choice(["cat", "dog"])}
    return {
        "_id": ObjectId(),
        "file": f"walk/{index}.png",
        "time": START + timedelta(minutes=rng.randint(0, 500)),
        "data": data,
        "dataKeys": sorted(data),
        "userId": None,
        "contentType": "image/png",
    }


@pytest.fixture
async def images(settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[Any]:
    await client.get("/")  # the service has made its collection and indexes
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        yield mongo[settings.mongodb_database]["images"]
    finally:
        await mongo.close()


# No walk here takes more than a few dozen pages: one that goes on has a cursor that does not advance.
MAX_PAGES = 500


async def walk(client: httpx.AsyncClient, params: dict[str, Any], between: Any = None) -> list[dict[str, Any]]:
    """Every page from the first, following `nextCursor`; `between` runs after each page."""
    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        response = await client.get("/images", params={**params, "after": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["items"])
        if body["nextCursor"] is None:
            return seen
        cursor = body["nextCursor"]
        if between is not None:
            await between()
    raise AssertionError(f"the walk did not end within {MAX_PAGES} pages ({len(seen)} items, cursor {cursor!r})")


@pytest.mark.parametrize("sort", [None, "data.n", "-time", "data.label,-data.n"])
async def test_a_walk_meets_every_surviving_image_once(
    client: httpx.AsyncClient, images: Any, sort: str | None
) -> None:
    rng = random.Random(1000)
    await images.insert_many([document(index, rng) for index in range(1000)])
    original = {str(doc["_id"]) for doc in await images.find({}, {"_id": 1}).to_list(None)}
    deleted: set[str] = set()
    added: set[str] = set()
    counter = iter(range(1000, 10_000))

    async def churn() -> None:
        new = [document(next(counter), rng) for _ in range(7)]
        await images.insert_many(new)
        added.update(str(doc["_id"]) for doc in new)
        doomed = rng.sample(sorted(original - deleted), 5)
        await images.delete_many({"_id": {"$in": [ObjectId(i) for i in doomed]}})
        deleted.update(doomed)

    params = {"limit": 53, **({"sort": sort} if sort else {})}
    seen = Counter(item["_id"] for item in await walk(client, params, churn))
    assert max(seen.values()) == 1  # never twice
    assert original - deleted <= set(seen)  # every survivor
    assert set(seen) <= original | added


async def test_a_walk_follows_the_databases_order_across_types(client: httpx.AsyncClient, images: Any) -> None:
    values: list[Any] = [None, 3, 2.5, -1, "b", "a", "", True, False, {"x": 1}, START, START + timedelta(days=1)]
    docs = []
    for index in range(40):
        data = {} if index % 13 == 0 else {"v": values[index % len(values)]}
        docs.append({**document(index, random.Random(index)), "data": data, "dataKeys": sorted(data)})
    await images.insert_many(docs)
    for sort in ("data.v", "-data.v"):
        whole = (await client.get("/images", params={"sort": sort, "limit": 1000})).json()["items"]
        walked = await walk(client, {"sort": sort, "limit": 3})
        assert [item["_id"] for item in walked] == [item["_id"] for item in whole], sort


async def test_unsorted_pages_keep_the_legacy_shape(client: httpx.AsyncClient, images: Any) -> None:
    rng = random.Random(3)
    await images.insert_many([document(index, rng) for index in range(5)])
    body = (await client.get("/images", params={"limit": 2})).json()
    assert body["nextCursor"] is None  # unsorted, without `after`: skip paging as before
    assert body["total"] == 5
    walked = await walk(client, {"limit": 2})  # `after=` starts a walk, in `_id` order
    assert [item["_id"] for item in walked] == sorted(item["_id"] for item in walked)
    assert len(walked) == 5
    # `select` may hide the sort key: the cursor is still right.
    picked = await walk(client, {"limit": 2, "sort": "data.n", "select": "file"})
    assert len(picked) == 5 and all(set(item) == {"_id", "file"} for item in picked)
    without_id = await walk(client, {"limit": 2, "sort": "time", "select": "-_id,-data"})
    assert len(without_id) == 5 and all("_id" not in item for item in without_id)


async def test_bad_cursors_are_refused(client: httpx.AsyncClient, images: Any) -> None:
    rng = random.Random(4)
    await images.insert_many([document(index, rng) for index in range(5)])
    cursor = (await client.get("/images", params={"limit": 2, "sort": "data.n"})).json()["nextCursor"]
    forged = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for params, detail in (
        ({"sort": "data.n", "after": forged}, "The cursor is not one this service gave out."),
        ({"sort": "data.n", "after": "not a cursor"}, "The cursor is not one this service gave out."),
        ({"sort": "data.n", "after": "QUJD"}, "The cursor is not one this service gave out."),
        ({"sort": "time", "after": cursor}, "The cursor belongs to another filter or sort"),
        ({"sort": "data.n", "label": "cat", "after": cursor}, "The cursor belongs to another filter or sort"),
        ({"sort": "data.n", "after": cursor, "skip": "2"}, "skip and after cannot be combined"),
    ):
        response = await client.get("/images", params={"limit": 2, **params})
        assert response.status_code == 400, params
        assert response.json()["detail"].startswith(detail), response.json()
    assert (await client.get("/images", params={"limit": 2, "sort": "data.n", "after": cursor})).status_code == 200


CONNECTION = """query($first: Int!, $after: String, $sort: [SortInput!], $f: ImageFilter) {
  imagesConnection(first: $first, after: $after, sort: $sort, filter: $f) {
    edges { cursor node { id file } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_graphql_connection_walks_by_cursor(client: httpx.AsyncClient, images: Any) -> None:
    rng = random.Random(5)
    await images.insert_many([document(index, rng) for index in range(30)])
    sort = [{"field": "data.n", "direction": "DESC"}]
    seen: list[str] = []
    after = None
    for _ in range(30):  # 5 pages of 7 for 30 images; more is a cursor that does not advance
        connection = (await gql_data(client, CONNECTION, {"first": 7, "after": after, "sort": sort}))[
            "imagesConnection"
        ]
        info = connection["pageInfo"]
        assert info["hasPreviousPage"] == (after is not None)
        seen.extend(edge["node"]["id"] for edge in connection["edges"])
        assert info["endCursor"] == connection["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        # An edge's own cursor continues right after it.
        middle = connection["edges"][3]
        resumed = await gql_data(client, CONNECTION, {"first": 1, "after": middle["cursor"], "sort": sort})
        assert resumed["imagesConnection"]["edges"][0]["node"]["id"] == connection["edges"][4]["node"]["id"]
        after = info["endCursor"]
    else:
        raise AssertionError(f"the connection did not end within 30 pages ({len(seen)} images, after {after!r})")
    assert len(seen) == len(set(seen)) == 30

    with recorded() as sent:
        await gql_data(client, CONNECTION, {"first": 5})
    assert "count" not in {command.name for command in sent}  # no count unless asked for
    counted = await gql_data(client, "{ imagesConnection(first: 5) { totalCount } }")
    assert counted["imagesConnection"]["totalCount"] == 30
    dogs = await gql_data(
        client,
        "query($f: ImageFilter) { imagesConnection(first: 1, filter: $f) { totalCount } }",
        {"f": {"data": [{"path": "label", "eq": "dog"}]}},
    )
    assert dogs["imagesConnection"]["totalCount"] == await images.count_documents({"data.label": "dog"})

    error = (await gql(client, CONNECTION, {"first": 5, "after": "forged"}))["errors"][0]
    assert (error["message"], error["extensions"]["code"]) == (
        "The cursor is not one this service gave out.",
        "BAD_USER_INPUT",
    )
