"""`GET /export?format=coco`: the matching images as a COCO object-detection dataset.

Layout, with the split `all` (one split until splits are built):

    annotations/instances_all.json   {"images", "annotations", "categories"}
    images/all/<file>                each image at its path, folders kept
    report.json                      what was written, and what could not be

Labels and boxes are read by the box convention (app/domain/annotations.py), from the fields
`labelField`/`boxesField` name. All of them are read and checked before the first byte: a box
that breaks the convention is a 400 naming the image and the box, not an archive cut short.
That first pass reads the documents only (no file), and also gives the categories their ids:
the box labels in sorted order, 1 up. Images take ids 1 up in the export's order and
annotations likewise, so an export of the same data gives the same ids.

A box's `area` and `iscrowd` are kept when it holds them (else w × h, or the polygon's area,
and 0); `score` stays on the annotation; its other keys go under `attributes`; a polygon
becomes the annotation's `segmentation`. Image-level labels go on the image entry as `labels`.
So nothing the convention holds is dropped; an image whose file is missing is left out, and
named in the report. Memory stays bounded: the images and annotations lists are spooled to
temporary files while the images stream, and the JSON is written from them at the end.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from stream_zip import ZIP_64

from app.domain.annotations import Annotations, Box, annotations_of
from app.domain.archives.export import BATCH, FILE_MODE, SPOOL_BYTES, Member, modified_time, read_spooled, zipped
from app.domain.images.documents import loaded
from app.domain.query import ImageQuery, scoped
from app.domain.scope import Scope
from app.domain.writes import replacement
from app.errors import NotFound
from app.metrics import Metrics
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

SPLIT = "all"
CHECKED_FIELDS = {"file": 1, "data": 1, "width": 1, "height": 1}

# Every matching document in the export's order, a batch at a time, with this projection.
Reads = Callable[[Mapping[str, Any] | None], AsyncIterator[list[dict[str, Any]]]]


@dataclass(frozen=True, kw_only=True)
class Fields:
    label: str  # under `data`
    boxes: str


class _Written:
    """What the streaming pass has written so far, spooled."""

    def __init__(self) -> None:
        # Closed (and so deleted) by close(), when the response ends however it ends.
        self.images: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.annotations: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.image_count = 0
        self.annotation_count = 0
        self.missing: list[str] = []

    def close(self) -> None:
        self.images.close()
        self.annotations.close()


async def export_coco(
    *, store: Store, storage: Storage, scope: Scope, query: ImageQuery, fields: Fields, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip's bytes; BadInput or an outage raised before the first byte."""
    condition, sort = scoped(query.filter, scope), query.sort

    def batches(projection: Mapping[str, Any] | None) -> AsyncIterator[list[dict[str, Any]]]:
        return store.images.in_order(condition, projection, sort, BATCH)

    return await coco_archive(batches, fields=fields, store=store, storage=storage, metrics=metrics)


async def coco_archive(
    batches: Reads, *, fields: Fields, store: Store, storage: Storage, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip's bytes; BadInput or an outage raised before the first byte."""
    store.require_ready()
    labels: set[str] = set()
    with store.errors(user_query=True):
        async for batch in batches(CHECKED_FIELDS):
            for document in batch:
                found = _annotations(document, fields)
                labels.update(box.label for box in found.boxes)
    categories = {label: number for number, label in enumerate(sorted(labels), start=1)}
    return _zip(batches, categories, fields, store, storage, metrics)


def _annotations(document: dict[str, Any], fields: Fields) -> Annotations:
    return annotations_of(loaded(document), label_field=fields.label, boxes_field=fields.boxes)


async def _zip(
    batches: Reads,
    categories: dict[str, int],
    fields: Fields,
    store: Store,
    storage: Storage,
    metrics: Metrics,
) -> AsyncIterator[bytes]:
    written = _Written()
    try:
        async for chunk in zipped(_members(batches, categories, fields, store, storage, written), metrics):
            yield chunk
    finally:
        written.close()


async def _members(
    batches: Reads,
    categories: dict[str, int],
    fields: Fields,
    store: Store,
    storage: Storage,
    written: _Written,
) -> AsyncIterator[Member]:
    with store.errors():
        async for batch in batches(None):
            for document in batch:
                key = document["file"]
                try:
                    opened = await replacement.open_stored(storage, key, document.get(replacement.PENDING))
                except NotFound:
                    log.warning("export: the file of image %s (%r) is missing; left out", document["_id"], key)
                    written.missing.append(key)
                    continue
                _write_entries(written, document, _annotations(document, fields), categories)
                yield f"images/{SPLIT}/{key}", modified_time(document), FILE_MODE, ZIP_64, opened.chunks
    yield f"annotations/instances_{SPLIT}.json", datetime.now(UTC), FILE_MODE, ZIP_64, _instances(written, categories)
    report = {
        "format": "coco",
        "split": SPLIT,
        "images": written.image_count,
        "annotations": written.annotation_count,
        "categories": len(categories),
        "missingFiles": written.missing,
        "notCarried": [],
    }
    yield "report.json", datetime.now(UTC), FILE_MODE, ZIP_64, _bytes(json.dumps(report, indent=1).encode())


def _write_entries(
    written: _Written, document: Mapping[str, Any], found: Annotations, categories: dict[str, int]
) -> None:
    written.image_count += 1
    image_id = written.image_count
    entry: dict[str, Any] = {
        "id": image_id,
        "file_name": document["file"],
        "width": document.get("width"),
        "height": document.get("height"),
    }
    if found.labels:
        entry["labels"] = found.labels
    _append(written.images, image_id == 1, entry)
    for box in found.boxes:
        written.annotation_count += 1
        annotation = _annotation(box, written.annotation_count, image_id, categories[box.label])
        _append(written.annotations, written.annotation_count == 1, annotation)


def _annotation(box: Box, annotation_id: int, image_id: int, category_id: int) -> dict[str, Any]:
    extra = dict(box.extra)
    area = extra.pop("area", None)
    iscrowd = extra.pop("iscrowd", 0)
    annotation: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [box.x, box.y, box.w, box.h],
        "area": area if isinstance(area, (int, float)) else _area(box),
        "iscrowd": iscrowd,
        "segmentation": [[coordinate for point in box.polygon for coordinate in point]] if box.polygon else [],
    }
    if box.score is not None:
        annotation["score"] = box.score
    if box.id is not None:
        extra["id"] = box.id  # the box's own id; COCO's `id` is the annotation's number
    if extra:
        annotation["attributes"] = extra
    return annotation


def _area(box: Box) -> float:
    if not box.polygon:
        return box.w * box.h
    points = box.polygon
    twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))
    return abs(twice) / 2


def _append(target: IO[bytes], first: bool, entry: Mapping[str, Any]) -> None:
    target.write((b"" if first else b",\n") + json.dumps(entry, ensure_ascii=False).encode())


async def _instances(written: _Written, categories: dict[str, int]) -> AsyncIterator[bytes]:
    yield b'{"images": [\n'
    async for chunk in read_spooled(written.images):
        yield chunk
    yield b'\n], "annotations": [\n'
    async for chunk in read_spooled(written.annotations):
        yield chunk
    listed = [{"id": number, "name": label, "supercategory": ""} for label, number in categories.items()]
    yield b'\n], "categories": ' + json.dumps(listed, ensure_ascii=False).encode() + b"}\n"


async def _bytes(content: bytes) -> AsyncIterator[bytes]:
    yield content
