"""REST and GraphQL answer per-element queries as MongoDB's manual says, on every engine.

Held to the reference table (tests/fixtures/per_element_queries.json): its documents stored as
images' metadata, each case's filter asked through `GET /images?filter=` and GraphQL's
`images(filter: {where})`, on the embedded default (FerretDB with its SQLite files at hand) and
on FerretDB alone. Then random documents and filters of the same forms, where REST and GraphQL
are held to the live-event evaluator (itself held to the table).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.store.matching import matches
from tests.utils.graphql import gql_data
from tests.utils.images import make_image
from tests.utils.per_element import CASES, DOCUMENTS
from tests.utils.service import LifespanClient, upload

IMAGES = "query($f: ImageFilter) { images(filter: $f, limit: 100) { total items { file } } }"


async def store_documents(client: httpx.AsyncClient) -> None:
    for document in DOCUMENTS:
        fields = {"file": f"{document['_id']}.png", "data": json.dumps(document["data"])}
        response = await upload(client, make_image(), fields=fields)
        assert response.status_code == 200, response.text


def ids(files: list[str]) -> list[str]:
    return sorted(file.removesuffix(".png") for file in files)


async def answers(client: httpx.AsyncClient, condition: dict[str, Any]) -> dict[str, Any]:
    rest = await client.get("/images", params={"filter": json.dumps(condition), "limit": 100})
    assert rest.status_code == 200, rest.text
    listed = rest.json()
    graphql = (await gql_data(client, IMAGES, {"f": {"where": condition}}))["images"]
    counted = await client.get("/images", params={"filter": json.dumps(condition), "limit": 1})
    return {
        "rest": ids([item["file"] for item in listed["items"]]),
        "rest total": listed["total"],
        "rest total of a short page": counted.json()["total"],
        "graphql": ids([item["file"] for item in graphql["items"]]),
        "graphql total": graphql["total"],
    }


@pytest.mark.parametrize("shortcuts", [True, False], ids=["embedded default", "FerretDB alone"])
async def test_every_reference_case_is_answered_as_the_manual_says(
    make_settings: Callable[..., Settings], shortcuts: bool
) -> None:
    settings = make_settings() if shortcuts else make_settings(ferretdb_sqlite_directory=None)
    async with LifespanClient(create_app(settings)) as (client, _):
        await store_documents(client)
        wrong = {}
        for case in CASES:
            expected = {
                "rest": case.expected,
                "rest total": len(case.expected),
                "rest total of a short page": len(case.expected),
                "graphql": case.expected,
                "graphql total": len(case.expected),
            }
            got = await answers(client, case.filter)
            if got != expected:
                wrong[case.name] = {"filter": case.filter, "expected": case.expected, "got": got}
    assert not wrong, json.dumps(wrong, indent=1)[:6000]


# -- randomised: REST and GraphQL against the live-event evaluator ----------------------------

BOX_LABELS = ["cat", "dog", "car", ["cat", "kitten"]]


def random_box(rng: random.Random) -> dict[str, Any]:
    box: dict[str, Any] = {"label": rng.choice(BOX_LABELS), "w": rng.choice([10, 50, 100, 100.0, 200, "100"])}
    if rng.random() < 0.7:
        box["score"] = rng.choice([0.2, 0.5, 0.9, None])
    if rng.random() < 0.2:
        del box["label"]
    return box


def random_data(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    boxes: Any = [random_box(rng) for _ in range(rng.randint(0, 3))]
    if roll < 0.1:
        boxes = random_box(rng)  # one object, not a list
    data: dict[str, Any] = {"boxes": boxes} if roll < 0.9 else {}
    if rng.random() < 0.7:
        data["label"] = rng.choice(["cat", "dog", ["cat", "dog"], None])
    return data


def random_condition(rng: random.Random, field: str) -> Any:
    value = rng.choice(["cat", "dog", 50, 100, 0.5, None])
    return rng.choice(
        [
            value,
            {"$ne": value},
            {"$in": [value, "car"]},
            {"$nin": [value]},
            {"$gt": rng.choice([40, 0.3])},
            {"$gte": 100, "$lt": 150},
            {"$exists": rng.choice([True, False])},
            {"$regex": "^c"},
            {"$not": {"$eq": value}},
        ]
    )


def random_per_element_filter(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.4:
        fields = rng.sample(["label", "w", "score"], rng.randint(1, 3))
        return {"data.boxes": {"$elemMatch": {field: random_condition(rng, field) for field in fields}}}
    if roll < 0.8:
        fields = rng.sample(["label", "w", "score"], rng.randint(1, 2))
        return {f"data.boxes.{field}": random_condition(rng, field) for field in fields}
    if roll < 0.9:
        return {"data.label": random_condition(rng, "label")}
    return {rng.choice(["$and", "$or"]): [random_per_element_filter(rng) for _ in range(2)]}


@pytest.mark.parametrize("shortcuts", [True, False], ids=["embedded default", "FerretDB alone"])
async def test_random_per_element_filters_agree_with_live_events(
    make_settings: Callable[..., Settings], shortcuts: bool
) -> None:
    rng = random.Random(20261205)
    settings = make_settings() if shortcuts else make_settings(ferretdb_sqlite_directory=None)
    stored = {f"r{index:02}": {"data": random_data(rng)} for index in range(40)}
    async with LifespanClient(create_app(settings)) as (client, _):
        for name, document in stored.items():
            fields = {"file": f"{name}.png", "data": json.dumps(document["data"])}
            assert (await upload(client, make_image(), fields=fields)).status_code == 200
        disagreements = []
        for _ in range(120):
            condition = random_per_element_filter(rng)
            expected = sorted(name for name, document in stored.items() if matches(condition, document))
            got = await answers(client, condition)
            wanted = {
                "rest": expected,
                "rest total": len(expected),
                "rest total of a short page": len(expected),
                "graphql": expected,
                "graphql total": len(expected),
            }
            if got != wanted:
                disagreements.append({"filter": condition, "expected": expected, "got": got})
    assert not disagreements, json.dumps(disagreements[:5], indent=1)


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
@pytest.mark.parametrize("shortcuts", [True, False], ids=["embedded default", "FerretDB alone"])
async def test_values_and_facets_of_a_per_element_filter_count_only_its_matches(
    make_settings: Callable[..., Settings], shortcuts: bool
) -> None:
    settings = make_settings() if shortcuts else make_settings(ferretdb_sqlite_directory=None)
    # A cat box: b01 (label cat), b02 (dog), b03 (["cat", "dog"]), b09 ("Cat"), b11 (none), b14 (cat).
    condition = json.dumps({"data.boxes": {"$elemMatch": {"label": "cat"}}})
    async with LifespanClient(create_app(settings)) as (client, _):
        await store_documents(client)
        values = (await client.get("/fields/label", params={"filter": condition})).json()
        counted = (await client.get("/fields/label", params={"filter": condition, "counts": "true"})).json()
    assert values == ["Cat", "cat", "dog"]
    assert counted == [{"value": "cat", "count": 3}, {"value": "dog", "count": 2}, {"value": "Cat", "count": 1}]


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_form_no_evaluator_here_answers_exactly_is_a_400_not_a_guess(
    make_settings: Callable[..., Settings],
) -> None:
    # Ordering against an array (MongoDB compares the array's smallest or largest element, by
    # the direction): neither FerretDB nor the store's check reproduces it.
    async with LifespanClient(create_app(make_settings())) as (client, _):
        await store_documents(client)
        condition = json.dumps({"data.scores": {"$elemMatch": {"$gt": [0.5, 0.6]}}})
        response = await client.get("/images", params={"filter": condition})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "This filter cannot be answered exactly on FerretDB: $gt with an array to compare with."
    )
