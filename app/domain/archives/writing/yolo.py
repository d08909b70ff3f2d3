"""YOLO (Ultralytics' layout): `images/<s>/<file>`, `labels/<s>/<file without extension>.txt`,
and `data.yaml` naming the classes and the splits.

A label file has a line per box, `class cx cy w h`, the centre and size as fractions of the
image's; a box with a polygon is written as a YOLO segment instead, `class x1 y1 x2 y2 …`, its
points as fractions (the box is their bounds when read back). Numbers are written in full
(`repr`), so a round trip keeps coordinates to well under a millionth of a pixel. Every image
gets its label file, empty when it has no boxes: YOLO reads that as "no objects" (background).
Classes are the box labels in sorted order, numbered from 0.

`data.yaml` gives each split its images folder by name; when there is no `train` split (as with
one split, `all`), `train` and `val` both name the first split's, so the dataset trains as it is.

YOLO holds a class and a box per object and nothing else: image-level labels, a box's score, id
and other keys, and the rest of the metadata are listed in the report as not carried.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from app.domain.annotations import Annotations, Box
from app.domain.archives.training import Fields, Format, Sample, Survey
from app.domain.archives.writing.common import box_keys, data_fields, one_chunk
from app.domain.archives.zipping import FILE_MODE, Member
from app.errors import BadInput

WHY = "YOLO label files hold a class and a box per object, nothing else"


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    width, height = document.get("width"), document.get("height")
    if found.boxes and not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise BadInput(
            f"Image {document['_id']} has boxes but no known size, so YOLO cannot give them as fractions of it."
        )


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    if found.labels:
        yield f"data.{fields.label}", WHY
    yield from box_keys(found, fields, ("score", "id", "extra"), WHY)
    yield from data_fields(document, fields, WHY)


def label_path(split: str, file: str) -> str:
    stem = posixpath.splitext(file)[0]
    return f"labels/{split}/{stem}.txt"


class YoloWriter:
    def __init__(self, survey: Survey, fields: Fields) -> None:
        self._classes = {label: number for number, label in enumerate(survey.categories)}
        self._splits = [split for split in survey.splits if survey.counts.get(split)]
        self._boxes = 0

    def summary(self) -> dict[str, Any]:
        return {"boxes": self._boxes}

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        async for sample in samples:
            yield f"images/{sample.split}/{sample.file}", sample.time, FILE_MODE, sample.chunks
            lines = self._lines(sample)
            yield label_path(sample.split, sample.file), sample.time, FILE_MODE, one_chunk(lines)

    async def closing(self) -> AsyncIterator[Member]:
        yield "data.yaml", datetime.now(UTC), FILE_MODE, one_chunk(self._data_yaml())

    def close(self) -> None:
        pass

    def _lines(self, sample: Sample) -> bytes:
        if not sample.annotations.boxes:
            return b""
        width, height = sample.document["width"], sample.document["height"]
        lines = []
        for box in sample.annotations.boxes:
            self._boxes += 1
            lines.append(" ".join([str(self._classes[box.label]), *_coordinates(box, width, height)]))
        return "".join(f"{line}\n" for line in lines).encode()

    def _data_yaml(self) -> bytes:
        folders: dict[str, Any] = {"path": "."}
        if "train" not in self._splits and self._splits:
            first = self._splits[0]
            folders.update({"train": f"images/{first}", "val": f"images/{first}"})
        folders.update({split: f"images/{split}" for split in self._splits})
        folders["nc"] = len(self._classes)
        folders["names"] = {number: label for label, number in self._classes.items()}
        text: str = yaml.safe_dump(folders, sort_keys=False, allow_unicode=True)
        return text.encode()


def _coordinates(box: Box, width: int, height: int) -> list[str]:
    if box.polygon:
        return [repr(value) for x, y in box.polygon for value in (x / width, y / height)]
    centre_x, centre_y = (box.x + box.w / 2) / width, (box.y + box.h / 2) / height
    return [repr(centre_x), repr(centre_y), repr(box.w / width), repr(box.h / height)]


YOLO = Format(name="yolo", check=check, not_carried=not_carried, writer=YoloWriter)
