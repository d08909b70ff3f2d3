"""REST and GraphQL answer per-element queries as MongoDB's manual says, on every engine.

Held to the reference table (tests/fixtures/per_element_queries.json): its documents stored as
images' metadata, each case's filter asked through `GET /images?filter=` and GraphQL's
`images(filter: {where})`, on the embedded default (FerretDB with its SQLite files at hand) and
on FerretDB alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
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


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # queries only: no storage
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
