"""Input types: the typed filter, sorting. Their compilation lives in filters.py."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON


@strawberry.input(description="Conditions on the file path; all given ones must hold.")
class FileFilter:
    eq: str | None = strawberry.field(default=None, description="exactly this path")
    contains: str | None = strawberry.field(default=None, description="case-insensitive substring")
    regex: str | None = strawberry.field(default=None, description="regular expression")


@strawberry.input(description="A time range; all given bounds must hold.")
class TimeFilter:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None


@strawberry.input(description="Conditions on one metadata path such as `label` or `camera.iso`.")
class DataCondition:
    path: str = strawberry.field(description="path inside data, dotted for nested values")
    eq: JSON | None = strawberry.UNSET
    ne: JSON | None = strawberry.UNSET
    gt: JSON | None = strawberry.UNSET
    gte: JSON | None = strawberry.UNSET
    lt: JSON | None = strawberry.UNSET
    lte: JSON | None = strawberry.UNSET
    in_: list[JSON] | None = strawberry.field(default=strawberry.UNSET, name="in")
    nin: list[JSON] | None = strawberry.UNSET
    exists: bool | None = strawberry.UNSET
    regex: str | None = strawberry.UNSET
    case_insensitive: bool = strawberry.field(default=False, description="for regex")


@strawberry.input(description="Which images: every given part must hold.")
class ImageFilter:
    ids: list[strawberry.ID] | None = None
    file: FileFilter | None = None
    checksum: str | None = strawberry.field(
        default=None, description="the SHA-256 of the file (hex): the images holding identical files"
    )
    time: TimeFilter | None = None
    data: list[DataCondition] | None = None
    and_: list[ImageFilter] | None = strawberry.field(default=None, name="and")
    or_: list[ImageFilter] | None = strawberry.field(default=None, name="or")
    not_: ImageFilter | None = strawberry.field(default=None, name="not")
    where: JSON | None = strawberry.field(
        default=None, description="a MongoDB-style query, under the same operator whitelist as REST `filter`"
    )


@strawberry.enum
class SortDirection(Enum):
    ASC = 1
    DESC = -1


@strawberry.enum(description="System fields whose values can be counted.")
class SystemField(Enum):
    CONTENT_TYPE = "contentType"
    OWNER = "owner"


@strawberry.input
class SortInput:
    field: str = strawberry.field(description="time, file, _id, or a data path such as data.count")
    direction: SortDirection = SortDirection.ASC
