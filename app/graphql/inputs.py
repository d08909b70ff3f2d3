"""Input types: the typed filter, sorting. Their compilation lives in filters.py."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from app.domain.query import MAX_LIST_LENGTH, MAX_REGEX_LENGTH
from app.graphql.enums import described


@strawberry.input(description="Conditions on the file path; all given ones must hold.")
class FileFilter:
    eq: str | None = strawberry.field(default=None, description="Exactly this path")
    contains: str | None = strawberry.field(default=None, description="Case-insensitive substring")
    regex: str | None = strawberry.field(default=None, description="Regular expression")


@strawberry.input(description="A time range; all given bounds must hold.")
class TimeFilter:
    gt: datetime | None = strawberry.field(default=None, description="After this moment")
    gte: datetime | None = strawberry.field(default=None, description="At or after this moment")
    lt: datetime | None = strawberry.field(default=None, description="Before this moment")
    lte: datetime | None = strawberry.field(default=None, description="At or before this moment")


@strawberry.input(description="Conditions on one metadata path such as `label` or `camera.iso`.")
class DataCondition:
    path: str = strawberry.field(description="Path inside data, dotted for nested values")
    eq: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Equals this value; an array also matches when one of its elements does; null also matches a "
        "missing key",
    )
    ne: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Differs from this value: no element of an array equals it; a missing key matches",
    )
    gt: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Greater than this value, compared within its type (numbers with numbers, strings with "
        "strings); an array matches when one of its elements does",
    )
    gte: JSON | None = strawberry.field(default=strawberry.UNSET, description="Greater than or equal, as `gt` compares")
    lt: JSON | None = strawberry.field(default=strawberry.UNSET, description="Less than, as `gt` compares")
    lte: JSON | None = strawberry.field(default=strawberry.UNSET, description="Less than or equal, as `gt` compares")
    in_: list[JSON] | None = strawberry.field(
        default=strawberry.UNSET, name="in", description="Equals one of these values, as `eq` matches"
    )
    nin: list[JSON] | None = strawberry.field(
        default=strawberry.UNSET, description="Equals none of these values, as `ne` matches; a missing key matches"
    )
    exists: bool | None = strawberry.field(
        default=strawberry.UNSET, description="True: the key is present (null counts); false: it is missing"
    )
    regex: str | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"A regular expression that a string value matches anywhere in it (at most {MAX_REGEX_LENGTH} "
        "characters)",
    )
    case_insensitive: bool = strawberry.field(default=False, description="For `regex`: letters match either case")


@strawberry.input(description="Which images: every given part must hold.")
class ImageFilter:
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description=f"Only these images, by id (at most {MAX_LIST_LENGTH:,})"
    )
    file: FileFilter | None = strawberry.field(default=None, description="Conditions on the file path")
    checksum: str | None = strawberry.field(
        default=None, description="The SHA-256 of the file (hex): the images holding identical files"
    )
    time: TimeFilter | None = strawberry.field(default=None, description="A range of the capture or upload time")
    data: list[DataCondition] | None = strawberry.field(
        default=None, description="Conditions on metadata, each on one path; all must hold (at most 100)"
    )
    and_: list[ImageFilter] | None = strawberry.field(
        default=None, name="and", description="Filters that must all hold (at most 100; nested at most 8 deep)"
    )
    or_: list[ImageFilter] | None = strawberry.field(
        default=None, name="or", description="Filters of which at least one must hold (at most 100)"
    )
    not_: ImageFilter | None = strawberry.field(
        default=None, name="not", description="A filter that must not hold; it needs at least one condition"
    )
    where: JSON | None = strawberry.field(
        default=None, description="A MongoDB-style query, under the same operator whitelist as REST `filter`"
    )


@strawberry.enum(description="Which way a sort key orders.")
class SortDirection(Enum):
    ASC = described(1, "Ascending: smallest, earliest, A before Z")
    DESC = described(-1, "Descending: largest, latest, Z before A")


@strawberry.enum(description="System fields whose values can be counted.")
class SystemField(Enum):
    CONTENT_TYPE = described("contentType", "The content type detected from the file, such as image/jpeg")
    OWNER = described("owner", "The owner's user id (per-user scope: only yours); images without one are not counted")


@strawberry.input(description="One key of a sort; `_id` breaks ties, so pages are stable.")
class SortInput:
    field: str = strawberry.field(description="The field: time, file, _id, or a data path such as data.count")
    direction: SortDirection = strawberry.field(default=SortDirection.ASC, description="Which way it orders")


@strawberry.input(description="A path to check, with the SHA-256 of your copy of its file where you have it.")
class FileCheckInput:
    file: str = strawberry.field(description="A path as an upload's `file` names it")
    checksum: str | None = strawberry.field(
        default=None, description="The SHA-256 of your file, 64 hexadecimal characters; optional"
    )
