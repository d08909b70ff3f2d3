"""Training-format exports: the matching images (or a snapshot's) as a dataset a training job reads.

Every format is built by the same two passes over the selection, each a batch at a time:

1. **The survey** reads the documents only (no file). It puts each image in its split, reads its
   labels and boxes by the box convention (app/domain/annotations.py), asks the format whether
   it can write the image (`Writer.check`), and collects the categories. Everything a request
   can be refused for is found here, so a refusal is a 400 before the first byte, never an
   archive cut short.
2. **Per split, one pass** streams the split's images to the format's writer (`Writer.members`),
   which turns them into archive members; the files come from the storage stream, and what a
   format gathers across images (COCO's JSON, Hugging Face's metadata.jsonl) is spooled.

Splits: none (`all`), one per value of a metadata key (`split=subset`), or named views
(`splits=train:viewA,val:viewB`). An image is put in its split by evaluating the key or the
view's filter on its document here, the same evaluator the live events use, so a query export
and a snapshot's split alike and each split's pass needs no query of its own. An image in two
views is a 400; an image in no split is left out and counted in the report.

`report.json` closes every archive: the counts per split, the categories, the images left out
(file missing, file changed since a snapshot, in no split) and what the format could not carry
(`notCarried`: for each metadata field, how many images held it and why), so nothing is dropped
silently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from app.domain.annotations import Annotations, Box, annotations_in, value_at
from app.domain.archives.export import Selection, modified_time, open_selected
from app.domain.archives.zipping import FILE_MODE, Member, zipped
from app.domain.writes import replacement
from app.errors import BadInput, NotFound
from app.metrics import Metrics
from app.storage import Storage
from app.store import Store
from app.store.matching import Unanswerable, matches

ALL = "all"
SURVEYED = {"file": 1, "data": 1, "width": 1, "height": 1}
DEFAULT_SHARD_SIZE = 1000
# Splits are folders a training job reads; more than this is a key that does not split (a path,
# an id), and each split of a WebDataset export keeps a shard filling on the side.
MAX_SPLITS = 100
MAX_SHARD_SIZE = 100_000
# A split becomes a folder name: printable, no separator, not a relative step.
_SPLIT_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,100}$")


@dataclass(frozen=True, kw_only=True)
class Fields:
    label: str  # under `data`
    boxes: str


@dataclass(frozen=True, kw_only=True)
class Splits:
    """How images are split: by a metadata key's value, by views, or not (`all`)."""

    key: str | None = None  # under `data`
    views: Sequence[tuple[str, Mapping[str, Any]]] = ()  # (split, the view's filter)

    def carried(self, document: dict[str, Any]) -> dict[str, Any]:
        """The document as its formats see it: a split key is carried by the layout (the split's
        folder or file), so it is taken out of the metadata, and an import of the archive puts it
        back (`split`)."""
        data = document.get("data")
        if self.key is None or not isinstance(data, Mapping):
            return document
        return {**document, "data": without_path(data, self.key.split("."))}

    def of(self, document: Mapping[str, Any]) -> list[str]:
        """The splits the document is in: one, none, or (views only) several."""
        if self.key is not None:
            value = value_at(document.get("data") or {}, self.key)
            return [] if value is None else [_split_value(value, document, self.key)]
        if not self.views:
            return [ALL]
        try:
            return [name for name, condition in self.views if matches(condition, document)]
        except Unanswerable as error:
            raise BadInput(f"A view's filter cannot be answered exactly on image {document['_id']}: {error}") from None


@dataclass(frozen=True, kw_only=True)
class Survey:
    """What the first pass learned: every image is writable, and these are its splits."""

    splits: list[str]  # in the archive's order
    counts: dict[str, int]
    categories: dict[str, str]  # box label -> supercategory ("" when none), in sorted order
    unsplit: int
    data_keys: list[str] = field(default_factory=list)  # the metadata's top-level keys, first seen first
    box_keys: list[str] = field(default_factory=list)  # `score`, `id`, `polygon` and other box keys, sorted


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One image of a split, its file opened."""

    split: str
    document: dict[str, Any]
    annotations: Annotations
    file: str
    size: int
    chunks: AsyncIterator[bytes]
    time: datetime
    reopen: Callable[[], Awaitable[AsyncIterator[bytes]]]  # the bytes again (a second copy)


class Writer(Protocol):
    """One export in one format: the members it writes from the samples."""

    def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        """The members of the samples (of every split, mixed), consuming them."""

    def closing(self) -> AsyncIterator[Member]:
        """The members after every image (per-split lists, class lists, dataset descriptions)."""

    def summary(self) -> dict[str, Any]:
        """Format-specific counts for the report."""

    def close(self) -> None:
        """Free what the writer spooled, however the response ended."""


@dataclass(frozen=True, kw_only=True)
class Format:
    """A training format: what it refuses, what it cannot carry, and its writer."""

    name: str
    # BadInput if the format cannot hold the image (at survey time, before the first byte).
    check: Callable[[Mapping[str, Any], Annotations, Fields], None]
    # (field, why) for each part of the image's metadata the format leaves out.
    not_carried: Callable[[Mapping[str, Any], Annotations, Fields], Iterable[tuple[str, str]]]
    writer: Callable[[Survey, Fields], Writer]


@dataclass(frozen=True, kw_only=True)
class TrainingExport:
    format: Format
    fields: Fields
    splits: Splits


async def training_archive(
    selection: Selection, export: TrainingExport, *, store: Store, storage: Storage, metrics: Metrics
) -> AsyncIterator[bytes]:
    """The zip's bytes; BadInput (or an outage) raised before the first byte."""
    store.require_ready()
    with store.errors(user_query=True):
        survey = await _survey(selection, export)
    writer = export.format.writer(survey, export.fields)
    return _zip(selection, export, survey, writer, store, storage, metrics)


def read_annotations(document: Mapping[str, Any], fields: Fields) -> Annotations:
    data = document.get("data")
    return annotations_in(
        data if isinstance(data, Mapping) else {},
        image_id=document["_id"],
        width=_size(document.get("width")),
        height=_size(document.get("height")),
        label_field=fields.label,
        boxes_field=fields.boxes,
    )


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _survey(selection: Selection, export: TrainingExport) -> Survey:
    counts: Counter[str] = Counter()
    supercategories: dict[str, str] = {}
    unsplit = 0
    data_keys: dict[str, None] = {}
    box_keys: set[str] = set()
    values: dict[str, Any] = {}
    # A view's filter may read any field; a key or no split, the metadata and size only.
    async for batch in selection.batches(None if export.splits.views else SURVEYED):
        for document in batch:
            splits = export.splits.of(document)
            if not splits:
                unsplit += 1
                continue
            if len(splits) > 1:
                raise BadInput(
                    f"Image {document['_id']} is in more than one split ({', '.join(splits)}); "
                    "the views named in splits must not overlap."
                )
            counts[splits[0]] += 1
            if export.splits.key is not None:
                _same_value(values, splits[0], value_at(document["data"], export.splits.key), export.splits.key)
            document = export.splits.carried(document)
            found = read_annotations(document, export.fields)
            export.format.check(document, found, export.fields)
            data_keys.update(dict.fromkeys(document.get("data") or {}))
            for box in found.boxes:
                box_keys.update(_box_keys(box))
                named = box.extra.get("supercategory")
                # The first box of the label that names one gives its category's.
                supercategories[box.label] = supercategories.get(box.label) or (named if isinstance(named, str) else "")
    if len(counts) > MAX_SPLITS:
        raise BadInput(f"data.{export.splits.key} takes more than {MAX_SPLITS} values; a split key names a few splits.")
    order = [name for name, _ in export.splits.views] if export.splits.views else sorted(counts)
    categories = {label: supercategories[label] for label in sorted(supercategories)}
    return Survey(
        splits=order,
        counts=dict(counts),
        categories=categories,
        unsplit=unsplit,
        data_keys=list(data_keys),
        box_keys=sorted(box_keys),
    )


def _box_keys(box: Box) -> list[str]:
    named = [name for name in ("score", "id", "polygon") if getattr(box, name) is not None]
    return [*named, *box.extra]


def without_path(data: Mapping[str, Any], path: list[str]) -> dict[str, Any]:
    """`data` without the value at `path` (its dotted parts); an object it leaves empty goes too."""
    kept = dict(data)
    head, rest = path[0], path[1:]
    if not rest:
        kept.pop(head, None)
    elif isinstance(kept.get(head), Mapping):
        inner = without_path(kept[head], rest)
        if inner:
            kept[head] = inner
        else:
            kept.pop(head)
    return kept


def _same_value(values: dict[str, Any], split: str, value: Any, key: str) -> None:
    """One value per split: `1` and `"1"` would name one folder, yet they are two values to
    every filter (an import gives back text): refused rather than merged."""
    seen = values.setdefault(split, value)
    if type(seen) is not type(value):
        raise BadInput(f"data.{key} holds both {seen!r} and {value!r}, which would name the same split.")


def _split_value(value: Any, document: Mapping[str, Any], key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(
            f"Image {document['_id']} has data.{key} that is not a string or a whole number, so it names no split."
        )
    name = str(value)
    if not _SPLIT_NAME.match(name) or name in (".", ".."):
        raise BadInput(f"Image {document['_id']} has data.{key} {name!r}, which cannot be a split's folder name.")
    return name


@dataclass(kw_only=True)
class _Left:
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    written: Counter[str] = field(default_factory=Counter)
    not_carried: dict[tuple[str, str], int] = field(default_factory=dict)


async def _zip(
    selection: Selection,
    export: TrainingExport,
    survey: Survey,
    writer: Writer,
    store: Store,
    storage: Storage,
    metrics: Metrics,
) -> AsyncIterator[bytes]:
    left = _Left()
    try:
        async for chunk in zipped(_members(selection, export, survey, writer, left, store, storage), metrics):
            yield chunk
    finally:
        writer.close()


async def _members(
    selection: Selection,
    export: TrainingExport,
    survey: Survey,
    writer: Writer,
    left: _Left,
    store: Store,
    storage: Storage,
) -> AsyncIterator[Member]:
    async for member in writer.members(_samples(selection, export, left, store, storage)):
        yield member
    async for member in writer.closing():
        yield member
    yield "report.json", datetime.now(UTC), FILE_MODE, _bytes(_report(export, survey, writer, left))


async def _samples(
    selection: Selection, export: TrainingExport, left: _Left, store: Store, storage: Storage
) -> AsyncIterator[Sample]:
    """Every image of every split, the splits mixed, in the selection's order: one read of it
    whatever the number of splits."""
    with store.errors():
        async for batch in selection.batches(None):
            for document in batch:
                found = export.splits.of(document)
                if len(found) != 1:  # in no split (or refused by the survey, if it changed since)
                    continue
                document = export.splits.carried(document)
                sample = await _opened(selection, found[0], document, export.fields, left, storage)
                if sample is None:
                    continue
                left.written[found[0]] += 1
                for carried in export.format.not_carried(document, sample.annotations, export.fields):
                    left.not_carried[carried] = left.not_carried.get(carried, 0) + 1
                yield sample


async def _opened(
    selection: Selection, split: str, document: dict[str, Any], fields: Fields, left: _Left, storage: Storage
) -> Sample | None:
    key = document["file"]
    try:
        found = await open_selected(selection, storage, document)
    except NotFound:
        left.missing.append(key)
        return None
    if found is None:
        left.changed.append(key)
        return None
    opened = found.opened

    async def reopen() -> AsyncIterator[bytes]:
        # Where the bytes were found: a kept copy never changes; a path, only by a later write.
        return (await replacement.open_stored(storage, found.key, found.pending)).chunks

    return Sample(
        split=split,
        document=document,
        annotations=read_annotations(document, fields),
        file=key,
        size=opened.size,
        chunks=opened.chunks,
        time=modified_time(document),
        reopen=reopen,
    )


def _report(export: TrainingExport, survey: Survey, writer: Writer, left: _Left) -> bytes:
    report = {
        "format": export.format.name,
        "splits": {name: {"images": left.written.get(name, 0)} for name in survey.splits},
        "categories": list(survey.categories),
        **writer.summary(),
        "missingFiles": left.missing,
        "fileChanged": left.changed,
        "notInAnySplit": survey.unsplit,
        "notCarried": [
            {"field": name, "images": count, "why": why} for (name, why), count in sorted(left.not_carried.items())
        ],
    }
    return json.dumps(report, indent=1, ensure_ascii=False).encode()


async def _bytes(content: bytes) -> AsyncIterator[bytes]:
    yield content


def named_splits(text: str) -> list[tuple[str, str]]:
    """`train:viewA,val:viewB` → [("train", "viewA"), ("val", "viewB")]."""
    pairs = []
    for part in text.split(","):
        name, colon, view = part.strip().partition(":")
        name, view = name.strip(), view.strip()
        if not colon or not name or not view:
            raise BadInput(f"splits must be written split:view, comma-separated (train:viewA,val:viewB), not {text!r}.")
        if not _SPLIT_NAME.match(name) or name in (".", ".."):
            raise BadInput(f"The split name {name!r} cannot be a folder's name.")
        pairs.append((name, view))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise BadInput(f"splits names a split more than once: {text!r}.")
    return pairs
