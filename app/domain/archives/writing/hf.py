"""Hugging Face's ImageFolder with metadata: `<s>/<file>` and `<s>/metadata.jsonl`, which
`datasets.load_dataset("imagefolder", data_dir=…)` loads with every column.

A line per image: `file_name`, then every top-level metadata key any exported image holds (null
where this one has none; its labels among them), then its boxes as `objects`, a list with one
object per box: `bbox` (`[x, y, w, h]` in pixels, as floats), `category` (the box's label), and
every other key any exported box holds (`score`, `id`, `polygon` flat as `[x1, y1, x2, y2, …]`,
any other), null where this box lacks it. Why a list of objects rather than Hugging Face's
other style, a list per key: pyarrow's JSON reader, which `datasets` reads metadata.jsonl with,
loses the nulls in a list inside an object (`"score": [null, 0.9]` is read as `[0.9, 0.0]`),
and a box without a score is common.

`datasets` infers each split's features from its own metadata.jsonl and refuses splits whose
features differ; every line has every column, so they differ only where a column holds values
in one split and none at all in another (no box in the test split, say). The report names each
such column under `nullThroughoutSplits`. Only a metadata key named `file_name` or `objects`
cannot be carried (the format uses the names itself); the report lists it under `notCarried`.
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

RESERVED = ("file_name", "objects")
BOX_KEYS = ("bbox", "category")  # objects' own lists
WHY = "metadata.jsonl uses this name itself"


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    """metadata.jsonl holds any image the convention reads."""


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    data = document.get("data") or {}
    yield from ((f"data.{key}", WHY) for key in RESERVED if key in data)
    taken = {key for box in found.boxes for key in box.extra if key in BOX_KEYS}
    yield from ((f"data.{fields.boxes}[].{key}", WHY) for key in sorted(taken))


class HfWriter:
    def __init__(self, survey: Survey, fields: Fields) -> None:
        self._fields = fields
        # Every line holds every column, null where the image has none: `datasets` needs one
        # set of features across the lines and the splits' metadata files.
        self._columns = [key for key in survey.data_keys if key not in (*RESERVED, fields.boxes)]
        self._box_keys = [key for key in survey.box_keys if key not in BOX_KEYS]
        self._splits = survey.splits
        self._spools: dict[str, Spool] = {}  # split -> its metadata.jsonl
        self._boxes = 0
        self._valued: dict[str, set[str]] = {}  # split -> the columns some line of it gives a value

    def summary(self) -> dict[str, Any]:
        return {"boxes": self._boxes, "nullThroughoutSplits": self._null_throughout()}

    def _null_throughout(self) -> list[dict[str, Any]]:
        """Columns with values in one split and none in another: `datasets` infers each split's
        features from its own metadata.jsonl, and refuses splits whose features differ, so these
        are named in the report (the export itself stays whole)."""
        columns = set().union(*self._valued.values()) if self._valued else set()
        found = []
        for column in sorted(columns):
            empty = [split for split, valued in self._valued.items() if column not in valued]
            if empty:
                found.append({"column": column, "splits": empty})
        return found

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        async for sample in samples:
            if sample.split not in self._spools:
                self._spools[sample.split] = Spool(shares=len(self._splits))
            line = self._line(sample)
            self._valued.setdefault(sample.split, set()).update(_valued_columns(line))
            self._spools[sample.split].write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            yield f"{sample.split}/{sample.file}", sample.time, FILE_MODE, sample.chunks

    async def closing(self) -> AsyncIterator[Member]:
        for split in self._splits:
            if split in self._spools:
                yield f"{split}/metadata.jsonl", datetime.now(UTC), FILE_MODE, self._spools[split].chunks()

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()

    def _line(self, sample: Sample) -> dict[str, Any]:
        data = other_data(sample.document, self._fields, keep_labels=True)
        self._boxes += len(sample.annotations.boxes)
        columns = {key: data.get(key) for key in self._columns}
        return {"file_name": sample.file, **columns, "objects": self._objects(sample.annotations.boxes)}

    def _objects(self, boxes: list[Box]) -> list[dict[str, Any]]:
        objects = []
        for box in boxes:
            keys = _box_keys(box)
            # As floats always: a whole-pixel box in one split and a fractional one in another
            # would otherwise give the splits different features.
            found = {"bbox": [float(box.x), float(box.y), float(box.w), float(box.h)], "category": box.label}
            objects.append({**found, **{key: keys.get(key) for key in self._box_keys}})
        return objects


def _valued_columns(line: Mapping[str, Any]) -> Iterable[str]:
    for key, value in line.items():
        if key == "objects":
            yield from (f"objects.{name}" for box in value for name, item in box.items() if item is not None)
        elif value is not None:
            yield key


def _box_keys(box: Box) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if box.score is not None:
        keys["score"] = box.score
    if box.id is not None:
        keys["id"] = box.id
    if box.polygon is not None:
        keys["polygon"] = [value for point in box.polygon for value in point]
    keys.update({key: value for key, value in box.extra.items() if key not in BOX_KEYS})
    return keys


HF = Format(name="hf", check=check, not_carried=not_carried, writer=HfWriter)
