"""Training-format archives read into a checked plan of images, before anything is written.

A `.zip` in one of the layouts the service exports (coco, yolo, hf, imagefolder: one module
each) becomes a list of `Planned` images: the entry holding each image's bytes, the path to
store it at, and its metadata under the box convention (app/domain/annotations.py), labels and
boxes in the fields the caller names. Everything is checked first: a bad annotation file is
BadInput with one sentence naming the entry and where in it, never a half-written import.

When the archive's splits are not just `all`, each image's metadata also gets `split` (unless
it holds one). The same path in two splits is BadInput. In every layout `__MACOSX/`, hidden
files (a part starting with `.`) and symbolic links are passed over, and files the layout does
not use (a README, report.json) are simply not images.

Synchronous and blocking (it reads the zip): the caller runs it in a worker thread.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping

from app.domain.archives.reading import coco, hf, imagefolder, yolo
from app.domain.archives.reading.entries import usable
from app.domain.archives.reading.planning import Fields, Found, Planned, fields, finish
from app.errors import BadInput

__all__ = ["FORMATS", "Planned", "plan", "recognised"]

FORMATS = ("coco", "yolo", "hf", "imagefolder")

Reader = Callable[[zipfile.ZipFile, Mapping[str, zipfile.ZipInfo], Fields], list[Found]]
_READERS: dict[str, Reader] = {"coco": coco.read, "yolo": yolo.read, "hf": hf.read, "imagefolder": imagefolder.read}


def recognised(entries: Mapping[str, zipfile.ZipInfo]) -> str | None:
    """'coco', 'yolo' or 'hf' when the archive's contents show one, else None.

    Never 'imagefolder': any archive of folders looks like one, the legacy export included."""
    seen = usable(entries)
    if coco.recognised(seen):
        return "coco"
    if yolo.recognised(seen):
        return "yolo"
    if hf.recognised(seen):
        return "hf"
    return None


def plan(
    zip_file: zipfile.ZipFile,
    entries: Mapping[str, zipfile.ZipInfo],
    format: str,
    *,
    label_field: str = "label",
    boxes_field: str = "boxes",
) -> list[Planned]:
    """Every image of the archive with its metadata; BadInput before anything is written."""
    reader = _READERS.get(format)
    if reader is None:
        raise BadInput(f"The format {format!r} is not one of {', '.join(FORMATS)}.")
    return finish(reader(zip_file, usable(entries), fields(label_field, boxes_field)))
