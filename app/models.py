"""The one stored model, shared by REST and GraphQL: an image document."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from beanie import Document
from pydantic import Field, field_validator


def utc_now() -> datetime:
    return to_stored_time(datetime.now(UTC))


def to_stored_time(moment: datetime) -> datetime:
    """UTC, truncated to milliseconds: what MongoDB keeps, so a value reads back equal."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, as the legacy service (JavaScript) wrote it."""
    moment = to_stored_time(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# Fields the legacy service's documents carry that this service does not use: mongoose's
# version key. New documents get it too, so that the legacy service reads them as its own
# (a team can roll back).
LEGACY_FIELDS: dict[str, Any] = {"__v": 0}

# What clients see of a document, in this order; `dataKeys` is bookkeeping and stays inside.
RENDERED_FIELDS = ("file", "time", "data", "userId", "size", "contentType", "width", "height", "checksum", "exif")


class Image(Document):
    file: str
    time: datetime = Field(default_factory=utc_now)
    data: dict[str, Any] = Field(default_factory=dict)
    # Stored as null (not left out) when there is no owner: the store's unique indexes treat
    # explicit nulls as equal on every engine, missing fields not on all.
    userId: str | None = None
    # Facts derived from the file at upload; the legacy service had none, so they may be absent.
    size: int | None = None
    contentType: str | None = None
    width: int | None = None
    height: int | None = None
    # SHA-256 of the stored bytes (hex), taken while they were stored; absent on documents
    # written before it was recorded, or by the legacy service.
    checksum: str | None = None
    # What the photo's EXIF says (app/domain/media/exif.py): takenAt, make, model, orientation, gps.
    exif: dict[str, Any] | None = None
    # The top-level keys of `data`, kept beside it so `GET /fields` is a `distinct` on an index
    # rather than a scan of every document's metadata (not every engine has $objectToArray).
    dataKeys: list[str] | None = None
    # Raised by every write, so a conditional write sees any change in between (app/domain/
    # rewrite.py) and clients can name the state they read (ETag). Legacy documents have none: 0.
    revision: int = 0
    # Where the bytes of an unfinished replacement are, until they are moved onto `file`
    # (app/domain/writes/replacement.py); absent otherwise.
    pendingFile: str | None = None

    class Settings:
        name = "images"  # its indexes: app/store/images.py

    @field_validator("data", mode="before")
    @classmethod
    def _data_as_object(cls, value: Any) -> Any:
        # Documents written elsewhere may hold null (or no object) here; changes start from {}.
        return value if isinstance(value, dict) else {}


def image_to_json(image: Image) -> dict[str, Any]:
    """The document as clients see it: `_id` as hex, `time` as ISO, `userId` only when set."""
    return document_to_json({"_id": image.id, **image.model_dump(include=set(RENDERED_FIELDS))})


def document_to_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """A raw document (possibly projected by `select`) as clients see it; unset fields are left out."""
    rendered: dict[str, Any] = {}
    if "_id" in document:
        rendered["_id"] = str(document["_id"])
    for name in RENDERED_FIELDS:
        value = document.get(name)
        if value is None and name != "data":
            continue
        if name in document:
            rendered[name] = _timed(value)
    return rendered


def _timed(value: Any) -> Any:
    """Times as clients see them, inside objects too (`exif.takenAt`)."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        return {key: format_time(item) if isinstance(item, datetime) else item for key, item in value.items()}
    return value
