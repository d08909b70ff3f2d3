"""What the upload routes assume of Starlette's multipart parsing (app/rest/forms.py)."""

from __future__ import annotations

import httpx
import pytest
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import Request

from app.rest.forms import held_in_memory


async def parsed_upload(content: bytes) -> UploadFile:
    """`content` as Starlette parses it from a real multipart body."""
    request = httpx.Request("POST", "http://testserver/", files={"image": ("x.png", content)})
    body = request.read()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(name.lower().encode(), value.encode()) for name, value in request.headers.items()],
    }
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(scope, receive).form()
    upload = form["image"]
    assert isinstance(upload, UploadFile)
    return upload


@pytest.mark.parametrize("extra", [-1, 0, 1, 5_000_000])
async def test_in_memory_exactly_while_starlette_has_not_spooled_to_disk(extra: int) -> None:
    upload = await parsed_upload(b"x" * (MultiPartParser.spool_max_size + extra))
    # The private flag of the SpooledTemporaryFile Starlette uses: what `held_in_memory` infers.
    rolled_to_disk = upload.file._rolled  # type: ignore[attr-defined]
    assert held_in_memory(upload) is not rolled_to_disk
    assert held_in_memory(upload) is (extra <= 0)
    await upload.close()
