"""A small dataset every query test can reason about: five images with varied metadata."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.utils.images import make_image

SEED = [
    ("cats/a.jpg", "2022-01-01T00:00:00Z", {"label": "cat", "count": 2, "part_number": "200-004", "ok": True}),
    ("cats/b.JPG", "2022-06-01T12:00:00Z", {"label": "cat", "count": "2", "tags": ["x", "y"]}),
    ("dogs/c.png", "2023-01-01T00:00:00Z", {"label": "dog", "count": 3, "key3": "value3", "nested": {"a": 1}}),
    ("dogs/d.png", "2023-06-01T00:00:00Z", {"label": "Doggo", "key3": "value3"}),
    ("e.png", "2024-01-01T00:00:00Z", {}),
]


async def upload_seed(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """The seed images, uploaded through the REST API, by file name."""
    created = {}
    for file, time, data in SEED:
        fields = {"file": file, "time": time, "data": json.dumps(data)}
        response = await client.post("/images", files={"image": (file, make_image())}, data=fields)
        assert response.status_code == 200, response.text
        created[file] = response.json()
    return created
