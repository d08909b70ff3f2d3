"""Import a `.zip` archive: ours from `/export`, the legacy service's, or a training format's.

A training format (coco, yolo, hf: recognised from the contents, or named; imagefolder only when
named) is read whole into a checked plan first (app/domain/archives/reading/), so a bad
annotation file is a 400 with nothing written; then its images are written as new files are.

With `mongodb_data.json` the documents are restored (their `_id`, `time` and `data`, upserted by
file and owner); archive files it does not list, or any file when there is no such JSON, become
new images. Every image goes through `Uploads.upload`, or `create_many` for a batch of new
paths, so an imported image is checked, stored and made consistent exactly like an uploaded one.

Archives are untrusted: limits on entry count and total size are checked on the central
directory before anything is written (declared sizes bound what zipfile will inflate, so a zip
bomb cannot exceed them), names that could leave the storage root and symbolic links are
skipped, and the JSON is parsed as a stream and checked whole before the first write.
"""

from __future__ import annotations

import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import IO, Any, BinaryIO, TypeVar, cast

import ijson
from anyio import to_thread
from bson import ObjectId

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD
from app.domain.archives import reading
from app.domain.archives.export import JSON_NAME, XLSX_NAME
from app.domain.images.uploads import NewImage, Uploads
from app.domain.metadata import parse_object_id, parse_time
from app.domain.scope import Scope
from app.errors import BadInput, ServiceError, TooLarge, Unavailable
from app.storage import normalise_key

T = TypeVar("T")


LOOKUP_BATCH = 200
# New images written together (one lease take, insert and release): enough to spread the cost
# of a database write over many images, few enough zip entries open at once.
CREATE_BATCH = 50


@dataclass(frozen=True, kw_only=True)
class ImportLimits:
    max_entries: int
    max_uncompressed_bytes: int


@dataclass(kw_only=True)
class ImportSummary:
    file: str
    imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name, "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "imported": self.imported, "skipped": self.skipped}


class ImportInterrupted(Unavailable):
    """The database or storage went away mid-import; `summary` says what was imported."""

    def __init__(self, detail: str, summary: ImportSummary) -> None:
        super().__init__(detail)
        self.summary = summary


@dataclass(frozen=True, kw_only=True)
class _Restored:
    """One document of `mongodb_data.json`, checked for shape."""

    file: str
    image_id: ObjectId | None
    time: datetime | None
    data: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ImportFormat:
    """How to read the archive: `legacy`, a training format, or None to tell from its contents
    (a training format only when it shows one; `imagefolder` is never guessed)."""

    name: str | None = None
    label_field: str = DEFAULT_LABEL_FIELD
    boxes_field: str = DEFAULT_BOXES_FIELD


async def import_archive(
    images: Uploads,
    scope: Scope,
    *,
    archive: BinaryIO,
    archive_name: str,
    extra_data: dict[str, Any],
    limits: ImportLimits,
    format: ImportFormat | None = None,
) -> ImportSummary:
    with images.metrics.archive("import"):
        return await _import_archive(images, scope, archive, archive_name, extra_data, limits, format or ImportFormat())


async def _import_archive(
    images: Uploads,
    scope: Scope,
    archive: BinaryIO,
    archive_name: str,
    extra_data: dict[str, Any],
    limits: ImportLimits,
    format: ImportFormat,
) -> ImportSummary:
    summary = ImportSummary(file=archive_name)
    zip_file = await to_thread.run_sync(_open_zip, archive)
    with ExitStack() as stack:
        stack.callback(zip_file.close)
        entries = await to_thread.run_sync(_inventory, zip_file, limits)
        name = format.name if format.name is not None else reading.recognised(entries)
        if name not in (None, "legacy"):
            planned = await to_thread.run_sync(
                lambda: reading.plan(
                    zip_file, entries, name, label_field=format.label_field, boxes_field=format.boxes_field
                )
            )
            await _import_planned(images, scope, zip_file, planned, extra_data, summary)
            return summary
        has_json = JSON_NAME in entries
        parser = FAST_PARSER
        if has_json:
            parser = await to_thread.run_sync(_check_documents, zip_file)
        used: set[str] = set()
        documents = _documents(zip_file, parser) if has_json else _no_documents()
        stack.callback(documents.close)
        while batch := await to_thread.run_sync(_take, documents, LOOKUP_BATCH):
            fresh = await _fresh_paths(images, scope, [document.file for document in batch])
            news = []
            for document in batch:
                used.add(document.file)
                info = entries.get(document.file)
                if info is None:
                    summary.skip(document.file, f"listed in {JSON_NAME} but its file is not in the archive")
                    continue
                news.append(
                    NewImage(
                        source=_entry(zip_file, info),
                        length=info.file_size,
                        file=document.file,
                        time=document.time,
                        data={**document.data, **extra_data},
                        image_id=document.image_id,
                        id_required=False,
                        known_new=document.file in fresh,
                    )
                )
            await _import_batch(images, scope, news, summary)
        remaining = (info for name, info in entries.items() if name not in used and name not in (JSON_NAME, XLSX_NAME))
        while batch_infos := _take(remaining, LOOKUP_BATCH):
            fresh = await _fresh_paths(images, scope, [info.filename for info in batch_infos])
            news = []
            for info in batch_infos:
                if _is_symlink(info):
                    summary.skip(info.filename, "symbolic links are not imported")
                    continue
                news.append(
                    NewImage(
                        source=_entry(zip_file, info),
                        length=info.file_size,
                        file=info.filename,
                        data=dict(extra_data),
                        known_new=info.filename in fresh,
                    )
                )
            await _import_batch(images, scope, news, summary)
    return summary


async def _import_planned(
    images: Uploads,
    scope: Scope,
    zip_file: zipfile.ZipFile,
    planned: list[reading.Planned],
    extra_data: dict[str, Any],
    summary: ImportSummary,
) -> None:
    """A training format's images, checked whole already, written as new files are."""
    for start in range(0, len(planned), LOOKUP_BATCH):
        batch = planned[start : start + LOOKUP_BATCH]
        fresh = await _fresh_paths(images, scope, [image.file for image in batch])
        news = [
            NewImage(
                source=_entry(zip_file, image.entry),
                length=image.entry.file_size,
                file=image.file,
                data={**image.data, **extra_data},
                known_new=image.file in fresh,
            )
            for image in batch
        ]
        await _import_batch(images, scope, news, summary)


def _no_documents() -> Generator[_Restored, None, None]:
    yield from ()


def _take(items: Iterator[T], count: int) -> list[T]:
    return list(islice(items, count))


async def _fresh_paths(images: Uploads, scope: Scope, names: list[str]) -> set[str]:
    """The names that are already canonical paths and that hold no image of the caller's yet.

    Looked up in the storage (`Uploads.taken_paths`), never the collection by path: on
    the embedded database that reads every document, so imports slowed down with every image stored.
    """
    canonical = [name for name in names if _is_canonical(scope, name)]
    return set(canonical) - await images.taken_paths(scope, canonical)


def _is_canonical(scope: Scope, name: str) -> bool:
    try:
        scope.file_path(name)  # placed under the owner's folder, still a valid path
        return normalise_key(name) == name
    except BadInput:
        return False


async def _import_batch(images: Uploads, scope: Scope, news: list[NewImage], summary: ImportSummary) -> None:
    """New paths written together (`Uploads.create_many`), a few dozen at a time; the others
    (replacements, and names that are not yet canonical paths) one by one."""
    fresh = [new for new in news if new.known_new]
    for start in range(0, len(fresh), CREATE_BATCH):
        part = fresh[start : start + CREATE_BATCH]
        try:
            results = await images.create_many(scope, part)
        except Unavailable as error:
            raise ImportInterrupted(
                f"The import stopped after {summary.imported} images: {error.detail}", summary
            ) from None
        finally:
            for new in part:
                new.source.close()
        outage: Unavailable | None = None
        for new, result in zip(part, results, strict=True):
            if isinstance(result, Unavailable):
                outage = result
            elif isinstance(result, ServiceError):
                summary.skip(new.file or "", result.detail)
            else:
                summary.imported += 1
        if outage is not None:
            raise ImportInterrupted(f"The import stopped after {summary.imported} images: {outage.detail}", summary)
    for new in news:
        if not new.known_new:
            await _import_one(images, scope, new, summary)


async def _import_one(images: Uploads, scope: Scope, new: NewImage, summary: ImportSummary) -> None:
    name = new.file or ""
    try:
        await images.upload(scope, new)
    except Unavailable as error:
        raise ImportInterrupted(
            f"The import stopped after {summary.imported} images: {error.detail}", summary
        ) from None
    except ServiceError as error:  # this image is refused (not an image, bad path, too large…); go on
        summary.skip(name, error.detail)
    else:
        summary.imported += 1
    finally:
        new.source.close()


def _open_zip(archive: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise BadInput("The archive is not a valid .zip file.") from None


def _inventory(zip_file: zipfile.ZipFile, limits: ImportLimits) -> dict[str, zipfile.ZipInfo]:
    """The file entries by name, once the archive is known to be within the limits."""
    infos = [info for info in zip_file.infolist() if not info.is_dir()]
    if len(infos) > limits.max_entries:
        raise TooLarge(f"The archive holds {len(infos)} files; at most {limits.max_entries} can be imported at once.")
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise TooLarge(
            f"The archive unpacks to {total} bytes; at most {limits.max_uncompressed_bytes} can be imported at once."
        )
    return {info.filename: info for info in infos}


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


# yajl's C parser, the fast one, reads a lone UTF-16 surrogate escape (`"\ud800"`) as "?", which
# would store changed text; Python's keeps it, so the image holding it is refused by the checks
# every upload passes. JSON that escapes no surrogate at all (ours and the legacy service's
# archives write UTF-8) is read by the fast one.
FAST_PARSER: Any = ijson
EXACT_PARSER: Any = ijson.get_backend("python")


def _check_documents(zip_file: zipfile.ZipFile) -> Any:
    """Read mongodb_data.json through once, so a corrupt one is refused before any write; the
    parser to read it with."""
    try:
        with zip_file.open(JSON_NAME) as handle:
            watched = _SurrogateEscapes(handle)
            count = sum(1 for _ in _documents_in(watched, FAST_PARSER))
    except _CORRUPT as error:
        raise _corrupt(error) from None
    if count == 0:
        _require_array(zip_file)
    return EXACT_PARSER if watched.seen else FAST_PARSER


class _SurrogateEscapes:
    """A binary file that notes whether the JSON read through it escapes a UTF-16 surrogate."""

    # Also an escaped backslash before `ud800`, which only costs the slower parser.
    _ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._tail = b""
        self.seen = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        if not self.seen:
            self.seen = self._ESCAPE.search(self._tail + chunk) is not None
            self._tail = chunk[-3:]
        return chunk


def _documents(zip_file: zipfile.ZipFile, parser: Any) -> Generator[_Restored, None, None]:
    """The documents of mongodb_data.json one at a time, never the whole parsed file."""
    try:
        with zip_file.open(JSON_NAME) as handle:
            yield from _documents_in(handle, parser)
    except _CORRUPT as error:
        raise _corrupt(error) from None


def _documents_in(handle: Any, parser: Any) -> Generator[_Restored, None, None]:
    for index, item in enumerate(parser.items(handle, "item", use_float=True)):
        yield _restored(item, index)


_CORRUPT = (ijson.JSONError, zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError)


def _corrupt(error: Exception) -> BadInput:
    return BadInput(f"{JSON_NAME} in the archive is corrupt: {error}.")


def _require_array(zip_file: zipfile.ZipFile) -> None:
    # ijson finds no items both in `[]` and in a document that is not an array at all.
    try:
        with zip_file.open(JSON_NAME) as handle:
            first = next(ijson.parse(handle), None)
    except _CORRUPT as error:
        raise _corrupt(error) from None
    if first is None or first[1] != "start_array":
        raise BadInput(f"{JSON_NAME} in the archive must hold an array of documents.")


def _restored(item: Any, index: int) -> _Restored:
    where = f"{JSON_NAME} item {index}"
    if not isinstance(item, dict):
        raise BadInput(f"{where} is not an object.")
    file = item.get("file")
    if not isinstance(file, str) or not file:
        raise BadInput(f"{where} has no file path.")
    raw_id = item.get("_id")
    if isinstance(raw_id, dict):  # MongoDB extended JSON, as mongoexport writes it
        raw_id = raw_id.get("$oid")
    raw_time = item.get("time")
    if isinstance(raw_time, dict):
        raw_time = raw_time.get("$date")
    data = item.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadInput(f"{where} has data that is not an object.")
    try:
        image_id = parse_object_id(raw_id) if isinstance(raw_id, str) else None
        time = parse_time(raw_time) if isinstance(raw_time, str) else None
    except BadInput as error:
        raise BadInput(f"{where}: {error.detail}") from None
    return _Restored(file=file, image_id=image_id, time=time, data=data or {})


def _entry(zip_file: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
    return cast(BinaryIO, _EntryReader(zip_file, info))


class _EntryReader:
    """A zip entry as the seekable binary file uploads expect; a damaged entry is BadInput.

    Opened on first use, so entries wait closed until their turn.
    """

    def __init__(self, zip_file: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self._zip, self._info = zip_file, info
        self._handle: IO[bytes] | None = None

    @property
    def _file(self) -> IO[bytes]:
        if self._handle is None:
            self._handle = self._guard(lambda: self._zip.open(self._info))
        return self._handle

    def _guard(self, action: Any) -> Any:
        try:
            return action()
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
            name = posixpath.basename(self._info.filename)
            raise BadInput(f"The archive entry {name!r} is damaged or unsupported: {error}.") from None

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._guard(lambda: self._file.read(size))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._guard(lambda: self._file.seek(offset, whence))
        return position

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(65536), b"")
