"""What the format writers share: the metadata besides labels and boxes, and spooled files."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import IO, Any

from app.domain.annotations import Annotations
from app.domain.archives.training import Fields, without_path
from app.domain.archives.zipping import SPOOL_BYTES, read_spooled


def other_data(document: Mapping[str, Any], fields: Fields, *, keep_labels: bool = False) -> dict[str, Any]:
    """The image's metadata without its boxes and (unless kept) its labels; an object left empty
    by that goes too."""
    data = document.get("data")
    if not isinstance(data, Mapping):
        return {}
    kept = without_path(data, fields.boxes.split("."))
    return kept if keep_labels else without_path(kept, fields.label.split("."))


def data_fields(document: Mapping[str, Any], fields: Fields, why: str) -> Iterable[tuple[str, str]]:
    """(`data.<key>`, why) for each key of the metadata besides labels and boxes."""
    return ((f"data.{key}", why) for key in other_data(document, fields))


def box_keys(found: Annotations, fields: Fields, keys: Iterable[str], why: str) -> Iterable[tuple[str, str]]:
    """(`data.<boxes>[].<key>`, why) for each of `keys` that some box holds; `keys` may name
    `score`, `id`, `polygon`, or `extra` for every other key of a box."""
    wanted = set(keys)
    held: set[str] = set()
    for box in found.boxes:
        if "score" in wanted and box.score is not None:
            held.add("score")
        if "id" in wanted and box.id is not None:
            held.add("id")
        if "polygon" in wanted and box.polygon is not None:
            held.add("polygon")
        if "extra" in wanted:
            held.update(box.extra)
    return ((f"data.{fields.boxes}[].{key}", why) for key in sorted(held))


class Spool:
    """A file built while the images stream, kept in memory until it grows, then on disk.

    A writer's spools (one or two per split) share one export's in-memory budget, `shares`
    being how many there may be: a hundred splits must not keep a hundred times as much.
    """

    def __init__(self, *, shares: int) -> None:
        # Closed (and so deleted) by close(), when the response ends however it ends.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES // max(shares, 1))  # noqa: SIM115
        self.count = 0

    def write(self, content: bytes) -> None:
        self.file.write(content)
        self.count += 1

    def chunks(self) -> AsyncIterator[bytes]:
        return read_spooled(self.file)

    def close(self) -> None:
        self.file.close()


async def one_chunk(content: bytes) -> AsyncIterator[bytes]:
    yield content
