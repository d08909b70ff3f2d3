"""Downloads with the HTTP browsers and caches rely on: validators and 304, byte ranges, HEAD.
Local and S3 storage."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest

from tests.utils.images import make_image
from tests.utils.service import upload


@pytest.fixture
async def photo(client: httpx.AsyncClient, cat_jpeg: bytes) -> str:
    """The real 4000x3000 photo, uploaded; its download URL."""
    created = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cat.jpg"})).json()
    return f"/images/{created['_id']}/image"


async def test_a_download_carries_its_validators(client: httpx.AsyncClient, photo: str, cat_jpeg: bytes) -> None:
    response = await client.get(photo)
    assert response.status_code == 200
    assert response.content == cat_jpeg
    assert response.headers["etag"] == f'"{hashlib.sha256(cat_jpeg).hexdigest()}"'
    assert response.headers["cache-control"] == "private, no-cache"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(cat_jpeg))
    assert parsedate_to_datetime(response.headers["last-modified"])  # an HTTP date
    assert (await client.get(photo.removesuffix("/image") + "/file")).headers["etag"] == response.headers["etag"]


async def test_a_current_copy_is_answered_304_without_the_file(client: httpx.AsyncClient, photo: str) -> None:
    first = await client.get(photo)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},  # weak comparison, as If-None-Match uses
        {"If-None-Match": f'"other", {etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
    ):
        response = await client.get(photo, headers=headers)
        assert (response.status_code, response.content) == (304, b""), headers
        assert response.headers["etag"] == etag
    later = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=5), usegmt=True)
    for headers in (
        {"If-None-Match": '"other"'},
        {"If-Modified-Since": later},
        {"If-None-Match": '"other"', "If-Modified-Since": modified},  # If-None-Match decides
        {"If-Modified-Since": "not a date"},
    ):
        response = await client.get(photo, headers=headers)
        assert response.status_code == 200, headers
        assert len(response.content) == len(first.content)


async def test_a_replaced_image_is_a_new_etag(client: httpx.AsyncClient, photo: str) -> None:
    etag = (await client.get(photo)).headers["etag"]
    replaced = await upload(client, make_image(format="JPEG"), filename="cat.jpg", fields={"file": "cat.jpg"})
    assert replaced.status_code == 200
    response = await client.get(photo, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag


async def test_single_ranges_are_answered_206(client: httpx.AsyncClient, photo: str, cat_jpeg: bytes) -> None:
    size = len(cat_jpeg)
    for header, start, end in (
        ("bytes=0-99", 0, 100),  # the first bytes
        ("bytes=-500", size - 500, size),  # the last bytes
        (f"bytes={size - 1000}-", size - 1000, size),  # from an offset to the end
        (f"bytes=1000-{size + 50}", 1000, size),  # an end past the file is cut to it
        (f"bytes=-{size + 10}", 0, size),  # more last bytes than there are: all of them
    ):
        response = await client.get(photo, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == cat_jpeg[start:end], header
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert response.headers["content-length"] == str(end - start)


async def test_ranges_past_the_end_are_416_and_others_get_the_whole_file(
    client: httpx.AsyncClient, photo: str, cat_jpeg: bytes
) -> None:
    size = len(cat_jpeg)
    response = await client.get(photo, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    etag = (await client.get(photo)).headers["etag"]
    for headers in (
        {"Range": "bytes=0-9,20-29"},  # several ranges: the whole file, as RFC 9110 allows
        {"Range": "bytes=9-0"},  # not a valid range: ignored
        {"Range": "pages=1-2"},
        {"Range": "bytes=0-99", "If-Range": '"another-version"'},  # the file is not that one any more
    ):
        response = await client.get(photo, headers=headers)
        assert (response.status_code, len(response.content)) == (200, size), headers
    same = await client.get(photo, headers={"Range": "bytes=0-99", "If-Range": etag})
    assert (same.status_code, same.content) == (206, cat_jpeg[:100])


async def test_head_answers_the_headers_of_get(client: httpx.AsyncClient, photo: str, cat_jpeg: bytes) -> None:
    got = await client.get(photo)
    head = await client.head(photo)
    assert (head.status_code, head.content) == (200, b"")
    for name in ("etag", "last-modified", "content-length", "content-type", "accept-ranges", "cache-control"):
        assert head.headers[name] == got.headers[name], name
    ranged = await client.head(photo, headers={"Range": "bytes=10-19"})
    assert (ranged.status_code, ranged.headers["content-length"]) == (206, "10")
    assert (await client.head(photo, headers={"If-None-Match": got.headers["etag"]})).status_code == 304
    missing = await client.head("/images/6385c4b3a1e2f0c9d8b7a615/image")
    assert missing.status_code == 404
