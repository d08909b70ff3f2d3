"""Presigned downloads: `?redirect=true` and GraphQL `Image.downloadUrl`, on S3 a URL that MinIO
serves without credentials until it expires; on local storage the service's own route."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.utils.graphql import gql, gql_data
from tests.utils.service import upload

DOWNLOAD_URL = "query($id: ID!, $s: Int) { image(id: $id) { url downloadUrl(expiresIn: $s) } }"


async def test_a_redirect_leads_to_the_same_bytes(
    client: httpx.AsyncClient, storage_kind: str, cat_jpeg: bytes
) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cats/cat.jpg"})).json()
    response = await client.get(f"/images/{created['_id']}/image", params={"redirect": "true"})
    if storage_kind == "local":  # nothing to sign: the file itself, as without the parameter
        assert (response.status_code, response.content) == (200, cat_jpeg)
        return
    assert response.status_code == 307
    assert response.headers["cache-control"] == "private, no-store"
    async with httpx.AsyncClient() as anyone:  # no credentials, not through the service
        fetched = await anyone.get(response.headers["location"])
    assert (fetched.status_code, fetched.content) == (200, cat_jpeg)
    assert fetched.headers["content-type"] == "image/jpeg"
    assert "cat.jpg" in fetched.headers["content-disposition"]


async def test_a_redirect_of_a_thumbnail_leads_to_the_thumbnail(
    client: httpx.AsyncClient, storage_kind: str, cat_jpeg: bytes
) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cats/cat.jpg"})).json()
    url = f"/images/{created['_id']}/image"
    thumbnail = (await client.get(url, params={"width": 64})).content
    response = await client.get(url, params={"width": 64, "redirect": "true"})
    if storage_kind == "local":
        assert (response.status_code, response.content) == (200, thumbnail)
        return
    assert response.status_code == 307
    async with httpx.AsyncClient() as anyone:
        fetched = await anyone.get(response.headers["location"])
    assert (fetched.status_code, fetched.content) == (200, thumbnail)
    assert fetched.headers["content-type"] == "image/jpeg"


async def test_download_url_expires(client: httpx.AsyncClient, storage_kind: str, cat_jpeg: bytes) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg")).json()
    # Long enough to be fetched once on a busy machine (one second was not, in CI).
    image = (await gql_data(client, DOWNLOAD_URL, {"id": created["_id"], "s": 5}))["image"]
    if storage_kind == "local":
        assert image["downloadUrl"] == image["url"]
        return
    query = parse_qs(urlsplit(image["downloadUrl"]).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert query["X-Amz-Expires"] == ["5"]
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.get(image["downloadUrl"])).content == cat_jpeg
        expired = signed_at + timedelta(seconds=5 + 1.5)  # past its five seconds
        await asyncio.sleep(max((expired - datetime.now(UTC)).total_seconds(), 0))
        assert (await anyone.get(image["downloadUrl"])).status_code == 403
        fresh = (await gql_data(client, DOWNLOAD_URL, {"id": created["_id"], "s": None}))["image"]["downloadUrl"]
        assert (await anyone.get(fresh)).content == cat_jpeg  # the default lifetime


async def test_download_url_lifetimes_out_of_bounds_are_refused(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg")).json()
    for seconds in (0, 604801):
        body = await gql(client, DOWNLOAD_URL, {"id": created["_id"], "s": seconds})
        assert body["errors"][0]["message"] == f"expiresIn must be between 1 and 604800; got {seconds}."
