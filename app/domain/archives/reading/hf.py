"""Hugging Face ImageFolder with metadata, object detection included.

    <split>/metadata.jsonl      one JSON object a line: {"file_name", ...keys, "objects"?}
    <split>/<file_name>         the image it names, stored at <file_name>
    metadata.jsonl              at the root: the split `all`, its images beside it

Only `metadata.jsonl` is read, never `metadata.csv` (a CSV cannot hold the objects). Each line's
keys but `file_name` and `objects` become the image's metadata as they are, but for nulls: the
service's own export writes every column on every line, null where an image has no such key,
so a null is read as the key's absence. `objects` is either a list with one object per box
(the service's export) or Hugging Face's other style, an object of lists with one item per box;
either way a box has `bbox` ([x, y, w, h] in pixels, COCO's order), `category` (the label: a
string; integer class ids with their names elsewhere are not read), and any other key whose
value, when not null, is kept on the box (`id`, `score`, `polygon`, ...). It becomes the
boxes field unless the line already holds that field itself, which then wins. Images that no
line names are not planned: here the metadata is the list of the split's images.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any

from app.domain.archives.reading.boxes import box, kind, sized
from app.domain.archives.reading.entries import image_size, load_json, read_text
from app.domain.archives.reading.planning import ONLY_SPLIT, Fields, Found, holds, put
from app.errors import BadInput

METADATA = "metadata.jsonl"
LINE_KEYS = frozenset({"file_name", "objects"})


def recognised(entries: Mapping[str, zipfile.ZipInfo]) -> bool:
    return any(_is_metadata(name) for name in entries)


def _is_metadata(name: str) -> bool:
    return name == METADATA or (name.count("/") == 1 and name.endswith(f"/{METADATA}"))


def read(zip_file: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], fields: Fields) -> list[Found]:
    files = sorted(name for name in entries if _is_metadata(name))
    if not files:
        raise BadInput(f"The archive has no {METADATA}, at its root or in a split's folder.")
    found = []
    for name in files:
        folder = name[: -len(METADATA)]  # "" or "<split>/"
        split = folder.rstrip("/") or ONLY_SPLIT
        # Split on newlines only: str.splitlines would also split inside JSON strings, at U+2028.
        for number, text in enumerate(read_text(zip_file, entries[name]).split("\n"), start=1):
            if text.strip():
                where = f"{name} line {number}"
                found.append(
                    _image(zip_file, entries, load_json(text, where=where, one_line=True), folder, split, where, fields)
                )
    return found


def _image(
    zip_file: zipfile.ZipFile,
    entries: Mapping[str, zipfile.ZipInfo],
    line: Any,
    folder: str,
    split: str,
    where: str,
    fields: Fields,
) -> Found:
    if not isinstance(line, dict):
        raise BadInput(f"{where} is {kind(line)}, not a JSON object.")
    file_name = line.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise BadInput(f"{where} needs file_name as a path, not {kind(file_name)}.")
    entry = entries.get(folder + file_name)
    if entry is None:
        raise BadInput(f"{where} names {file_name!r}, which is not in the archive (as {folder}{file_name}).")
    data = {key: value for key, value in line.items() if key not in LINE_KEYS and value is not None}
    objects = line.get("objects")
    if objects is not None and not holds(data, fields.boxes):
        boxes = _boxes(zip_file, entry, objects, where=where)
        if boxes:
            put(data, fields.boxes, boxes, where=where)
    return Found(split=split, entry=entry, file=file_name, data=data, where=where)


def _boxes(zip_file: zipfile.ZipFile, entry: zipfile.ZipInfo, objects: Any, *, where: str) -> list[dict[str, Any]]:
    if isinstance(objects, list):
        objects = _by_key(objects, where=where)
    if not isinstance(objects, dict):
        raise BadInput(f"{where}: objects is {kind(objects)}, not a list of boxes or an object of lists.")
    for key in ("bbox", "category"):
        if not isinstance(objects.get(key), list):
            raise BadInput(f"{where}: objects needs {key} as a list, not {kind(objects.get(key))}.")
    count = len(objects["bbox"])
    for key, values in objects.items():
        if not isinstance(values, list):
            raise BadInput(f"{where}: objects.{key} is {kind(values)}, not a list of one item per box.")
        if len(values) != count:
            raise BadInput(f"{where}: objects.{key} has {len(values)} items where objects.bbox has {count}.")
    if count == 0:
        return []
    width, height = image_size(zip_file, entry, needed_by=where)
    boxes = []
    for index, (bbox, label) in enumerate(zip(objects["bbox"], objects["category"], strict=True)):
        box_where = f"{where}: box {index}"
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise BadInput(f"{box_where} needs its bbox as four numbers [x, y, w, h], not {sized(bbox)}.")
        if not isinstance(label, str):
            raise BadInput(f"{box_where} needs its category as a string (the label), not {kind(label)}.")
        extra = {
            key: values[index]
            for key, values in objects.items()
            if key not in ("bbox", "category") and values[index] is not None
        }
        x, y, w, h = bbox
        boxes.append(box(label=label, x=x, y=y, w=w, h=h, extra=extra, width=width, height=height, where=box_where))
    return boxes


def _by_key(objects: list[Any], *, where: str) -> dict[str, list[Any]]:
    """A list of box objects as the object of lists Hugging Face's other style writes."""
    keys: dict[str, None] = {"bbox": None, "category": None}
    for index, item in enumerate(objects):
        if not isinstance(item, dict):
            raise BadInput(f"{where}: objects item {index} is {kind(item)}, not an object with bbox and category.")
        keys.update(dict.fromkeys(item))
    return {key: [item.get(key) for item in objects] for key in keys}
