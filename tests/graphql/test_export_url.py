"""`exportUrl`: GraphQL gives the REST address of an archive; following it gives the archive."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.utils.graphql import error_codes, gql, gql_data
from tests.utils.images import make_image
from tests.utils.service import upload

QUERY = (
    "query($format: ExportFormat! = LEGACY, $f: ImageFilter, $view: String, $snapshot: String,"
    " $options: ExportOptions) {"
    " exportUrl(format: $format, filter: $f, view: $view, snapshot: $snapshot, options: $options) }"
)
CAT = {"label": "cat", "x": 1, "y": 1, "w": 4, "h": 4}


async def stored(client: httpx.AsyncClient, file: str, data: dict[str, Any]) -> None:
    response = await upload(client, make_image(32, 24), fields={"file": file, "data": json.dumps(data)})
    assert response.status_code == 200, response.text


async def followed(client: httpx.AsyncClient, variables: dict[str, Any]) -> tuple[str, zipfile.ZipFile]:
    url = (await gql_data(client, QUERY, variables))["exportUrl"]
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return url, zipfile.ZipFile(io.BytesIO(response.content))


async def test_the_url_of_a_filter_in_a_format_gives_its_matches(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"subset": "train", "boxes": [CAT]})
    await stored(client, "b.png", {"subset": "val", "boxes": [CAT]})
    await stored(client, "c.png", {"subset": "other"})
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    image_filter = {"data": [{"path": "subset", "in": ["train", "val"]}], "time": {"gte": since}}
    url, archive = await followed(
        client, {"format": "YOLO", "f": image_filter, "options": {"split": "subset", "labelField": "tag"}}
    )
    assert url.startswith(f"{client.base_url}/export?format=yolo&split=subset&labelField=tag&filter=")
    assert sorted(name for name in archive.namelist() if name.startswith("images/")) == [
        "images/train/a.png",
        "images/val/b.png",
    ]


async def test_the_url_of_a_view_and_of_a_snapshot(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"label": "cat"})
    await stored(client, "b.png", {"label": "dog"})
    assert (await client.put("/views/cats", json={"filter": {"data.label": "cat"}})).status_code in (200, 201)
    assert (await client.post("/snapshots", json={"name": "v 1"})).status_code == 201
    _, archive = await followed(client, {"view": "cats"})
    assert "a.png" in archive.namelist() and "b.png" not in archive.namelist()
    url, archive = await followed(client, {"snapshot": "v 1", "format": "IMAGEFOLDER"})
    assert url == f"{client.base_url}/snapshots/v%201/export?format=imagefolder"
    assert sorted(archive.namelist()) == ["all/cat/a.png", "all/dog/b.png", "report.json"]


async def test_bad_requests_are_errors_not_urls(client: httpx.AsyncClient) -> None:
    cases = [
        ({"snapshot": "nope"}, "NOT_FOUND"),
        ({"view": "nope"}, "NOT_FOUND"),
        ({"format": "COCO", "options": {"splits": "train:nope"}}, "NOT_FOUND"),
        ({"options": {"split": "subset"}}, "BAD_USER_INPUT"),
        ({"format": "HF", "options": {"shardSize": 10}}, "BAD_USER_INPUT"),
        ({"format": "COCO", "options": {"split": "a", "splits": "t:v"}}, "BAD_USER_INPUT"),
        ({"snapshot": "s", "view": "v"}, "BAD_USER_INPUT"),
    ]
    for variables, code in cases:
        body = await gql(client, QUERY, variables)
        assert error_codes(body) == [code], (variables, body)
