"""COCO object detection, as `GET /export?format=coco` writes it (app/domain/archives/coco.py).

    annotations/instances_<split>.json   {"images", "annotations", "categories"}
    images/<split>/<file_name>           each image at its path, folders kept

The annotation files are `annotations/instances_*.json`; when there is none, any
`annotations/*.json` holding `images` (its split is the file's stem). A real COCO download
also holds `captions_*` and `person_keypoints_*` files naming the same images, so those are
not read beside `instances_*` ones. An image's file is looked for at `images/<split>/<file_name>`,
then `<split>/<file_name>`, `images/<file_name>` and `<file_name>`; it is stored at `<file_name>`.
Files in `images/<split>/` that no image names are planned too, with no metadata but the split.

Mapping, the inverse of the export:
- image: `labels` -> the label field (a string when one); `metadata`'s keys and every other key
  but id/file_name/width/height -> metadata as they are.
- annotation -> a box: `label` its category's name, x/y/w/h from `bbox`; `area` (when given)
  and `iscrowd` (0 unless given); `score`; `supercategory` when the category has one; the keys
  of `attributes` (a box's own `id` comes back from there), never replacing the others.
- segmentation: the first polygon -> `polygon`, flat; any further polygons -> `segmentations`,
  a list of `{"points": [x1, y1, ...]}` (objects, since an array may not hold arrays); RLE (an
  object) -> `segmentation` as it is; an empty list -> nothing.
The JSON is loaded whole (the archive's size limit bounds it); image bytes are never read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.archives.reading.boxes import box, kind, label_value, labels_of, number, polygon, sized
from app.domain.archives.reading.entries import load_json, read_text
from app.domain.archives.reading.planning import Fields, Found, put
from app.errors import BadInput

FOLDER = "annotations/"
PREFIX = "instances_"
IMAGE_KEYS = frozenset({"id", "file_name", "width", "height", "labels", "metadata"})

Id = str | int


@dataclass(frozen=True, kw_only=True)
class _Image:
    id: Id
    file_name: str
    width: int | None
    height: int | None
    labels: str | list[str] | None
    data: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class _Category:
    name: str
    supercategory: str | None


def recognised(entries: Mapping[str, zipfile.ZipInfo]) -> bool:
    return any(_is_annotation_file(name) for name in entries)


def _is_annotation_file(name: str) -> bool:
    return name.startswith(FOLDER) and name.count("/") == 1 and name.lower().endswith(".json")


def read(zip_file: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], fields: Fields) -> list[Found]:
    files = sorted(name for name in entries if _is_annotation_file(name))
    instances = [name for name in files if _stem(name).startswith(PREFIX)]
    found: list[Found] = []
    splits: list[str] = []
    for name in instances or files:
        document = load_json(read_text(zip_file, entries[name]), where=name)
        if not isinstance(document, dict) or "images" not in document:
            continue  # some other JSON kept beside the annotations
        split = _split(name)
        splits.append(split)
        found.extend(_read_file(document, name, split, entries, fields))
    if not splits:
        raise BadInput("No annotations/*.json file in the archive holds COCO images.")
    used = {item.entry.filename for item in found}
    for split in dict.fromkeys(splits):
        folder = f"images/{split}/"
        for entry_name, info in entries.items():
            if entry_name.startswith(folder) and entry_name not in used:
                found.append(Found(split=split, entry=info, file=entry_name[len(folder) :], data={}, where=entry_name))
    return found


def _stem(name: str) -> str:
    return name[len(FOLDER) : -len(".json")]


def _split(name: str) -> str:
    stem = _stem(name)
    return stem[len(PREFIX) :] if stem.startswith(PREFIX) and len(stem) > len(PREFIX) else stem


def _read_file(
    document: dict[str, Any], name: str, split: str, entries: Mapping[str, zipfile.ZipInfo], fields: Fields
) -> list[Found]:
    images = _images(document["images"], name)
    categories = _categories(document.get("categories"), name)
    boxes = _annotations(document.get("annotations"), name, images, categories)
    found = []
    for image in images.values():
        where = f"{name}: image {shown(image.id)}"
        data = dict(image.data)
        if image.labels is not None:
            put(data, fields.label, image.labels, where=where)
        if image.id in boxes:
            put(data, fields.boxes, boxes[image.id], where=where)
        found.append(
            Found(
                split=split, entry=_locate(image, split, entries, where), file=image.file_name, data=data, where=where
            )
        )
    return found


def _images(value: Any, name: str) -> dict[Id, _Image]:
    if not isinstance(value, list):
        raise BadInput(f"{name}: images must be a list, not {kind(value)}.")
    images: dict[Id, _Image] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadInput(f"{name}: images item {index} is not an object.")
        image_id = _id(item.get("id"), where=f"{name}: images item {index}", key="id")
        if image_id in images:
            raise BadInput(
                f"{name}: image id {shown(image_id)} is used twice (the second time by images item {index})."
            )
        images[image_id] = _image(item, image_id, where=f"{name}: image {shown(image_id)}")
    return images


def _image(item: dict[str, Any], image_id: Id, *, where: str) -> _Image:
    file_name = item.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise BadInput(f"{where} needs file_name as a path, not {kind(file_name)}.")
    metadata = item.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadInput(f"{where} has metadata that is {kind(metadata)}, not an object.")
    data = {key: value for key, value in item.items() if key not in IMAGE_KEYS}
    data.update(metadata or {})
    return _Image(
        id=image_id,
        file_name=file_name,
        width=_size(item.get("width"), where=where, key="width"),
        height=_size(item.get("height"), where=where, key="height"),
        labels=label_value(labels_of(item.get("labels"), where=f"{where}: labels")),
        data=data,
    )


def _size(value: Any, *, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadInput(f"{where} needs {key} as a positive whole number, not {kind(value)}.")
    return value


def shown(value: Id) -> str:
    """An id as the file writes it: `17`, or `'x'` (so an empty or odd string stays visible)."""
    return repr(value) if isinstance(value, str) else str(value)


def _id(value: Any, *, where: str, key: str) -> Id:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"{where} needs {key} as a string or a whole number, not {kind(value)}.")
    return value


def _categories(value: Any, name: str) -> dict[Id, _Category]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise BadInput(f"{name}: categories must be a list, not {kind(value)}.")
    categories: dict[Id, _Category] = {}
    for index, item in enumerate(value):
        where = f"{name}: categories item {index}"
        if not isinstance(item, dict):
            raise BadInput(f"{where} is not an object.")
        category_id = _id(item.get("id"), where=where, key="id")
        if category_id in categories:
            raise BadInput(
                f"{name}: category id {shown(category_id)} is used twice (the second time by categories item {index})."
            )
        label, supercategory = item.get("name"), item.get("supercategory")
        if not isinstance(label, str) or not label:
            raise BadInput(f"{name}: category {shown(category_id)} needs a name, not {kind(label)}.")
        if supercategory is not None and not isinstance(supercategory, str):
            raise BadInput(f"{name}: category {shown(category_id)} has a supercategory that is {kind(supercategory)}.")
        categories[category_id] = _Category(name=label, supercategory=supercategory or None)
    return categories


def _annotations(
    value: Any, name: str, images: dict[Id, _Image], categories: dict[Id, _Category]
) -> dict[Id, list[dict[str, Any]]]:
    """Each image's boxes, in the order of the annotations."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise BadInput(f"{name}: annotations must be a list, not {kind(value)}.")
    boxes: dict[Id, list[dict[str, Any]]] = {}
    for index, item in enumerate(value):
        where = f"{name}: annotations item {index}"
        own_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(own_id, (str, int)) and not isinstance(own_id, bool):
            where = f"{name}: annotation {shown(own_id)}"  # by its id, as the file names it
        if not isinstance(item, dict):
            raise BadInput(f"{where} is not an object.")
        image_id = _id(item.get("image_id"), where=where, key="image_id")
        image = images.get(image_id)
        if image is None:
            raise BadInput(f"{where} names image {shown(image_id)}, which is not among its images.")
        category_id = _id(item.get("category_id"), where=where, key="category_id")
        category = categories.get(category_id)
        if category is None:
            raise BadInput(f"{where} names category {shown(category_id)}, which is not among its categories.")
        boxes.setdefault(image_id, []).append(_box(item, image, category, where=where))
    return boxes


def _box(item: dict[str, Any], image: _Image, category: _Category, *, where: str) -> dict[str, Any]:
    bbox = item.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise BadInput(f"{where} needs bbox as four numbers [x, y, w, h], not {sized(bbox)}.")
    attributes = item.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise BadInput(f"{where} has attributes that are {kind(attributes)}, not an object.")
    own: dict[str, Any] = {}
    if item.get("area") is not None:
        own["area"] = number(item["area"], where=where, name="area")
    iscrowd = item.get("iscrowd")
    iscrowd = 0 if iscrowd is None else iscrowd
    if type(iscrowd) is not int or iscrowd not in (0, 1):
        raise BadInput(f"{where} needs iscrowd as 0 or 1, not {kind(iscrowd)}.")
    own["iscrowd"] = iscrowd
    if item.get("score") is not None:
        own["score"] = item["score"]  # checked by box()
    if category.supercategory:
        own["supercategory"] = category.supercategory
    own.update(_segmentation(item.get("segmentation"), image, where=where))
    # The annotation's own keys win over attributes of the same name.
    extra = {**own, **{key: value for key, value in (attributes or {}).items() if key not in own}}
    x, y, w, h = bbox
    return box(
        label=category.name, x=x, y=y, w=w, h=h, extra=extra, width=image.width, height=image.height, where=where
    )


def _segmentation(value: Any, image: _Image, *, where: str) -> dict[str, Any]:
    if value is None or value == []:
        return {}
    if isinstance(value, dict):  # RLE, kept as it is: its counts and size are flat arrays
        return {"segmentation": value}
    if not isinstance(value, list) or not all(isinstance(part, list) for part in value):
        raise BadInput(
            f"{where} has a segmentation that is neither a list of polygons [[x1, y1, ...], ...] nor an RLE object."
        )
    first, *others = value
    found: dict[str, Any] = {"polygon": first}  # flattened and checked by box()
    if others:
        found["segmentations"] = [
            {"points": polygon(part, where=where, width=image.width, height=image.height, name=f"polygon {index}")}
            for index, part in enumerate(others, start=1)
        ]
    return found


def _locate(image: _Image, split: str, entries: Mapping[str, zipfile.ZipInfo], where: str) -> zipfile.ZipInfo:
    name = image.file_name
    places = (f"images/{split}/{name}", f"{split}/{name}", f"images/{name}", name)
    for place in places:
        info = entries.get(place)
        if info is not None:
            return info
    raise BadInput(f"{where} names the file {name!r}, which is not in the archive (looked for {', '.join(places)}).")
