"""What every reader hands back, and the checks the whole plan passes before it is returned.

A reader finds images (`Found`: its split, entry, path and metadata, and where it was named);
`finish` turns them into the plan: one image per path, the split written into the metadata when
the archive has splits to tell apart, and every image's metadata storable as it is.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import Any

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD, field_path
from app.domain.metadata import check_data
from app.errors import BadInput

# The split of an archive that has none to tell apart; the service's exports write it.
ONLY_SPLIT = "all"


@dataclass(frozen=True, kw_only=True)
class Planned:
    entry: zipfile.ZipInfo  # the zip entry holding the image's bytes
    file: str  # the path to store the image at (its folders kept)
    data: dict[str, Any]  # its metadata, following the box convention


@dataclass(frozen=True, kw_only=True)
class Fields:
    label: str  # a path under `data`: `label`, `ann.label`
    boxes: str


def fields(label_field: str, boxes_field: str) -> Fields:
    return Fields(
        label=field_path(label_field, DEFAULT_LABEL_FIELD, what="label field"),
        boxes=field_path(boxes_field, DEFAULT_BOXES_FIELD, what="boxes field"),
    )


@dataclass(frozen=True, kw_only=True)
class Found:
    split: str
    entry: zipfile.ZipInfo
    file: str
    data: dict[str, Any]
    where: str  # where the archive names the image: an annotation file's image, a line, an entry


def put(data: dict[str, Any], path: str, value: Any, *, where: str) -> None:
    """`data[a][b] = value` for the path `a.b`, making the objects on the way."""
    *parents, last = path.split(".")
    target = data
    for depth, part in enumerate(parents):
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            above = ".".join(parents[: depth + 1])
            raise BadInput(f"{where}: data.{above} is not an object, so data.{path} cannot be written into it.")
        target = child
    target[last] = value


def holds(data: dict[str, Any], path: str) -> bool:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def finish(found: list[Found]) -> list[Planned]:
    """The plan, or BadInput for the first image that cannot be written as found."""
    by_file: dict[str, Found] = {}
    for item in found:
        _check_path(item)
        earlier = by_file.setdefault(item.file, item)
        if earlier is not item:
            raise _twice(earlier, item)
    # One split called `all` is no split at all: nothing to tell the images apart by.
    named = {item.split for item in found} != {ONLY_SPLIT}
    planned = []
    for item in found:
        data = item.data
        if named and "split" not in data:
            data = {**data, "split": item.split}
        _check_storable(data, where=item.where)
        planned.append(Planned(entry=item.entry, file=item.file, data=data))
    return planned


def _check_path(item: Found) -> None:
    # The upload path would refuse it too, but only after the images before it were written.
    parts = item.file.split("/")
    if item.file.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise BadInput(f"{item.where}: {item.file!r} is not a relative path (no empty, '.' or '..' parts).")


def _twice(first: Found, second: Found) -> BadInput:
    if first.split == second.split:
        return BadInput(f"{_named(second)} is the image {second.file!r} again, already {_named(first)}.")
    return BadInput(
        f"The image {second.file!r} is in two splits: {first.split!r} as {_named(first)}"
        f" and {second.split!r} as {_named(second)}."
    )


def _named(item: Found) -> str:
    if item.where == item.entry.filename:
        return item.where
    return f"{item.entry.filename} ({item.where})"


def _check_storable(data: dict[str, Any], *, where: str) -> None:
    try:
        check_data(data)
    except BadInput as error:
        raise BadInput(f"{where}: {error.detail}") from None
    nested = _nested_array(data, "data")
    if nested is not None:
        raise BadInput(f"{where}: {nested} holds an array directly inside an array, which the database cannot store.")


def _nested_array(value: Any, path: str) -> str | None:
    """The path of the first array that holds an array, if any (check_data has bounded the depth)."""
    children: list[tuple[object, Any]]
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        if any(isinstance(item, list) for item in value):
            return path
        children = list(enumerate(value))
    else:
        return None
    for key, item in children:
        found = _nested_array(item, f"{path}.{key}")
        if found is not None:
            return found
    return None
