"""The one stored model, shared by REST and GraphQL: an image document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pymongo
from beanie import Document
from pydantic import Field
from pymongo import IndexModel


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


# Time ranges and time sorting are the GUI's default query; (file, owner) is the upsert key.
IMAGE_INDEXES = [
    IndexModel([("time", pymongo.ASCENDING)], name="time_1"),
    IndexModel([("userId", pymongo.ASCENDING)], name="userId_1"),
    IndexModel([("file", pymongo.ASCENDING), ("userId", pymongo.ASCENDING)], name="file_1_userId_1", unique=True),
]


class Image(Document):
    file: str
    time: datetime = Field(default_factory=utc_now)
    data: dict[str, Any] = Field(default_factory=dict)
    # Stored as null (not left out) when there is no owner: FerretDB's unique index only
    # treats explicit nulls as equal, MongoDB treats both alike.
    userId: str | None = None
    # Facts derived from the file at upload; the legacy service had none, so they may be absent.
    size: int | None = None
    contentType: str | None = None
    width: int | None = None
    height: int | None = None

    class Settings:
        name = "images"
        indexes = IMAGE_INDEXES


def image_to_json(image: Image) -> dict[str, Any]:
    """The document as clients see it: `_id` as hex, `time` as ISO, `userId` only when set."""
    rendered: dict[str, Any] = {
        "_id": str(image.id),
        "file": image.file,
        "time": format_time(image.time),
        "data": image.data,
    }
    if image.userId is not None:
        rendered["userId"] = image.userId
    for name in ("size", "contentType", "width", "height"):
        value = getattr(image, name)
        if value is not None:
            rendered[name] = value
    return rendered
