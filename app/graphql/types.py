"""Output types. Built from raw documents, so a page of images costs one database query."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from app.domain.datasets.snapshots import Snapshot as SavedSnapshot
from app.domain.datasets.views import View as SavedView
from app.domain.images.content import content_path
from app.domain.media.resize import MAX_SIDE, parse_resize
from app.domain.writes.rewrite import revision_of
from app.graphql.context import Info


@strawberry.type(description="Where a photo was taken, by its EXIF.")
class GpsPosition:
    latitude: float = strawberry.field(description="decimal degrees, north positive")
    longitude: float = strawberry.field(description="decimal degrees, east positive")
    altitude: float | None = strawberry.field(default=None, description="metres above sea level")


@strawberry.type(description="What a photo's EXIF says; read at upload, never part of `data`.")
class Exif:
    taken_at: datetime | None = strawberry.field(default=None, description="capture time (UTC)")
    make: str | None = None
    model: str | None = None
    orientation: int | None = strawberry.field(default=None, description="EXIF orientation, 1 (upright) to 8")
    gps: GpsPosition | None = None

    @classmethod
    def from_facts(cls, facts: Any) -> Exif | None:
        if not isinstance(facts, Mapping):
            return None
        gps = facts.get("gps")
        position = GpsPosition(**gps) if isinstance(gps, Mapping) else None
        return cls(
            taken_at=facts.get("takenAt"),
            make=facts.get("make"),
            model=facts.get("model"),
            orientation=facts.get("orientation"),
            gps=position,
        )


@strawberry.type(description="An image file and its metadata.")
class Image:
    id: strawberry.ID
    file: str = strawberry.field(
        description="storage path, folders allowed; with per-user scope it starts with the owner's folder"
    )
    time: datetime | None = strawberry.field(description="capture or upload time (UTC)")
    data: JSON = strawberry.field(description="free-form metadata")
    user_id: str | None = strawberry.field(description="owner, with per-user scope")
    size: int | None = strawberry.field(description="bytes, when known")
    content_type: str | None = strawberry.field(description="detected from the content, when known")
    width: int | None = None
    height: int | None = None
    checksum: str | None = strawberry.field(
        description="SHA-256 of the file (hex), when known; images with equal checksums hold identical files"
    )
    exif: Exif | None = strawberry.field(description="what the photo's EXIF says, when it has any")
    revision: int = strawberry.field(
        description="raised by every change; give it back to a mutation's `revision` to change only this state"
    )

    @strawberry.field(
        description="where a browser loads the file: its content address, the REST route"
        " /images/{id}/content/{sha256}-{size}, cached for good (while the checksum is unknown,"
        " /images/{id}/file); with OIDC signed for the caller, so `<img src>` needs no header"
    )
    async def url(self, info: Info) -> str:
        return await info.context.link(self._content_path())

    @strawberry.field(
        description=f"where a browser loads a JPEG copy at most `width` pixels wide (1 to {MAX_SIDE}, never"
        " enlarged), made once and then kept: `url` with `?width=…`"
    )
    async def thumbnail_url(self, info: Info, width: int) -> str:
        parse_resize(width=width, height=None, fit=None, format=None, quality=None)  # BadInput if out of range
        return await info.context.link(self._content_path(), {"width": str(width)})

    @strawberry.field(
        description="a URL that downloads the file without credentials: on S3 storage presigned, valid"
        " `expiresIn` seconds (default PRESIGNED_URL_SECONDS, at most 604800); on local storage `url`"
    )
    async def download_url(self, info: Info, expires_in: int | None = None) -> str:
        services = info.context.services
        file = await services.images.file(info.context.scope, str(self.id))
        seconds = services.settings.presigned_url_seconds if expires_in is None else expires_in
        presigned = await services.images.presigned_url(file, expires_in=seconds)
        return presigned or await self.url(info)

    def _content_path(self) -> str:
        return content_path({"_id": self.id, "checksum": self.checksum, "size": self.size})

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Image:
        data = document.get("data")
        return cls(
            id=strawberry.ID(str(document["_id"])),
            file=document.get("file", ""),
            time=document.get("time"),
            data=cast(JSON, data if isinstance(data, dict) else {}),
            user_id=document.get("userId"),
            size=document.get("size"),
            content_type=document.get("contentType"),
            width=document.get("width"),
            height=document.get("height"),
            checksum=document.get("checksum"),
            exif=Exif.from_facts(document.get("exif")),
            revision=revision_of(document),
        )


@strawberry.type(description="Images holding identical files.")
class DuplicateGroup:
    checksum: str = strawberry.field(description="SHA-256 of the file they share (hex)")
    count: int = strawberry.field(description="how many of your images hold it")
    ids: list[strawberry.ID] = strawberry.field(description="their ids (at most 100)")


@strawberry.type(description="A value a field takes, and how many of the matching images take it.")
class Facet:
    value: JSON | None = strawberry.field(description="the value (each element of an array counts on its own)")
    count: int


@strawberry.type(description="One page of matching images.")
class ImagePage:
    total: int = strawberry.field(description="every match, not just this page")
    skip: int
    limit: int
    items: list[Image]


@strawberry.type(description="One image of a connection, and the cursor to give as `after` to continue past it.")
class ImageEdge:
    node: Image
    cursor: str


@strawberry.type(description="Where a connection page stands (Relay).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = strawberry.field(description="whether the page was asked for `after` a cursor")
    start_cursor: str | None
    end_cursor: str | None = strawberry.field(description="give it as `after` for the next page")


@strawberry.type(description="Matching images a page at a time, by cursor (Relay connection).")
class ImageConnection:
    edges: list[ImageEdge]
    page_info: PageInfo
    query_filter: strawberry.Private[dict[str, Any]]

    @strawberry.field(description="every match, not just this page (counted only when asked for)")
    async def total_count(self, info: Info) -> int:
        return await info.context.services.listing.count(info.context.scope, self.query_filter)


@strawberry.type(description="One key of a sort.")
class SortKey:
    field: str
    direction: int = strawberry.field(description="1 ascending, -1 descending")


@strawberry.type(description="A saved view: a named filter and sort of yours, usable as `view:` wherever a filter is.")
class View:
    name: str
    filter: JSON = strawberry.field(description='MongoDB-style, dates as {"$date": …}, ids as {"$oid": …}')
    sort: list[SortKey]
    created: datetime
    updated: datetime
    problem: str | None = strawberry.field(
        description="why the view can no longer be used (its filter fails a check added since it was saved)"
    )

    @classmethod
    def from_view(cls, view: SavedView) -> View:
        return cls(
            name=view.name,
            filter=cast(JSON, view.filter_json),
            sort=[SortKey(field=path, direction=direction) for path, direction in view.sort],
            created=view.created,
            updated=view.updated,
            problem=view.problem,
        )


@strawberry.type(description="Ids of images, and how many there are in all.")
class IdList:
    count: int
    ids: list[strawberry.ID] = strawberry.field(description="at most the `limit` asked for")


@strawberry.type(description="From one snapshot to another.")
class SnapshotDiff:
    added: IdList = strawberry.field(description="in the other snapshot only")
    removed: IdList = strawberry.field(description="in this snapshot only")
    changed: IdList = strawberry.field(description="in both, with another file, checksum, time or data")


@strawberry.type(description="A page of a snapshot's frozen images, in id order.")
class SnapshotImages:
    total: int
    items: list[Image]


@strawberry.type(description="Images frozen under a name: ids, files, checksums, times and data as they were.")
class Snapshot:
    name: str
    filter: JSON = strawberry.field(description="what was frozen: the filter, with the view's if one was given")
    created: datetime
    count: int | None = strawberry.field(description="images frozen; null while unfinished")

    @strawberry.field(description="the frozen images, a page at a time")
    async def images(self, info: Info, skip: int = 0, limit: int = 100) -> SnapshotImages:
        services = info.context.services
        page = await services.snapshots.page(
            info.context.scope, self.name, skip=skip, limit=limit, max_limit=services.settings.query_max_limit
        )
        return SnapshotImages(total=page.total, items=[Image.from_document(document) for document in page.items])

    @classmethod
    def from_snapshot(cls, snapshot: SavedSnapshot) -> Snapshot:
        return cls(
            name=snapshot.name,
            filter=cast(JSON, snapshot.filter_json),
            created=snapshot.created,
            count=snapshot.count,
        )


@strawberry.type
class UpdateResult:
    matched_count: int
    modified_count: int


@strawberry.type
class DeleteResult:
    deleted_count: int


@strawberry.type
class Skipped:
    name: str
    reason: str


@strawberry.type
class UploadImagesResult:
    images: list[Image]
    skipped: list[Skipped] = strawberry.field(description="files not stored, with the reason")
