"""The reference upload for bench_floor: the least `POST /images` does, served as the service is.

Plain Starlette (no FastAPI) on uvicorn, run with the very options app/server.py's `serve` gives
uvicorn for the service (its HTTP protocol, event loop, limits, keep-alive, graceful stop), only
the app, host and port differ. `POST /images` parses the multipart form (an `image` file, a
`file` path; any other field is metadata, as the service takes `label=cat`), writes the file
beside a temporary name and renames it (as the service's local storage does), and inserts one
document shaped as the service's (`file`, `userId` None, `time`, `data`, `dataKeys`, `size`,
`contentType`, `__v` 0, `revision` 1) into the database with PyMongo's async client. Nothing
else: the content type is the part's (no sniffing, so no `width`/`height`), no checksum, no
lease, no look at the path first. `POST /files` does the same without the insert: HTTP, the
form and the file alone.

    BARE_UPLOAD_ROOT=/tmp/files BARE_UPLOAD_MONGODB=mongodb://127.0.0.1:27017/db BARE_UPLOAD_PORT=3001 \\
        .venv/bin/python -m bench.bare_upload

`BARE_UPLOAD_MONGODB` names the database in its path, as the service's
`MONGODB_CONNECTION_STRING` does; the documents go to its collection `BARE_UPLOAD_COLLECTION`
(default `bare_images`). Without it, `POST /images` answers 503 and `POST /files` still works.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import uvicorn
from anyio import to_thread
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(os.environ.get("BARE_UPLOAD_ROOT", "bare-uploads"))
# The fields with a meaning of their own (the service has two more, `time` and `_id`).
SPECIAL_FIELDS = {"image", "file"}
Document = dict[str, Any]


def write_file(root: Path, key: str, content: bytes) -> None:
    """Write `content` at `root/key` beside a temporary name, then rename it into place."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    partial.write_bytes(content)
    os.replace(partial, path)


def stored_time() -> datetime:
    """Now, as the service stores a time (app/models.py `utc_now`): UTC, whole milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def receive(request: Request) -> Document | JSONResponse:
    """Parse the form and write the file; the image's document, or the answer to a bad form."""
    async with request.form() as form:
        image, file = form.get("image"), form.get("file")
        if not isinstance(image, UploadFile) or not isinstance(file, str) or not file:
            return JSONResponse({"detail": "an `image` file and a `file` path are required"}, status_code=400)
        content = await image.read()
        await to_thread.run_sync(write_file, ROOT, file, content)
        data = {
            name: value for name, value in form.multi_items() if name not in SPECIAL_FIELDS and isinstance(value, str)
        }
    return {
        "file": file,
        "userId": None,
        "time": stored_time(),
        "data": data,
        "dataKeys": sorted(data),
        "size": len(content),
        "contentType": image.content_type,
        "__v": 0,
        "revision": 1,
    }


async def upload(request: Request) -> JSONResponse:
    images: AsyncCollection[Document] | None = request.app.state.images
    if images is None:
        return JSONResponse({"detail": "BARE_UPLOAD_MONGODB is not set"}, status_code=503)
    document = await receive(request)
    if isinstance(document, JSONResponse):
        return document
    await images.insert_one(document)
    return JSONResponse({"_id": str(document["_id"]), "file": document["file"]})


async def upload_file_only(request: Request) -> JSONResponse:
    document = await receive(request)
    if isinstance(document, JSONResponse):
        return document
    return JSONResponse({"file": document["file"]})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    uri = os.environ.get("BARE_UPLOAD_MONGODB")
    client: AsyncMongoClient[Document] | None = AsyncMongoClient(uri) if uri else None
    app.state.images = None
    if client is not None:
        app.state.images = client.get_default_database()[os.environ.get("BARE_UPLOAD_COLLECTION", "bare_images")]
    try:
        yield
    finally:
        if client is not None:
            await client.close()


app = Starlette(
    routes=[Route("/images", upload, methods=["POST"]), Route("/files", upload_file_only, methods=["POST"])],
    lifespan=lifespan,
)


def service_uvicorn_options() -> dict[str, Any]:
    """The keyword arguments app/server.py's `serve` passes to `uvicorn.run`, but its app.

    Taken from `serve` itself (its call of `uvicorn.run` caught, never run), so that whatever
    it sets now or later (protocol, loop, limits, keep-alive) is set here too.
    """
    from app.config import Settings
    from app.server import serve

    options: dict[str, Any] = {}
    with mock.patch.object(uvicorn, "run", lambda target, **given: options.update(given)):
        serve(Settings.model_construct())  # the defaults, unvalidated: only its options are kept
    if not options:
        raise RuntimeError("app.server.serve no longer calls uvicorn.run: update bench/bare_upload.py")
    options.pop("factory", None)  # the service's app is a factory; this one is a module attribute
    return options


def main() -> None:
    options = service_uvicorn_options() | {
        "host": os.environ.get("BARE_UPLOAD_HOST", "127.0.0.1"),
        "port": int(os.environ.get("BARE_UPLOAD_PORT", "3001")),
    }
    uvicorn.run("bench.bare_upload:app", **options)


if __name__ == "__main__":
    main()
