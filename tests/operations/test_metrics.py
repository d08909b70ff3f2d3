"""/metrics after real REST and GraphQL traffic: the series, their labels, and bounded cardinality."""

from __future__ import annotations

import re

import httpx

from app.metrics import MAX_GRAPHQL_NAMES
from tests.utils.archives import import_zip
from tests.utils.graphql import gql, gql_upload
from tests.utils.images import make_image
from tests.utils.metrics import label_values, sample, scrape
from tests.utils.service import upload

REQUESTS = "image_storage_http_requests_total"
DURATIONS = "image_storage_http_request_duration_seconds_count"
GRAPHQL = "image_storage_graphql_operations_total"
GRAPHQL_DURATIONS = "image_storage_graphql_operation_duration_seconds_count"
UPLOADED = "image_storage_upload_bytes_total"
DOWNLOADED = "image_storage_download_bytes_total"
ARCHIVES = "image_storage_archive_operations_total"
ARCHIVE_DURATIONS = "image_storage_archive_operation_duration_seconds_count"
OBJECT_ID = re.compile(r"[0-9a-f]{24}")


async def test_rest_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    first = (await upload(client, make_image(), fields={"file": "a.png"})).json()
    second = (await upload(client, make_image(), fields={"file": "b.png"})).json()
    for image in (first, second):
        assert (await client.get(f"/images/{image['_id']}")).status_code == 200
    assert (await client.get(f"/images/{first['_id']}/image")).status_code == 200
    assert (await client.get("/images/0123456789abcdef01234567")).status_code == 404
    assert (await client.get("/images/not-an-id")).status_code == 400
    assert (await client.get("/images?label=cat&token=s3cr3t")).status_code == 200
    assert (await client.get(f"/no/such/route/{first['_id']}")).status_code == 404
    assert (await client.request("TRACE", "/images")).status_code == 405

    text = await scrape(client)

    assert sample(text, REQUESTS, method="POST", route="/images", status="200") == 2
    assert sample(text, REQUESTS, method="GET", route="/images/{image_id}", status="200") == 2
    assert sample(text, REQUESTS, method="GET", route="/images/{image_id}", status="404") == 1
    assert sample(text, REQUESTS, method="GET", route="/images/{image_id}", status="400") == 1
    assert sample(text, REQUESTS, method="GET", route="/images/{image_id}/image", status="200") == 1
    assert sample(text, REQUESTS, method="GET", route="/images", status="200") == 1
    assert sample(text, REQUESTS, method="GET", route="unmatched", status="404") == 1
    assert sample(text, REQUESTS, method="other", route="/images", status="405") == 1
    # The latency histogram has the same labels, one observation per request.
    assert sample(text, DURATIONS, method="GET", route="/images/{image_id}", status="200") == 2
    # Never a raw path, an id or a query value: every label value is a template or a fixed word.
    assert not OBJECT_ID.search(text)
    assert "s3cr3t" not in text
    assert label_values(text, REQUESTS, "route") <= {
        "/images",
        "/images/{image_id}",
        "/images/{image_id}/image",
        "unmatched",
    }
    # The process collectors of an ordinary Prometheus client are there too.
    assert sample(text, "process_resident_memory_bytes") > 0


async def test_graphql_operations_by_type_and_bounded_name(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image())).json()
    await gql(client, "query ListImages { images { total } }")
    await gql(client, "{ images { total } }")
    await gql(client, "mutation Retag($id: ID!) { updateImage(id: $id, set: {a: 1}) { id } }", {"id": created["_id"]})
    await gql(client, "query Broken { noSuchField }")  # parses, fails validation
    await gql(client, "query { images {")  # does not parse
    # An operationName the document lacks: Strawberry answers 400 before any operation runs.
    ghost = await client.post("/graphql", json={"query": "query Real { images { total } }", "operationName": "Ghost"})
    assert ghost.status_code == 400
    await gql(client, f"query {'N' * 65} {{ images {{ total }} }}")  # a valid name, but too long
    for index in range(MAX_GRAPHQL_NAMES + 5):  # a client inventing names cannot add series forever
        await gql(client, f"query Generated{index} {{ images {{ total }} }}")

    text = await scrape(client)

    assert sample(text, GRAPHQL, operation_type="query", operation_name="ListImages", outcome="ok") == 1
    assert sample(text, GRAPHQL, operation_type="query", operation_name="anonymous", outcome="ok") == 1
    assert sample(text, GRAPHQL, operation_type="mutation", operation_name="Retag", outcome="ok") == 1
    assert sample(text, GRAPHQL, operation_type="query", operation_name="Broken", outcome="error") == 1
    # No document: nothing trustworthy to name it by.
    assert sample(text, GRAPHQL, operation_type="unknown", operation_name="unknown", outcome="error") == 1
    assert "Ghost" not in text
    assert sample(text, REQUESTS, method="POST", route="/graphql", status="400") == 1
    names = label_values(text, GRAPHQL, "operation_name")
    assert len(names - {"anonymous", "other", "unknown"}) == MAX_GRAPHQL_NAMES
    # ListImages, Retag and Broken took 3 of the places; the long name and the rest are "other".
    generated_past_cap = (MAX_GRAPHQL_NAMES + 5) - (MAX_GRAPHQL_NAMES - 3)
    assert sample(text, GRAPHQL, operation_name="other") == 1 + generated_past_cap
    assert sample(text, GRAPHQL_DURATIONS, operation_type="mutation", operation_name="Retag") == 1
    assert sample(text, REQUESTS, method="POST", route="/graphql") == 7 + MAX_GRAPHQL_NAMES + 5


async def test_upload_and_download_bytes(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    small = make_image(40, 30)
    rest = (await upload(client, cat_jpeg, filename="cat.jpg")).json()
    response = await gql_upload(
        client,
        'mutation ($file: Upload!) { uploadImage(file: $file, path: "small.png") { id } }',
        {"file": None},
        {"0": ("variables.file", ("small.png", small))},
    )
    assert "errors" not in response.json(), response.json()
    refused = await upload(client, b"not an image at all", filename="x.png")
    assert refused.status_code == 415
    text = await scrape(client)
    assert sample(text, UPLOADED) == len(cat_jpeg) + len(small)  # only what was stored
    assert sample(text, DOWNLOADED) == 0

    for route in ("image", "file"):
        response = await client.get(f"/images/{rest['_id']}/{route}")
        assert response.content == cat_jpeg

    text = await scrape(client)
    assert sample(text, DOWNLOADED) == 2 * len(cat_jpeg)
    assert sample(text, UPLOADED) == len(cat_jpeg) + len(small)


async def test_export_and_import_are_counted_and_timed(client: httpx.AsyncClient) -> None:
    images = [make_image(10 + index, 10) for index in range(3)]
    for index, content in enumerate(images):
        await upload(client, content, fields={"file": f"set/{index}.png"})
    exported = await client.get("/export")
    assert exported.status_code == 200
    assert (await client.delete("/images")).json()["deletedCount"] == 3

    assert (await import_zip(client, exported.content)).json()["imported"] == 3
    assert (await import_zip(client, b"not a zip")).status_code == 400

    text = await scrape(client)
    assert sample(text, ARCHIVES, operation="export", outcome="ok") == 1
    assert sample(text, ARCHIVES, operation="import", outcome="ok") == 1
    assert sample(text, ARCHIVES, operation="import", outcome="refused") == 1
    assert sample(text, ARCHIVES, outcome="error") == 0
    assert sample(text, ARCHIVE_DURATIONS, operation="export") == 1
    assert sample(text, ARCHIVE_DURATIONS, operation="import") == 2
    # Imported images are stored like uploads; the export is not an image download.
    assert sample(text, UPLOADED) == 2 * sum(len(content) for content in images)
    assert sample(text, DOWNLOADED) == 0
    assert sample(text, REQUESTS, method="GET", route="/export", status="200") == 1
