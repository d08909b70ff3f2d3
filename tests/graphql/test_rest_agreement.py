"""REST and GraphQL are two faces of one query compiler: the same question gets the same images."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.utils.graphql import gql_data

# (REST query string, the equivalent GraphQL filter, sort)
EQUIVALENT = [
    ("", None, None),
    ("label=cat", {"data": [{"path": "label", "in": ["cat"]}]}, None),
    ("count=2", {"data": [{"path": "count", "in": ["2", 2]}]}, None),
    ("file=e.png", {"file": {"eq": "e.png"}}, None),
    ("regex=true&file=^dogs", {"file": {"regex": "(?i)^dogs"}}, None),
    (
        "from=2022-06-01T12:00:00Z&to=2023-01-01T00:00:00Z",
        {"time": {"gte": "2022-06-01T12:00:00Z", "lte": "2023-01-01T00:00:00Z"}},
        None,
    ),
    ('filter={"data.count":{"$gte":2,"$lt":10}}', {"data": [{"path": "count", "gte": 2, "lt": 10}]}, None),
    (
        'filter={"$or":[{"data.ok":true},{"data.key3":{"$exists":true}}]}',
        {"or": [{"data": [{"path": "ok", "eq": True}]}, {"data": [{"path": "key3", "exists": True}]}]},
        None,
    ),
    ('filter={"data.label":{"$not":{"$regex":"^c"}}}', {"where": {"data.label": {"$not": {"$regex": "^c"}}}}, None),
    ('filter={"$nor":[{"data.label":"cat"}]}', {"not": {"data": [{"path": "label", "eq": "cat"}]}}, None),
    ("sort=time&order=-1", None, [{"field": "time", "direction": "DESC"}]),
    ("sort=-data.label,file", None, [{"field": "data.label", "direction": "DESC"}, {"field": "file"}]),
    (
        "label=cat&sort=file&order=desc",
        {"data": [{"path": "label", "eq": "cat"}]},
        [{"field": "file", "direction": "DESC"}],
    ),
]


@pytest.mark.parametrize(("rest", "graphql_filter", "sort"), EQUIVALENT)
async def test_rest_and_graphql_return_the_same_images(
    client: httpx.AsyncClient,
    seeded: dict[str, Any],
    rest: str,
    graphql_filter: dict[str, Any] | None,
    sort: list[dict[str, str]] | None,
) -> None:
    rest_ids = [item["_id"] for item in (await client.get(f"/images?{rest}")).json()["items"]]
    data = await gql_data(
        client,
        "query($f: ImageFilter, $s: [SortInput!]) { images(filter: $f, sort: $s) { items { id } } }",
        {"f": graphql_filter, "s": sort},
    )
    assert [item["id"] for item in data["images"]["items"]] == rest_ids
    assert rest_ids  # every row matches something, so agreement is not vacuous
