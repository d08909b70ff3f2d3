"""The box convention: an image's labels and boxes, read from its metadata where they are used.

Metadata stays free-form: nothing is refused on upload, PATCH or import for not following this.
Where labels and boxes are *used* (`GET /images/{id}/annotations`, and the training formats),
they are read from the fields the request names (`labelField`, default `label`; `boxesField`,
default `boxes`, both under `data`) and checked, and a box that cannot be one is a 400 naming
the image and the box:

- `label`: a string, or a list of strings; absent is no label.
- `boxes`: a list of objects `{"label", "x", "y", "w", "h"}` in pixels, COCO's xywh with the
  origin at the top left; each may also hold `score` (a number), `id` (a string or a whole
  number), `polygon` (at least three points) and any other key, kept as it is. Absent is no
  boxes. A polygon is read as `[[x, y], ...]`, or flat as COCO writes it (`[x1, y1, x2, y2,
  ...]`), or as `[{"x": .., "y": ..}, ...]`: not every database the store runs on keeps an array
  directly inside an array (the embedded default refuses one), so it may be written in one of the
  other two forms. It is always given back as `[[x, y], ...]`.
- A box lies within the image (when its size is known): `0 <= x`, `0 <= y`, `x + w <= width`,
  `y + h <= height`, and so does every polygon point; `w` and `h` are not negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.query import check_path
from app.errors import BadInput
from app.models import Image

DEFAULT_LABEL_FIELD = "label"
DEFAULT_BOXES_FIELD = "boxes"
BOX_KEYS = ("x", "y", "w", "h")


@dataclass(frozen=True, kw_only=True)
class Box:
    label: str
    x: float
    y: float
    w: float
    h: float
    score: float | None = None
    id: str | int | None = None
    polygon: list[list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the box's other keys, as they are


@dataclass(frozen=True, kw_only=True)
class Annotations:
    labels: list[str]
    boxes: list[Box]


def field_path(name: str | None, default: str, *, what: str) -> str:
    """A `labelField`/`boxesField` value: a path under `data` (`boxes`, `ann.boxes`)."""
    path = check_path(name or default, what=what)
    return path.removeprefix("data.")


def annotations_of(image: Image, *, label_field: str, boxes_field: str) -> Annotations:
    """The image's labels and boxes under the convention; BadInput naming the image and the box."""
    return annotations_in(
        image.data,
        image_id=image.id,
        width=image.width,
        height=image.height,
        label_field=label_field,
        boxes_field=boxes_field,
    )


def annotations_in(
    data: Mapping[str, Any],
    *,
    image_id: Any,
    width: int | None,
    height: int | None,
    label_field: str,
    boxes_field: str,
) -> Annotations:
    """The same, from an image's metadata and size as stored: what reads every image of an
    export, where building the image's model first would cost more than reading its boxes."""
    where = f"Image {image_id}"
    labels = _labels(value_at(data, label_field), where=f"{where}: data.{label_field}")
    found = value_at(data, boxes_field)
    if found is None:
        return Annotations(labels=labels, boxes=[])
    if not isinstance(found, list):
        raise BadInput(f"{where}: data.{boxes_field} must be a list of boxes, not {_kind(found)}.")
    boxes = [
        _box(item, where=f"{where}: box {index} of data.{boxes_field}", width=width, height=height)
        for index, item in enumerate(found)
    ]
    return Annotations(labels=labels, boxes=boxes)


def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path under `data`; None when absent."""
    value: Any = data
    for segment in path.split("."):
        if not isinstance(value, Mapping) or segment not in value:
            return None
        value = value[segment]
    return value


def _labels(value: Any, *, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise BadInput(f"{where} must be a string or a list of strings, not {_kind(value)}.")


def _box(item: Any, *, where: str, width: int | None, height: int | None) -> Box:
    if not isinstance(item, Mapping):
        raise BadInput(f"{where} must be an object with label, x, y, w and h, not {_kind(item)}.")
    label = item.get("label")
    if not isinstance(label, str):
        raise BadInput(f"{where} needs a label that is a string.")
    x, y, w, h = (_number(item.get(key), where=where, name=key) for key in BOX_KEYS)
    if w < 0 or h < 0:
        raise BadInput(f"{where} has a negative size (w {w:g}, h {h:g}).")
    _inside(x, y, where=where, what="its top-left corner", width=width, height=height)
    _inside(x + w, y + h, where=where, what="its bottom-right corner", width=width, height=height)
    score = item.get("score")
    if score is not None:
        score = _number(score, where=where, name="score")
    box_id = item.get("id")
    if box_id is not None and (isinstance(box_id, bool) or not isinstance(box_id, (str, int))):
        raise BadInput(f"{where} has an id that is neither a string nor a whole number.")
    polygon = item.get("polygon")
    if polygon is not None:
        polygon = _polygon(polygon, where=where, width=width, height=height)
    extra = {key: value for key, value in item.items() if key not in {"label", *BOX_KEYS, "score", "id", "polygon"}}
    return Box(label=label, x=x, y=y, w=w, h=h, score=score, id=box_id, polygon=polygon, extra=extra)


def _polygon(value: Any, *, where: str, width: int | None, height: int | None) -> list[list[float]]:
    points = polygon_points(value)
    if points is None or len(points) < 3:
        raise BadInput(
            f"{where} has a polygon that is not at least three points, as [[x, y], ...], [x1, y1, x2, y2, ...]"
            ' or [{"x": .., "y": ..}, ...].'
        )
    checked = []
    for number, (x, y) in enumerate(points):
        px, py = _number(x, where=where, name=f"polygon point {number} x"), _number(y, where=where, name="y")
        _inside(px, py, where=where, what=f"its polygon point {number}", width=width, height=height)
        checked.append([px, py])
    return checked


def polygon_points(value: Any) -> list[tuple[Any, Any]] | None:
    """A polygon's (x, y) pairs from any of the convention's three forms; None if it is none of them."""
    if not isinstance(value, list):
        return None
    if all(isinstance(point, list) and len(point) == 2 for point in value):
        return [(point[0], point[1]) for point in value]
    if all(isinstance(point, Mapping) and set(point) == {"x", "y"} for point in value):
        return [(point["x"], point["y"]) for point in value]
    if len(value) % 2 == 0 and not any(isinstance(item, (list, Mapping)) for item in value):
        return list(zip(value[::2], value[1::2], strict=True))
    return None


def _number(value: Any, *, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{where} needs {name} as a number, not {_kind(value)}.")
    return value


def _inside(x: float, y: float, *, where: str, what: str, width: int | None, height: int | None) -> None:
    if x < 0 or y < 0:
        raise BadInput(f"{where} lies outside the image: {what} is at ({x:g}, {y:g}).")
    if (width is not None and x > width) or (height is not None and y > height):
        raise BadInput(f"{where} lies outside the {width}x{height} image: {what} is at ({x:g}, {y:g}).")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")
