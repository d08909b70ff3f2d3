"""Export the matching images as a `.zip`, streamed while it is built.

Layout (the legacy service's, which its GUI and scripts read): every image at its `file` path,
then `mongodb_data.json` (an array of the documents) and `mongodb_data.xlsx` (a row per image,
one column per metadata key, nested keys flattened to dotted names).

The selection is read once, a batch at a time, found through the store as a list page is (so
as fast as the engine finds the matches). Memory stays bounded whatever the dataset: file
bytes come from the storage stream and the zip is written as it streams (zipping.py). While the
images go out, the JSON is written to a spooled temporary file (it follows them in the
archive), and each image's spreadsheet row to another; the workbook is built from those rows in
openpyxl's write-only mode once its columns are known. None of them is ever the whole archive.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import bson
from anyio import to_thread

from app.domain.archives.zipping import FILE_MODE, SPOOL_BYTES, Member, read_spooled, zipped
from app.domain.query import ImageQuery, scoped
from app.domain.scope import Scope
from app.domain.writes import replacement
from app.errors import NotFound
from app.metrics import Metrics
from app.models import document_to_json
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

JSON_NAME = "mongodb_data.json"
XLSX_NAME = "mongodb_data.xlsx"
BATCH = 200  # documents read at a time
ROW_BATCH = 500
XLSX_MAX_ROWS = 1_048_575  # Excel's limit, less the header
XLSX_MAX_COLUMNS = 16_384 - 3
XLSX_MAX_TEXT = 32_767
# Characters the xlsx XML cannot hold (openpyxl refuses them).
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def archive_name(now: datetime | None = None) -> str:
    return f"images-export-{(now or datetime.now(UTC)):%Y-%m-%d}.zip"


# Every document, a batch at a time, in the archive's order; with the projection given (None: whole).
Batches = Callable[[Mapping[str, Any] | None], AsyncIterator[list[dict[str, Any]]]]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The documents an archive holds: images, or the frozen images of a snapshot."""

    batches: Batches
    # For frozen images: their frozen bytes, opened (app/domain/datasets/kept.py). None where
    # they are gone (lost before snapshots kept bytes): listed without, flagged `fileChanged`,
    # never silently swapped for newer ones.
    open_frozen: Callable[[Mapping[str, Any]], Awaitable[replacement.Located | None]] | None = None


async def open_selected(
    selection: Selection, storage: Storage, document: Mapping[str, Any]
) -> replacement.Located | None:
    """The bytes of one selected document, opened; None for a frozen image whose bytes are
    gone. NotFound if its file is missing."""
    if selection.open_frozen is not None:
        return await selection.open_frozen(document)
    return await replacement.locate_stored(storage, document["file"], document.get(replacement.PENDING))


async def export_archive(
    *, store: Store, storage: Storage, scope: Scope, query: ImageQuery, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip's bytes. Raises before the first byte if the database is unreachable."""
    return await archive_of(matching(store, scope, query), store=store, storage=storage, metrics=metrics)


def matching(store: Store, scope: Scope, query: ImageQuery) -> Selection:
    """The images the query matches in the caller's scope, in the query's order."""
    condition, sort = scoped(query.filter, scope), query.sort
    return Selection(batches=lambda projection: store.images.in_order(condition, projection, sort, BATCH))


async def archive_of(selection: Selection, *, store: Store, storage: Storage, metrics: Metrics) -> AsyncIterator[bytes]:
    """The zip of any selection of image documents; raises before the first byte as above."""
    store.require_ready()
    batches = selection.batches(None)
    with store.errors(user_query=True):
        # Read here (not mid-stream): a bad query or an unreachable database fails the request.
        first: list[dict[str, Any]] = await anext(batches, [])
    return _zip_chunks(store, storage, selection, _after(first, batches), metrics)


async def _after(
    first: list[dict[str, Any]], rest: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[list[dict[str, Any]]]:
    if first:
        yield first
    async for batch in rest:
        yield batch


async def _zip_chunks(
    store: Store,
    storage: Storage,
    selection: Selection,
    batches: AsyncIterator[list[dict[str, Any]]],
    metrics: Metrics,
) -> AsyncIterator[bytes]:
    state = _ExportState()
    try:
        async for chunk in zipped(_members(store, storage, selection, batches, state), metrics):
            yield chunk
    finally:
        state.close()


class _ExportState:
    """What the first pass learns for the two files that follow the images."""

    def __init__(self) -> None:
        # Closed (and so deleted) by close(), when the response ends however it ends.
        self.json: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.json.write(b"[")
        # Each image's spreadsheet row, as BSON documents one after the other.
        self.rows: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
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
        flat = flatten(data) if isinstance(data, Mapping) else {}
        self.columns.update(flat)
        if self.count <= XLSX_MAX_ROWS:
            time = document.get("time")
            row = {"i": str(document["_id"]), "f": document.get("file"), "t": time, "d": flat}
            self.rows.write(bson.encode(row))

    def close(self) -> None:
        self.json.close()
        self.rows.close()


async def _members(
    store: Store,
    storage: Storage,
    selection: Selection,
    batches: AsyncIterator[list[dict[str, Any]]],
    state: _ExportState,
) -> AsyncIterator[Member]:
    with store.errors():
        async for batch in batches:
            for document in batch:
                key = document["file"]  # the storage key, in both scope modes
                try:
                    found = await open_selected(selection, storage, document)
                except NotFound:
                    log.warning("export: the file of image %s (%r) is missing; listed without it", document["_id"], key)
                    state.add(document, file_missing=True)
                    continue
                if found is None:
                    state.add(document, file_changed=True)
                    continue
                state.add(document)
                yield document["file"], modified_time(document), FILE_MODE, found.opened.chunks

    state.json.write(b"\n]\n")
    yield JSON_NAME, datetime.now(UTC), FILE_MODE, read_spooled(state.json)

    with tempfile.TemporaryFile() as workbook_file:
        await _write_workbook(workbook_file, state, sorted(state.columns))
        yield XLSX_NAME, datetime.now(UTC), FILE_MODE, read_spooled(workbook_file)


def modified_time(document: Mapping[str, Any]) -> datetime:
    moment = document.get("time")
    # Zip timestamps start in 1980.
    if isinstance(moment, datetime) and moment.year >= 1980:
        return moment
    return datetime.now(UTC)


async def _write_workbook(target: IO[bytes], state: _ExportState, columns: list[str]) -> None:
    # Imported at the first export: openpyxl holds 5 MB that a service which never exports
    # would carry for nothing.
    from openpyxl import Workbook  # noqa: PLC0415

    columns = columns[:XLSX_MAX_COLUMNS]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("images")
    sheet.append(["_id", "file", "time", *columns])
    if state.count > XLSX_MAX_ROWS:
        log.warning("export: the spreadsheet stops at Excel's row limit; the JSON has every image")
    await to_thread.run_sync(state.rows.seek, 0)
    rows = _stored_rows(state.rows)
    while batch := await to_thread.run_sync(_next_rows, rows, columns):  # not on the event loop
        await to_thread.run_sync(_append_rows, sheet, batch)
    await to_thread.run_sync(workbook.save, target)


def _stored_rows(handle: IO[bytes]) -> Iterator[dict[str, Any]]:
    return bson.decode_file_iter(handle, codec_options=bson.CodecOptions(tz_aware=True))


def _next_rows(rows: Iterator[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    batch = []
    for stored in rows:
        batch.append(_row(stored, columns))
        if len(batch) == ROW_BATCH:
            break
    return batch


def _append_rows(sheet: Any, rows: list[list[Any]]) -> None:
    for row in rows:
        sheet.append(row)


def _row(stored: Mapping[str, Any], columns: list[str]) -> list[Any]:
    flat = stored["d"]
    time = stored.get("t")
    return [
        stored["i"],
        _cell(stored.get("f")),
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
