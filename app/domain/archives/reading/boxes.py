"""Boxes and labels as the box convention (app/domain/annotations.py) stores them, checked.

A box is `{"label", "x", "y", "w", "h", ...other keys}` in pixels; `score` must be a number,
`id` a string or whole number, and a `polygon` is written flat (`[x1, y1, x2, y2, ...]`): the
embedded database refuses an array directly inside an array. A box and its polygon lie within
the image when its size is known; what lies outside by no more than TOLERANCE (float noise from
a conversion) is clamped onto the edge, what lies further out is BadInput naming where.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from app.domain.annotations import polygon_points
from app.errors import BadInput

TOLERANCE = 1e-6  # pixels
CORE_KEYS = ("label", "x", "y", "w", "h")


def box(
    *,
    label: Any,
    x: Any,
    y: Any,
    w: Any,
    h: Any,
    extra: Mapping[str, Any],
    width: int | None,
    height: int | None,
    where: str,
) -> dict[str, Any]:
    """A checked box; `extra`'s keys follow the core ones, which they cannot replace."""
    if not isinstance(label, str):
        raise BadInput(f"{where} needs a label that is a string, not {kind(label)}.")
    x, y, w, h = (number(value, where=where, name=name) for value, name in ((x, "x"), (y, "y"), (w, "w"), (h, "h")))
    if w < 0 or h < 0:
        raise BadInput(f"{where} has a negative size (w {w:g}, h {h:g}).")
    x, w = _span(x, w, limit=width, where=where, axis=_X)
    y, h = _span(y, h, limit=height, where=where, axis=_Y)
    checked: dict[str, Any] = {"label": label, "x": x, "y": y, "w": w, "h": h}
    for key, value in extra.items():
        if key in CORE_KEYS:
            continue
        if key == "score":
            value = number(value, where=where, name="score")
        elif key == "id" and (isinstance(value, bool) or not isinstance(value, (str, int))):
            raise BadInput(f"{where} has an id that is neither a string nor a whole number.")
        elif key == "polygon":
            value = polygon(value, where=where, width=width, height=height)
        checked[key] = value
    return checked


def polygon(value: Any, *, where: str, width: int | None, height: int | None, name: str = "polygon") -> list[Any]:
    """A polygon, flat and within the image. Read in any of the convention's three forms."""
    points = polygon_points(value)
    if points is None or len(points) < 3:
        raise BadInput(
            f"{where} has a {name} that is not at least three points, as [x1, y1, x2, y2, ...], [[x, y], ...]"
            ' or [{"x": .., "y": ..}, ...].'
        )
    flat: list[Any] = []
    for index, (raw_x, raw_y) in enumerate(points):
        px = number(raw_x, where=where, name=f"{name} point {index} x")
        py = number(raw_y, where=where, name=f"{name} point {index} y")
        flat.append(_point(px, limit=width, where=where, what=f"its {name} point {index}", axis=_X))
        flat.append(_point(py, limit=height, where=where, what=f"its {name} point {index}", axis=_Y))
    return flat


_Axis = tuple[str, str, str, str]
_X: _Axis = ("x", "left", "right", "width")
_Y: _Axis = ("y", "top", "bottom", "height")


def _span(start: float, length: float, *, limit: int | None, where: str, axis: _Axis) -> tuple[float, float]:
    """`start, length` within 0..limit; unchanged (ints stay ints) unless clamped."""
    name, low, high, extent = axis
    end = start + length
    if start >= 0 and (limit is None or end <= limit):
        return start, length
    if start < -TOLERANCE:
        raise BadInput(f"{where} lies outside the image: its {low} edge is at {name} {start:g}.")
    if limit is not None and end > limit + TOLERANCE:
        raise BadInput(
            f"{where} lies outside the image: its {high} edge is at {name} {end:g}, past its {extent} {limit}."
        )
    start = max(start, 0)
    end = max(min(end, limit) if limit is not None else end, start)
    return start, end - start


def _point(value: float, *, limit: int | None, where: str, what: str, axis: _Axis) -> float:
    name, _, _, extent = axis
    if value < -TOLERANCE or (limit is not None and value > limit + TOLERANCE):
        bound = f"0 to {limit}" if limit is not None else "0 and up"
        raise BadInput(f"{where} lies outside the image: {what} is at {name} {value:g}, not within {bound}.")
    if value < 0:
        return 0
    if limit is not None and value > limit:
        return limit
    return value


def number(value: Any, *, where: str, name: str) -> float:
    """A finite JSON number (ints kept as ints); booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{where} needs {name} as a finite number, not {kind(value)}.")
    return value


def labels_of(value: Any, *, where: str) -> list[str]:
    """Image-level labels given as a string or a list of strings; none for null."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise BadInput(f"{where} must be a string or a list of strings, not {kind(value)}.")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BadInput(f"{where} must be a string or a list of strings, but item {index} is {kind(item)}.")
    return list(value)


def label_value(labels: list[str]) -> str | list[str] | None:
    """As the convention stores labels: one is a string, several a list, none absent."""
    if not labels:
        return None
    return labels[0] if len(labels) == 1 else labels


def sized(value: Any) -> str:
    """What a value is, with its length when a list: for where a count of items was expected."""
    return f"a list of {len(value)}" if isinstance(value, list) else kind(value)


def kind(value: Any) -> str:
    """What a JSON value is, for a sentence."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
