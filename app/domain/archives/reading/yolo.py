"""YOLO (Ultralytics) detection and segmentation.

    data.yaml                       names: a list, or an {index: name} mapping (data.yml too)
    images/<split>/<file>           every file here is an image
    labels/<split>/<file>.txt       its boxes, `<file>` without its extension

A label line is `class cx cy w h` (a box) or `class x1 y1 x2 y2 x3 y3 ...` (a segment: an odd
count of at least seven fields), every number normalised to 0..1; blank lines are ignored. A
box becomes `{label, x, y, w, h}` in pixels, a segment the same with its flat `polygon` in
pixels and x/y/w/h its bounding box, so the image's size is read from its header (only for an
image with boxes). data.yaml's other keys (`path`, `train`, `val`, `nc`, ...) are not read.

An image with no label file, or an empty one, gets no boxes key. A pose line (`class cx cy w h`
then keypoints) is not told apart: with an even count of keypoint numbers it reads as a segment.
Files straight under `images/` (no split folder) are not in the layout and are not planned.
"""

from __future__ import annotations

import math
import posixpath
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from app.domain.archives.reading.boxes import box, kind
from app.domain.archives.reading.entries import image_size, read_text
from app.domain.archives.reading.planning import Fields, Found, put
from app.errors import BadInput

CONFIGS = ("data.yaml", "data.yml")
TOLERANCE = 1e-6  # in YOLO's 0..1 units
# Pixels are rounded to a millionth: no float noise such as 40.00000000000001 stored.
DIGITS = 6


@dataclass(frozen=True, kw_only=True)
class _Line:
    where: str
    label: str
    x1: float  # the bounding box, normalised
    y1: float
    x2: float
    y2: float
    points: list[float] | None  # a segment's, flat, normalised


def recognised(entries: Mapping[str, zipfile.ZipInfo]) -> bool:
    has_labels = any(name.startswith("labels/") and name.endswith(".txt") for name in entries)
    return has_labels and any(config in entries for config in CONFIGS)


def read(zip_file: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], fields: Fields) -> list[Found]:
    names = _names(zip_file, entries)
    images: dict[tuple[str, str], list[zipfile.ZipInfo]] = {}
    labels: dict[tuple[str, str], zipfile.ZipInfo] = {}
    for name, info in entries.items():
        parts = name.split("/")
        if len(parts) < 3:
            continue
        split, rest = parts[1], "/".join(parts[2:])
        if parts[0] == "images":
            images.setdefault((split, posixpath.splitext(rest)[0]), []).append(info)
        elif parts[0] == "labels" and rest.endswith(".txt"):
            labels[(split, rest[: -len(".txt")])] = info
    for key, label_info in labels.items():
        owners = images.get(key, [])
        if not owners:
            raise BadInput(
                f"{label_info.filename} has no image: nothing named images/{key[0]}/{key[1]}.* is in the archive."
            )
        if len(owners) > 1:
            both = " and ".join(info.filename for info in owners)
            raise BadInput(f"{label_info.filename} could belong to {both}: their names differ only in the extension.")
    found = []
    for key, owners in images.items():
        for info in owners:
            data: dict[str, Any] = {}
            own_labels = labels.get(key)
            if own_labels is not None:
                boxes = _boxes(zip_file, info, own_labels, names)
                if boxes:
                    put(data, fields.boxes, boxes, where=own_labels.filename)
            file = info.filename[len(f"images/{key[0]}/") :]
            found.append(Found(split=key[0], entry=info, file=file, data=data, where=info.filename))
    return found


def _names(zip_file: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo]) -> dict[int, str]:
    config = next((entries[name] for name in CONFIGS if name in entries), None)
    if config is None:
        raise BadInput("The archive has no data.yaml, where a YOLO dataset names its classes.")
    where = config.filename
    try:
        document = yaml.safe_load(read_text(zip_file, config))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise BadInput(f"{where} is not valid YAML{at}: {error.problem or error.context}.") from None
    except yaml.YAMLError:
        raise BadInput(f"{where} is not valid YAML.") from None
    except RecursionError:  # PyYAML builds nested collections recursively
        raise BadInput(f"{where} nests its collections too deeply to be read.") from None
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict):
        pairs = list(names.items())
    else:
        raise BadInput(f"{where} has no names (the class names, as a list or an index-to-name mapping).")
    checked: dict[int, str] = {}
    for index, name in pairs:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise BadInput(f"{where}: names has the key {index!r}, which is not a class index (0 and up).")
        # YAML reads an unquoted 7 as a number; `no` or `on` become booleans, which are refused.
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise BadInput(f"{where}: the name of class {index} is {kind(name)}, not text; quote it.")
        checked[index] = str(name)
    return checked


def _boxes(
    zip_file: zipfile.ZipFile, image: zipfile.ZipInfo, label_info: zipfile.ZipInfo, names: dict[int, str]
) -> list[dict[str, Any]]:
    lines = []
    # Split on newlines only: str.splitlines would also split on form feeds and U+2028.
    for number, text in enumerate(read_text(zip_file, label_info).split("\n"), start=1):
        if text.strip():
            lines.append(_line(text.split(), names, where=f"{label_info.filename} line {number}"))
    if not lines:
        return []
    width, height = image_size(zip_file, image, needed_by=label_info.filename)
    return [_pixels(line, width, height) for line in lines]


def _line(fields: list[str], names: dict[int, str], *, where: str) -> _Line:
    count = len(fields)
    if count != 5 and (count < 7 or count % 2 == 0):
        counted = "1 field" if count == 1 else f"{count} fields"
        raise BadInput(
            f"{where} has {counted}; a YOLO label line is `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...`."
        )
    try:
        index = int(fields[0])
    except ValueError:
        raise BadInput(f"{where} starts with {fields[0]!r}, not a class index.") from None
    if index not in names:
        raise BadInput(f"{where} names class {index}, which is not among the {len(names)} names of data.yaml.")
    numbers = [_unit(text, where=where) for text in fields[1:]]
    if count == 5:
        cx, cy, w, h = numbers
        x1, x2 = _edges(cx, w, where=where, axis="x")
        y1, y2 = _edges(cy, h, where=where, axis="y")
        return _Line(where=where, label=names[index], x1=x1, y1=y1, x2=x2, y2=y2, points=None)
    xs, ys = numbers[0::2], numbers[1::2]
    return _Line(where=where, label=names[index], x1=min(xs), y1=min(ys), x2=max(xs), y2=max(ys), points=numbers)


def _unit(text: str, *, where: str) -> float:
    """A number of 0..1, noise just outside clamped onto the edge."""
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{where}: {text!r} is not a number.") from None
    if not math.isfinite(value) or not -TOLERANCE <= value <= 1 + TOLERANCE:
        raise BadInput(f"{where}: {text} is outside 0..1, where YOLO's normalised numbers lie.")
    return min(max(value, 0.0), 1.0)


def _edges(centre: float, size: float, *, where: str, axis: str) -> tuple[float, float]:
    low, high = centre - size / 2, centre + size / 2
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        raise BadInput(f"{where} lies outside the image: its box spans {axis} {low:g} to {high:g} of 0..1.")
    return max(low, 0.0), min(high, 1.0)


def _pixels(line: _Line, width: int, height: int) -> dict[str, Any]:
    x, y = round(line.x1 * width, DIGITS), round(line.y1 * height, DIGITS)
    w = round(round(line.x2 * width, DIGITS) - x, DIGITS)
    h = round(round(line.y2 * height, DIGITS) - y, DIGITS)
    extra: dict[str, Any] = {}
    if line.points is not None:
        scales = (width, height)
        extra["polygon"] = [round(value * scales[index % 2], DIGITS) for index, value in enumerate(line.points)]
    return box(label=line.label, x=x, y=y, w=w, h=h, extra=extra, width=width, height=height, where=line.where)
