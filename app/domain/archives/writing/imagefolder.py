"""Class folders: `<s>/<label>/<file>`, the layout torchvision's `ImageFolder` reads (the class is
the first folder under the split, whatever folders `<file>` has). Hugging Face's `imagefolder`
takes the class from the folder a file sits in instead, so it agrees only when no path has folders.

An image with several labels is written once under each; an unlabelled one under
`<s>/_unlabelled/`. A label becomes a folder name, so one that cannot be (empty, `.`, `..`, a
`/` or `\\` in it, or `_unlabelled` itself) is a 400 before the first byte. Class folders hold
the image-level label only: boxes and the rest of the metadata are listed in the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from app.domain.annotations import Annotations
from app.domain.archives.training import Fields, Format, Sample, Survey
from app.domain.archives.writing.common import data_fields
from app.domain.archives.zipping import FILE_MODE, Member
from app.errors import BadInput

UNLABELLED = "_unlabelled"
WHY = "class folders hold an image's labels only"


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    for label in found.labels:
        if not label or label in (".", "..", UNLABELLED) or "/" in label or "\\" in label or not label.isprintable():
            raise BadInput(f"Image {document['_id']} has the label {label!r}, which cannot be a class folder's name.")


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    if found.boxes:
        yield f"data.{fields.boxes}", WHY
    yield from data_fields(document, fields, WHY)


class ImageFolderWriter:
    def __init__(self, survey: Survey, fields: Fields) -> None:
        self._copies = 0

    def summary(self) -> dict[str, Any]:
        return {"files": self._copies}

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        async for sample in samples:
            labels = list(dict.fromkeys(sample.annotations.labels)) or [UNLABELLED]
            for number, label in enumerate(labels):
                self._copies += 1
                chunks = sample.chunks if number == 0 else await sample.reopen()
                yield f"{sample.split}/{label}/{sample.file}", sample.time, FILE_MODE, chunks

    async def closing(self) -> AsyncIterator[Member]:
        return
        yield

    def close(self) -> None:
        pass


IMAGEFOLDER = Format(name="imagefolder", check=check, not_carried=not_carried, writer=ImageFolderWriter)
