"""Image classification folders: `<split>/<label>/<file>`. Never recognised, only taken when asked.

`_unlabelled` as the label folder means no label. The same `<file>` under several labels of one
split is one image with all those labels (a sorted list), provided the entries hold the same
bytes (the same CRC-32 and size, as the central directory records them); it is read from the
first of them. A file that looks like an image (by its suffix) less than two folders deep is
BadInput; other such files (a README, report.json) are not images and are passed over.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any

from app.domain.archives.reading.boxes import label_value
from app.domain.archives.reading.entries import looks_like_image
from app.domain.archives.reading.planning import Fields, Found, put
from app.errors import BadInput

UNLABELLED = "_unlabelled"


def read(zip_file: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], fields: Fields) -> list[Found]:
    groups: dict[tuple[str, str], list[tuple[str, zipfile.ZipInfo]]] = {}
    for name, info in entries.items():
        parts = name.split("/")
        if len(parts) < 3:
            if looks_like_image(name):
                raise BadInput(f"{name} is not <split>/<label>/<file>: each image lies two folders deep.")
            continue
        groups.setdefault((parts[0], "/".join(parts[2:])), []).append((parts[1], info))
    found = []
    for (split, file), members in groups.items():
        members.sort(key=lambda member: member[0])
        first = members[0][1]
        for _, other in members[1:]:
            if (other.CRC, other.file_size) != (first.CRC, first.file_size):
                raise BadInput(
                    f"{first.filename} and {other.filename} are one image under two labels, but their bytes differ."
                )
        data: dict[str, Any] = {}
        labels = label_value(sorted({label for label, _ in members if label != UNLABELLED}))
        if labels is not None:
            put(data, fields.label, labels, where=first.filename)
        found.append(Found(split=split, entry=first, file=file, data=data, where=first.filename))
    return found
