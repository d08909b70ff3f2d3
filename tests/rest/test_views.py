"""Saved views: CRUD in REST and GraphQL, and `view` wherever a filter is (list, export, facets)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx
import pytest

from tests.utils.graphql import gql, gql_data
from tests.utils.seed import upload_seed

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return await upload_seed(client)


async def save(client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> httpx.Response:
    return await client.put(f"/views/{name}", json=body)


async def test_a_view_is_saved_read_replaced_and_deleted(client: httpx.AsyncClient) -> None:
    created = await save(client, "cats", {"filter": {"data.label": "cat"}, "sort": "-time"})
    assert created.status_code == 200, created.text
    view = created.json()
    assert (view["name"], view["filter"], view["sort"]) == ("cats", {"data.label": "cat"}, "-time,-_id")
    assert (await client.get("/views/cats")).json() == view
    assert [item["name"] for item in (await client.get("/views")).json()] == ["cats"]

    replaced = (await save(client, "cats", {"filter": {"time": {"$gte": "2022-03-01"}}})).json()
    assert replaced["filter"] == {"time": {"$gte": {"$date": "2022-03-01T00:00:00Z"}}}  # kept as a date
    assert replaced["sort"] == ""
    assert replaced["created"] == view["created"] and replaced["updated"] >= view["updated"]

    assert (await client.delete("/views/cats")).json() == {"name": "cats"}
    assert (await client.get("/views/cats")).status_code == 404
    assert (await client.delete("/views/cats")).status_code == 404
    assert (await client.get("/views")).json() == []


async def test_a_view_narrows_a_list(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    await save(client, "cats", {"filter": {"data.label": "cat"}, "sort": "-time"})
    body = (await client.get("/images", params={"view": "cats"})).json()
    assert [item["file"] for item in body["items"]] == ["cats/b.JPG", "cats/a.jpg"]  # the view's sort
    assert body["total"] == 2
    # Other parameters narrow it further; a sort given wins over the view's.
    narrowed = (await client.get("/images", params={"view": "cats", "ok": "true"})).json()
    assert [item["file"] for item in narrowed["items"]] == ["cats/a.jpg"]
    resorted = (await client.get("/images", params={"view": "cats", "sort": "time"})).json()
    assert [item["file"] for item in resorted["items"]] == ["cats/a.jpg", "cats/b.JPG"]
    # A view with a time filter works after being stored and read back.
    await save(client, "recent", {"filter": {"time": {"$gte": "2023-01-01"}}, "sort": "time"})
    recent = (await client.get("/images", params={"view": "recent"})).json()
    assert [item["file"] for item in recent["items"]] == ["dogs/c.png", "dogs/d.png", "e.png"]


async def test_a_view_with_regular_expressions_works_once_stored(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Extended JSON reads a stored `{"$regex": …}` back as a regular expression value, which no
    filter may compare with: the view was saved, then refused as unusable."""
    query = {"$or": [{"file": {"$regex": "^CATS/", "$options": "i"}}, {"file": {"$not": {"$regex": "png$"}}}]}
    saved = await save(client, "cats", {"filter": query})
    assert saved.status_code == 200, saved.text
    assert saved.json()["filter"] == query
    assert (await client.get("/views")).json()[0].get("problem") is None
    listed = await client.get("/images", params={"view": "cats", "sort": "file"})
    assert listed.status_code == 200, listed.text
    assert [item["file"] for item in listed.json()["items"]] == ["cats/a.jpg", "cats/b.JPG"]
    snapshot = await client.post("/snapshots", json={"name": "cats", "view": "cats"})
    assert snapshot.status_code == 201, snapshot.text


async def test_a_view_serves_export_facets_and_fields(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    await save(client, "dogs", {"filter": {"data.key3": "value3"}})
    archive = zipfile.ZipFile(io.BytesIO((await client.get("/export", params={"view": "dogs"})).content))
    images = [name for name in archive.namelist() if name.endswith(".png")]
    assert sorted(images) == ["dogs/c.png", "dogs/d.png"]
    facets = (await client.get("/fields/label", params={"view": "dogs", "counts": "true"})).json()
    assert sorted((facet["value"], facet["count"]) for facet in facets) == [("Doggo", 1), ("dog", 1)]
    assert (await client.get("/facets/contentType", params={"view": "dogs"})).json() == [
        {"value": "image/png", "count": 2}
    ]
    assert "nested" in (await client.get("/fields", params={"view": "dogs"})).json()


async def test_bad_views_are_refused(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    for name, body, status, detail in (
        ("x" * 101, {}, 400, "A view's name is 1 to 100 characters"),
        ("bad", {"filter": {"$where": "1"}}, 400, "The operator $where is not allowed"),
        ("bad", {"sort": "data.$x"}, 400, "The sort field"),
        ("bad", {"filter": ["not", "an", "object"]}, 400, ""),
        ("bad", {"filter": {}, "colour": "red"}, 400, ""),
    ):
        response = await save(client, name, body)
        assert response.status_code == status, (name, body, response.text)
        assert response.json()["detail"].startswith(detail), response.json()
    missing = await client.get("/images", params={"view": "nope"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "No view named 'nope'.", "code": "not_found"})
    assert (await client.get("/views/nope")).status_code == 404


async def test_graphql_views(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    saved = await gql_data(
        client,
        """mutation {
          saveView(
            name: "cats", filter: {data: [{path: "label", eq: "cat"}]}, sort: [{field: "time", direction: DESC}]
          ) {
            name filter sort { field direction }
          }
        }""",
    )
    assert saved["saveView"] == {
        "name": "cats",
        "filter": {"data.label": {"$eq": "cat"}},
        "sort": [{"field": "time", "direction": -1}, {"field": "_id", "direction": -1}],
    }
    data = await gql_data(
        client,
        """{
          views { name }
          view(name: "cats") { name }
          images(view: "cats") { total items { file } }
          imagesConnection(view: "cats", first: 1) { edges { node { file } } pageInfo { hasNextPage } }
          facets(field: "count", view: "cats") { value count }
          systemFacets(field: CONTENT_TYPE, view: "cats") { value count }
          fields(view: "cats")
          fieldValues(field: "count", view: "cats")
        }""",
    )
    assert data["views"] == [{"name": "cats"}] and data["view"] == {"name": "cats"}
    assert data["images"] == {"total": 2, "items": [{"file": "cats/b.JPG"}, {"file": "cats/a.jpg"}]}
    assert data["imagesConnection"]["edges"] == [{"node": {"file": "cats/b.JPG"}}]
    assert data["imagesConnection"]["pageInfo"]["hasNextPage"] is True
    assert sorted(json.dumps(facet["value"]) for facet in data["facets"]) == ['"2"', "2"]
    assert data["systemFacets"] == [{"value": "image/png", "count": 2}]
    assert "ok" in data["fields"] and "key3" not in data["fields"]
    assert (await gql_data(client, 'mutation { deleteView(name: "cats") }'))["deleteView"] == "cats"
    error = (await gql(client, '{ images(view: "cats") { total } }'))["errors"][0]
    assert (error["message"], error["extensions"]["code"]) == ("No view named 'cats'.", "NOT_FOUND")
