"""Facets: how many matching images take each value of a field, REST and GraphQL, checked against
counts made by hand over seeded data (plain values, arrays, nulls, mixed types)."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.utils.graphql import gql, gql_data
from tests.utils.images import make_image

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no file is read

LABELS = ["cat", "dog", "bird", "fish", 7, True, None]


def random_data(rng: random.Random, index: int) -> dict[str, Any]:
    data: dict[str, Any] = {"camera": {"iso": rng.choice([100, 200, 400])}, "part": f"p-{index % 5}"}
    shape = rng.random()
    if shape < 0.55:
        data["label"] = rng.choice(LABELS)
    elif shape < 0.85:  # an array, sometimes holding one value twice
        data["label"] = [rng.choice(LABELS) for _ in range(rng.randint(0, 3))]
    if index % 4 == 0:
        data["split"] = "test"
    return data


@pytest.fixture
async def dataset(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    rng = random.Random(14)
    datas = [random_data(rng, index) for index in range(60)]
    for index, data in enumerate(datas):
        content_type = "JPEG" if index % 3 else "PNG"
        files = {"image": (f"{index}.img", make_image(format=content_type))}
        response = await client.post("/images", files=files, data={"data": json.dumps(data)})
        assert response.status_code == 200, response.text
    return datas


def key(value: Any) -> tuple[str, str]:
    """Values as the database tells them apart (True is not 1)."""
    return type(value).__name__, json.dumps(value, sort_keys=True)


def by_hand(datas: list[dict[str, Any]], path: str, where: Any = lambda data: True) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for data in datas:
        if not where(data):
            continue
        value: Any = data
        for part in path.split("."):
            value = value.get(part, KeyError) if isinstance(value, dict) else KeyError
        if value is KeyError:
            continue
        for element in {key(item) for item in value} if isinstance(value, list) else {key(value)}:
            counts[element] += 1
    return counts


def as_counter(facets: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter({key(facet["value"]): facet["count"] for facet in facets})


def assert_ranked(facets: list[dict[str, Any]]) -> None:
    counts = [facet["count"] for facet in facets]
    assert counts == sorted(counts, reverse=True)


async def test_counts_equal_counts_made_by_hand(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    for path in ("label", "camera.iso", "part", "split"):
        response = await client.get(f"/fields/{path}", params={"counts": "true"})
        assert response.status_code == 200, response.text
        facets = response.json()
        assert as_counter(facets) == by_hand(dataset, path), path
        assert_ranked(facets)
    # Arrays count once per distinct element: the label counts add up to more than the images.
    label_total = sum(facet["count"] for facet in (await client.get("/fields/label?counts=true")).json())
    assert label_total > sum(1 for data in dataset if not isinstance(data.get("label", []), list))


async def test_counts_follow_the_filter(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    response = await client.get("/fields/label", params={"counts": "true", "split": "test"})
    assert as_counter(response.json()) == by_hand(dataset, "label", lambda data: data.get("split") == "test")
    where = json.dumps({"data.camera.iso": {"$gte": 200}})
    response = await client.get("/fields/label", params={"counts": "true", "filter": where})
    assert as_counter(response.json()) == by_hand(dataset, "label", lambda data: data["camera"]["iso"] >= 200)


async def test_the_limit_keeps_the_most_frequent(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    expected = sorted(by_hand(dataset, "label").values(), reverse=True)
    for limit in (1, 2, 3):
        facets = (await client.get("/fields/label", params={"counts": "true", "limit": limit})).json()
        assert [facet["count"] for facet in facets] == expected[:limit]
        assert set(as_counter(facets).items()) <= set(by_hand(dataset, "label").items())


async def test_the_plain_form_stays_as_the_legacy_gui_uses_it(
    client: httpx.AsyncClient, dataset: list[dict[str, Any]]
) -> None:
    plain = (await client.get("/fields/part")).json()
    assert sorted(plain) == [f"p-{index}" for index in range(5)]
    assert (await client.get("/fields/part", params={"counts": "false"})).json() == plain


async def test_system_fields_are_counted(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    facets = (await client.get("/facets/contentType")).json()
    assert facets == [{"value": "image/jpeg", "count": 40}, {"value": "image/png", "count": 20}]
    filtered = (await client.get("/facets/contentType", params={"split": "test"})).json()
    assert sum(facet["count"] for facet in filtered) == 15
    # Without per-user scope, images have no owner.
    assert (await client.get("/facets/owner")).json() == []


async def test_graphql_facets(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    query = """query($f: ImageFilter, $limit: Int) {
        facets(field: "label", filter: $f, limit: $limit) { value count }
        systemFacets(field: CONTENT_TYPE) { value count }
    }"""
    data = await gql_data(client, query, {"limit": 100})
    assert as_counter(data["facets"]) == by_hand(dataset, "label")
    assert data["systemFacets"][0] == {"value": "image/jpeg", "count": 40}
    where = {"data": [{"path": "split", "eq": "test"}]}
    data = await gql_data(client, query, {"f": where, "limit": 100})
    assert as_counter(data["facets"]) == by_hand(dataset, "label", lambda data: data.get("split") == "test")


async def test_bad_facet_requests_are_refused(client: httpx.AsyncClient, dataset: list[dict[str, Any]]) -> None:
    for url, params, detail in (
        ("/fields/label", {"counts": "maybe"}, "The query parameter 'counts' is invalid"),
        ("/fields/label", {"counts": "true", "limit": "0"}, "limit must be between 1 and"),
        ("/fields/$where", {"counts": "true"}, "The field"),
        ("/facets/size", {}, "Counts are kept for the system fields contentType, owner, not 'size'."),
        ("/facets/contentType", {"filter": '{"$where": "1"}'}, "The operator $where is not allowed"),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 400, (url, params, response.text)
        assert response.json()["detail"].startswith(detail), response.json()
    error = (await gql(client, '{ facets(field: "label", limit: 0) { count } }'))["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
