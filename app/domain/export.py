"""Export the matching images as a `.zip`, streamed while it is built.

Layout (the legacy service's, which its GUI and scripts read): every image at its `file` path,
then `mongodb_data.json` (an array of the documents) and `mongodb_data.xlsx` (a row per image,
one column per metadata key, nested keys flattened to dotted names).

Memory stays bounded whatever the dataset: documents come from a database cursor, file bytes
from the storage stream, and the zip from stream-zip, chunk by chunk. The JSON is written to a
spooled temporary file while the images go out (it follows them in the archive); the workbook
is built in openpyxl's write-only mode from a second pass over the matches, once its columns
are known. Neither is ever the whole archive.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from anyio import to_thread
from openpyxl import Workbook
from pymongo.asynchronous.collection import AsyncCollection
from stream_zip import ZIP_64, async_stream_zip

from app.db import Database
from app.domain import replacement
from app.domain.query import ImageQuery, scoped
from app.domain.scope import Scope
from app.errors import NotFound
from app.metrics import Metrics
from app.models import Image, document_to_json
from app.storage import Storage
from app.storage.base import CHUNK_SIZE

log = logging.getLogger(__name__)

JSON_NAME = "mongodb_data.json"
XLSX_NAME = "mongodb_data.xlsx"
FILE_MODE = 0o100644
# Images are compressed already; deflate's fastest level keeps the zip standard (every reader
# takes it) without spending CPU on bytes that will not shrink.
COMPRESSION_LEVEL = 1
SPOOL_BYTES = 8 * 1024 * 1024
ROW_BATCH = 500
XLSX_MAX_ROWS = 1_048_575  # Excel's limit, less the header
XLSX_MAX_COLUMNS = 16_384 - 3
XLSX_MAX_TEXT = 32_767
# Characters the xlsx XML cannot hold (openpyxl refuses them).
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def archive_name(now: datetime | None = None) -> str:
    return f"images-export-{(now or datetime.now(UTC)):%Y-%m-%d}.zip"


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The documents an archive holds: images, or the frozen images of a snapshot."""

    collection: AsyncCollection[dict[str, Any]]
    condition: dict[str, Any]
    sort: list[tuple[str, int]]
    # For frozen images: whether the file stored at the path is still the one that was frozen.
    # One that is not goes without its bytes, flagged `fileChanged`: never silently swapped.
    still_same: Callable[[Mapping[str, Any]], Awaitable[bool]] | None = None


async def export_archive(
    *, database: Database, storage: Storage, scope: Scope, query: ImageQuery, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip's bytes. Raises before the first byte if the database is unreachable."""
    selection = Selection(
        collection=Image.get_pymongo_collection(), condition=scoped(query.filter, scope), sort=query.sort
    )
    return await archive_of(selection, database=database, storage=storage, metrics=metrics)


async def archive_of(
    selection: Selection, *, database: Database, storage: Storage, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip of any selection of image documents; raises before the first byte as above."""
    database.require_ready()
    with database.errors(user_query=True):
        # Fails here (not mid-stream) for a bad query or an unreachable database.
        await selection.collection.find_one(selection.condition, {"_id": 1})
    return _zip_chunks(database, storage, selection, metrics)


async def _zip_chunks(
    database: Database, storage: Storage, selection: Selection, metrics: Metrics
) -> AsyncIterator[bytes]:
    state = _ExportState()
    # Timed from the first byte to the last: an export refused up front is no archive.
    with metrics.archive("export"):
        try:
            chunks = async_stream_zip(
                _members(database, storage, selection, state),
                chunk_size=CHUNK_SIZE,
                get_compressobj=lambda: zlib.compressobj(level=COMPRESSION_LEVEL, wbits=-zlib.MAX_WBITS),
            )
            async for chunk in chunks:
                yield chunk
        finally:
            state.close()


class _ExportState:
    """What the first pass learns for the two files that follow the images."""

    def __init__(self) -> None:
        # Closed (and so deleted) by close(), when the response ends however it ends.
        self.json: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.json.write(b"[")
        self.count = 0
        self.columns: set[str] = set()
        self.missing: list[str] = []

    def add(self, document: Mapping[str, Any], *, file_missing: bool = False, file_changed: bool = False) -> None:
        rendered = document_to_json(document)
        if file_missing:
            rendered["fileMissing"] = True  # listed, so the metadata survives; its file could not be read
        if file_changed:
            rendered["fileChanged"] = True  # a snapshot's: the file at its path is no longer the frozen one
        self.json.write((b",\n" if self.count else b"\n") + json.dumps(rendered, ensure_ascii=False).encode())
        self.count += 1
        data = document.get("data")
        if isinstance(data, Mapping):
            self.columns.update(flatten(data))

    def close(self) -> None:
        self.json.close()


async def _members(
    database: Database, storage: Storage, selection: Selection, state: _ExportState
) -> AsyncIterator[tuple[str, datetime, int, Any, AsyncIterator[bytes]]]:
    with database.errors():
        cursor = selection.collection.find(selection.condition, sort=selection.sort, batch_size=200)
        async for document in cursor:
            key = document["file"]  # the storage key, in both scope modes
            if selection.still_same is not None and not await selection.still_same(document):
                state.add(document, file_changed=True)
                continue
            try:
                opened = await replacement.open_stored(storage, key, document.get(replacement.PENDING))
            except NotFound:
                log.warning("export: the file of image %s (%r) is missing; listed without it", document["_id"], key)
                state.add(document, file_missing=True)
                continue
            state.add(document)
            yield document["file"], _modified(document), FILE_MODE, ZIP_64, opened.chunks

    state.json.write(b"\n]\n")
    yield JSON_NAME, datetime.now(UTC), FILE_MODE, ZIP_64, _read_file(state.json)

    with tempfile.TemporaryFile() as workbook_file:
        await _write_workbook(database, workbook_file, selection, sorted(state.columns))
        yield XLSX_NAME, datetime.now(UTC), FILE_MODE, ZIP_64, _read_file(workbook_file)


def _modified(document: Mapping[str, Any]) -> datetime:
    moment = document.get("time")
    # Zip timestamps start in 1980.
    if isinstance(moment, datetime) and moment.year >= 1980:
        return moment
    return datetime.now(UTC)


async def _read_file(handle: IO[bytes]) -> AsyncIterator[bytes]:
    await to_thread.run_sync(handle.seek, 0)
    while chunk := await to_thread.run_sync(handle.read, CHUNK_SIZE):
        yield chunk


async def _write_workbook(database: Database, target: IO[bytes], selection: Selection, columns: list[str]) -> None:
    columns = columns[:XLSX_MAX_COLUMNS]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("images")
    sheet.append(["_id", "file", "time", *columns])
    rows: list[list[Any]] = []
    written = 0
    projection = {"file": 1, "time": 1, "data": 1}
    found = selection.collection.find(selection.condition, projection, sort=selection.sort, batch_size=ROW_BATCH)
    with database.errors():
        async for document in found:
            if written + len(rows) >= XLSX_MAX_ROWS:
                log.warning("export: the spreadsheet stops at Excel's row limit; the JSON has every image")
                break
            rows.append(_row(document, columns))
            if len(rows) == ROW_BATCH:  # build rows in a worker thread, not on the event loop
                await to_thread.run_sync(_append_rows, sheet, rows)
                written, rows = written + len(rows), []
    await to_thread.run_sync(_append_rows, sheet, rows)
    await to_thread.run_sync(workbook.save, target)


def _append_rows(sheet: Any, rows: list[list[Any]]) -> None:
    for row in rows:
        sheet.append(row)


def _row(document: Mapping[str, Any], columns: list[str]) -> list[Any]:
    data = document.get("data")
    flat = flatten(data) if isinstance(data, Mapping) else {}
    time = document.get("time")
    return [
        str(document["_id"]),
        _cell(document.get("file")),
        time.astimezone(UTC).replace(tzinfo=None) if isinstance(time, datetime) else None,
        *(_cell(flat.get(column)) for column in columns),
    ]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"camera": {"iso": 200}}` → `{"camera.iso": 200}`; lists stay whole (one cell)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return _ILLEGAL_XLSX.sub("", text)[:XLSX_MAX_TEXT]
