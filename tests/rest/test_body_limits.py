"""Every request body is bounded while it is read: 413 past the limit, 408 when it stalls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import count_documents, stored_keys

JSON_LIMIT = 64 * 1024


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_json_bytes=JSON_LIMIT, max_upload_bytes=200_000, request_body_timeout_seconds=0.5)


async def chunks(parts: list[bytes], pause: float = 0.0) -> AsyncIterator[bytes]:
    """A body without Content-Length, sent a part at a time."""
    for part in parts:
        await asyncio.sleep(pause)
        yield part


def big_metadata(size: int) -> bytes:
    return json.dumps({"blob": "x" * size}).encode()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_json_bodies_over_the_limit_are_413_declared_or_streamed(limited: Settings) -> None:
    async with LifespanClient(create_app(limited)) as (client, _):
        image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
        body = big_metadata(JSON_LIMIT)
        headers = {"content-type": "application/json"}
        for method, url in [
            ("PATCH", f"/images/{image['_id']}"),
            ("PUT", f"/images/{image['_id']}"),
            ("PATCH", "/images"),
            ("POST", "/graphql"),
        ]:
            declared = await client.request(method, url, content=body, headers=headers)
            assert declared.status_code == 413, (method, url)
            assert "MAX_JSON_BYTES" in declared.json()["detail"]
            assert declared.json()["code"] == "too_large"
            streamed = await client.request(
                method, url, content=chunks([body[:40_000], body[40_000:]]), headers=headers
            )
            assert streamed.status_code == 413, (method, url)
            assert streamed.json()["code"] == "too_large"
        assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {}
        # Just under the limit is fine.
        fits = await client.patch(f"/images/{image['_id']}", json={"blob": "x" * (JSON_LIMIT - 100)})
        assert fits.status_code == 200


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_graphql_file_parts_are_held_to_the_upload_limit(limited: Settings) -> None:
    operations = {
        "query": "mutation($f: Upload!) { uploadImage(file: $f) { id } }",
        "variables": {"f": None},
    }
    async with LifespanClient(create_app(limited)) as (client, app):
        response = await client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
            files={"0": ("big.bmp", make_image(800, 700, format="BMP"))},  # 1.7 MB > 200 KB + 1 MiB of form
            headers={"Apollo-Require-Preflight": "1"},
        )
        assert response.status_code == 413
        assert await count_documents(app) == 0
        assert await stored_keys(app) == set()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_body_that_stops_arriving_is_408(limited: Settings) -> None:
    async with LifespanClient(create_app(limited)) as (client, app):
        image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
        stalled = await client.patch(
            f"/images/{image['_id']}",
            content=chunks([b'{"a": ', b"1}"], pause=1.0),
            headers={"content-type": "application/json"},
        )
        assert stalled.status_code == 408
        assert "stopped arriving" in stalled.json()["detail"]
        assert stalled.json()["code"] == "timeout"
        stalled_upload = await client.post(
            "/images",
            content=chunks([b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nx', b""], pause=1.0),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert stalled_upload.status_code == 408
        assert stalled_upload.json()["code"] == "timeout"
        assert await count_documents(app) == 1


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_slow_but_steady_bodies_and_responses_are_not_cut(limited: Settings) -> None:
    async with LifespanClient(create_app(limited)) as (client, _):
        image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
        body = json.dumps({"steady": True}).encode()
        parts = [body[index : index + 4] for index in range(0, len(body), 4)]
        steady = await client.patch(
            f"/images/{image['_id']}",
            content=chunks(parts, pause=0.2),  # each part well within the timeout, the whole well over it
            headers={"content-type": "application/json"},
        )
        assert steady.status_code == 200
        assert steady.json()["data"] == {"steady": True}


async def test_bodies_within_the_limits_reach_the_routes_unchanged(client: httpx.AsyncClient) -> None:
    image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
    data: dict[str, Any] = {"unicode": "日本語 ✓", "nested": {"list": [1, 2.5, None, True]}}
    assert (await client.put(f"/images/{image['_id']}", json=data)).json()["data"] == data
    graphql = await client.post("/graphql", json={"query": "{ images { total } }"})
    assert graphql.json() == {"data": {"images": {"total": 1}}}
    assert (await client.delete(f"/images/{image['_id']}")).status_code == 200
