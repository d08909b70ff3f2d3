"""COCO object detection: `annotations/instances_<s>.json` and `images/<s>/<file>` per split.

Categories take ids 1 up in the order of their names; images and annotations take ids 1 up in
the export's order, across splits; so an export of the same data gives the same ids. A box's
`area` and `iscrowd` are kept when it holds them (else w × h, or the polygon's area, and 0), its
`supercategory` names its category's, `score` stays on the annotation, a polygon becomes its
`segmentation`, and its other keys (its own `id` too) go under `attributes`. Image-level labels
go on the image entry as `labels`, and the rest of the metadata beside them (under `metadata`
for a key COCO uses itself). So COCO carries everything the convention holds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.domain.annotations import Annotations, Box
from app.domain.archives.training import Fields, Format, Sample, Survey
from app.domain.archives.writing.common import Spool, other_data
from app.domain.archives.zipping import FILE_MODE, Member

IMAGE_KEYS = frozenset({"id", "file_name", "width", "height", "labels", "metadata"})


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    """COCO holds any image the convention reads."""


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    return ()


class CocoWriter:
    def __init__(self, survey: Survey, fields: Fields) -> None:
        self._fields = fields
        self._categories = {label: number for number, label in enumerate(survey.categories, start=1)}
        self._supercategories = survey.categories
        self._splits = survey.splits
        self._images = 0
        self._annotations = 0
        self._spools: dict[str, tuple[Spool, Spool]] = {}  # split -> its images, its annotations

    def summary(self) -> dict[str, Any]:
        return {"images": self._images, "annotations": self._annotations}

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        async for sample in samples:
            if sample.split not in self._spools:
                shares = 2 * len(self._splits)
                self._spools[sample.split] = (Spool(shares=shares), Spool(shares=shares))
            self._write(sample, *self._spools[sample.split])
            yield f"images/{sample.split}/{sample.file}", sample.time, FILE_MODE, sample.chunks

    async def closing(self) -> AsyncIterator[Member]:
        for split in self._splits:
            if split in self._spools:
                name = f"annotations/instances_{split}.json"
                yield name, datetime.now(UTC), FILE_MODE, self._instances(*self._spools[split])

    def close(self) -> None:
        for spools in self._spools.values():
            for spool in spools:
                spool.close()

    def _write(self, sample: Sample, images: Spool, annotations: Spool) -> None:
        self._images += 1
        image_id, document = self._images, sample.document
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": sample.file,
            "width": document.get("width"),
            "height": document.get("height"),
        }
        if sample.annotations.labels:
            entry["labels"] = sample.annotations.labels
        rest = other_data(document, self._fields)
        entry.update({key: value for key, value in rest.items() if key not in IMAGE_KEYS})
        if clashing := {key: value for key, value in rest.items() if key in IMAGE_KEYS}:
            entry["metadata"] = clashing
        _append(images, entry)
        for box in sample.annotations.boxes:
            self._annotations += 1
            _append(annotations, _annotation(box, self._annotations, image_id, self._categories[box.label]))

    async def _instances(self, images: Spool, annotations: Spool) -> AsyncIterator[bytes]:
        yield b'{"images": [\n'
        async for chunk in images.chunks():
            yield chunk
        yield b'\n], "annotations": [\n'
        async for chunk in annotations.chunks():
            yield chunk
        listed = [
            {"id": number, "name": label, "supercategory": self._supercategories[label]}
            for label, number in self._categories.items()
        ]
        yield b'\n], "categories": ' + json.dumps(listed, ensure_ascii=False).encode() + b"}\n"


def _annotation(box: Box, annotation_id: int, image_id: int, category_id: int) -> dict[str, Any]:
    extra = dict(box.extra)
    area = extra.pop("area", None)
    iscrowd = extra.pop("iscrowd", 0)
    extra.pop("supercategory", None)  # the category's
    annotation: dict[str, Any] = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [box.x, box.y, box.w, box.h],
        "area": area if isinstance(area, (int, float)) and not isinstance(area, bool) else _area(box),
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


def _append(target: Spool, entry: Mapping[str, Any]) -> None:
    target.write((b",\n" if target.count else b"") + json.dumps(entry, ensure_ascii=False).encode())


COCO = Format(name="coco", check=check, not_carried=not_carried, writer=CocoWriter)
