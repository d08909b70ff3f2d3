"""Output types. Built from raw documents, so a page of images costs one database query."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from app.domain.datasets.snapshots import Snapshot as SavedSnapshot
from app.domain.datasets.views import View as SavedView
from app.domain.images.content import content_path
from app.domain.images.reading import MAX_PRESIGNED_SECONDS
from app.domain.media.resize import MAX_SIDE, parse_resize
from app.domain.writes.rewrite import revision_of
from app.graphql.context import Info

ThumbnailWidth = Annotated[
    int, strawberry.argument(description=f"At most this many pixels wide, 1 to {MAX_SIDE}; never enlarged")
]
ExpiresIn = Annotated[
    int | None,
    strawberry.argument(
        description=f"Seconds the presigned URL works, 1 to {MAX_PRESIGNED_SECONDS}; default PRESIGNED_URL_SECONDS"
    ),
]


@strawberry.type(description="Where a photo was taken, by its EXIF.")
class GpsPosition:
    latitude: float = strawberry.field(description="Decimal degrees, north positive")
    longitude: float = strawberry.field(description="Decimal degrees, east positive")
    altitude: float | None = strawberry.field(default=None, description="Metres above sea level")


@strawberry.type(description="What a photo's EXIF says; read at upload, never part of `data`.")
class Exif:
    taken_at: datetime | None = strawberry.field(default=None, description="Capture time (UTC)")
    make: str | None = strawberry.field(default=None, description="The camera's maker, as the photo names it")
    model: str | None = strawberry.field(default=None, description="The camera's model, as the photo names it")
    orientation: int | None = strawberry.field(default=None, description="EXIF orientation, 1 (upright) to 8")
    gps: GpsPosition | None = strawberry.field(default=None, description="Where it was taken, when the photo says")

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
    id: strawberry.ID = strawberry.field(description="The image's id: 24 hexadecimal characters")
    file: str = strawberry.field(
        description="Storage path, folders allowed; with per-user scope it starts with the owner's folder"
    )
    time: datetime | None = strawberry.field(description="Capture or upload time (UTC)")
    data: JSON = strawberry.field(description="Free-form metadata")
    user_id: str | None = strawberry.field(description="Owner, with per-user scope")
    size: int | None = strawberry.field(description="Bytes, when known")
    content_type: str | None = strawberry.field(description="Detected from the content, when known")
    width: int | None = strawberry.field(
        default=None, description="Pixels wide as the file stores them (EXIF `orientation` not applied), when known"
    )
    height: int | None = strawberry.field(
        default=None, description="Pixels high as the file stores them (EXIF `orientation` not applied), when known"
    )
    checksum: str | None = strawberry.field(
        description="SHA-256 of the file (hex), when known; images with equal checksums hold identical files"
    )
    exif: Exif | None = strawberry.field(description="What the photo's EXIF says, when it has any")
    revision: int = strawberry.field(
        description="Raised by every change; give it back to a mutation's `revision` to change only this state"
    )

    @strawberry.field(
        description="Where a browser loads the file: its content address, the REST route"
        " /images/{id}/content/{sha256}-{size}, cached for good (while the checksum is unknown,"
        " /images/{id}/file); with OIDC signed for the caller, so `<img src>` needs no header"
    )
    async def url(self, info: Info) -> str:
        return await info.context.link(self._content_path())

    @strawberry.field(
        description=f"Where a browser loads a JPEG copy at most `width` pixels wide (1 to {MAX_SIDE}, never"
        " enlarged), made once and then kept: `url` with `?width=…`"
    )
    async def thumbnail_url(self, info: Info, width: ThumbnailWidth) -> str:
        parse_resize(width=width, height=None, fit=None, format=None, quality=None)  # BadInput if out of range
        return await info.context.link(self._content_path(), {"width": str(width)})

    @strawberry.field(
        description="A URL that downloads the file without credentials: on S3 storage presigned, valid"
        " `expiresIn` seconds (default PRESIGNED_URL_SECONDS, at most 604800); on local storage `url`"
    )
    async def download_url(self, info: Info, expires_in: ExpiresIn = None) -> str:
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
    count: int = strawberry.field(description="How many of your images hold it")
    ids: list[strawberry.ID] = strawberry.field(description="Their ids (at most 100)")


@strawberry.type(description="Whether one of your images is stored at a path, and which.")
class StoredFile:
    file: str = strawberry.field(description="The path as it was given")
    stored: bool = strawberry.field(description="Whether one of your images is stored at this path")
    id: strawberry.ID | None = strawberry.field(description="That image's id, else null")
    checksum: str | None = strawberry.field(description="The SHA-256 of its file (hex), once known, else null")
    size: int | None = strawberry.field(description="Its file's size in bytes, once known, else null")
    revision: int | None = strawberry.field(description="Its revision, else null")
    same: bool | None = strawberry.field(
        description="Whether its file has the checksum given; null without a checksum on either side"
    )


@strawberry.type(description="A value a field takes, and how many of the matching images take it.")
class Facet:
    value: JSON | None = strawberry.field(description="The value (each element of an array counts on its own)")
    count: int = strawberry.field(description="How many of the matching images take it")


@strawberry.type(description="One page of matching images.")
class ImagePage:
    total: int = strawberry.field(description="Every match, not just this page")
    skip: int = strawberry.field(description="Matches skipped before this page, as asked")
    limit: int = strawberry.field(description="The page size asked for; the last page may hold fewer")
    items: list[Image] = strawberry.field(description="The images of this page")


@strawberry.type(description="One image of a connection, and the cursor to give as `after` to continue past it.")
class ImageEdge:
    node: Image = strawberry.field(description="The image")
    cursor: str = strawberry.field(description="Give it as `after` for the page that follows this image")


@strawberry.type(description="Where a connection page stands (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more matches follow this page")
    has_previous_page: bool = strawberry.field(description="Whether the page was asked for `after` a cursor")
    start_cursor: str | None = strawberry.field(description="The first edge's cursor; null on an empty page")
    end_cursor: str | None = strawberry.field(description="Give it as `after` for the next page")


@strawberry.type(description="Matching images a page at a time, by cursor (Relay connection).")
class ImageConnection:
    edges: list[ImageEdge] = strawberry.field(description="The images of this page, each with its cursor")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursors to continue from")
    query_filter: strawberry.Private[dict[str, Any]]

    @strawberry.field(description="Every match, not just this page (counted only when asked for)")
    async def total_count(self, info: Info) -> int:
        return await info.context.services.listing.count(info.context.scope, self.query_filter)


@strawberry.type(description="One key of a sort.")
class SortKey:
    field: str = strawberry.field(description="The field sorted by: time, file, _id, or a data path such as data.count")
    direction: int = strawberry.field(description="The direction: 1 ascending, -1 descending")


@strawberry.type(description="A saved view: a named filter and sort of yours, usable as `view:` wherever a filter is.")
class View:
    name: str = strawberry.field(description="The view's name, unique among your views")
    filter: JSON = strawberry.field(description='MongoDB-style, dates as {"$date": …}, ids as {"$oid": …}')
    sort: list[SortKey] = strawberry.field(
        description="Its sort keys, most significant first; empty when the view does not sort"
    )
    created: datetime = strawberry.field(description="When it was first saved (UTC)")
    updated: datetime = strawberry.field(description="When it was last saved (UTC)")
    problem: str | None = strawberry.field(
        description="Why the view can no longer be used (its filter fails a check added since it was saved)"
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
    count: int = strawberry.field(description="How many there are in all, however many are listed")
    ids: list[strawberry.ID] = strawberry.field(description="At most the `limit` asked for")


@strawberry.type(description="From one snapshot to another.")
class SnapshotDiff:
    added: IdList = strawberry.field(description="In the other snapshot only")
    removed: IdList = strawberry.field(description="In this snapshot only")
    changed: IdList = strawberry.field(description="In both, with another file, checksum, time or data")


@strawberry.type(description="A page of a snapshot's frozen images, in id order.")
class SnapshotImages:
    total: int = strawberry.field(description="Every image the snapshot holds, not just this page")
    items: list[Image] = strawberry.field(description="The images as they were frozen")


@strawberry.type(description="Images frozen under a name: ids, files, checksums, times and data as they were.")
class Snapshot:
    name: str = strawberry.field(description="The snapshot's name, unique among your snapshots")
    filter: JSON = strawberry.field(description="What was frozen: the filter, with the view's if one was given")
    created: datetime = strawberry.field(description="When it was created (UTC)")
    count: int | None = strawberry.field(description="Images frozen; null while unfinished")
    version: str | None = strawberry.field(
        description="SHA-256 of the canonical JSON of the frozen images' {id, file, checksum, time, data}, in id "
        "order (README, Snapshots): equal for equal content, so a training run can record what it saw; null "
        "while unfinished"
    )
    kept_bytes: float = strawberry.field(
        description="Bytes of replaced or deleted images' files kept for this snapshot alone: what deleting it "
        "frees (a Float: GraphQL's Int stops at 2^31)"
    )

    @strawberry.field(description="The frozen images, a page at a time")
    async def images(
        self,
        info: Info,
        skip: Annotated[int, strawberry.argument(description="Images to skip, in id order")] = 0,
        limit: Annotated[
            int, strawberry.argument(description="Page size, at most QUERY_MAX_LIMIT (10,000 unless configured)")
        ] = 100,
    ) -> SnapshotImages:
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
            version=snapshot.version,
            kept_bytes=snapshot.kept_bytes,
        )


@strawberry.type(description="What a change of every matching image did.")
class UpdateResult:
    matched_count: int = strawberry.field(description="Images the filter matched")
    modified_count: int = strawberry.field(description="Images whose data changed (the others held it already)")


@strawberry.type(description="What a deletion of every matching image did.")
class DeleteResult:
    deleted_count: int = strawberry.field(description="Images deleted, each with its file")


@strawberry.type(description="A file of an upload that was not stored.")
class Skipped:
    name: str = strawberry.field(description="The file's name, as uploaded")
    reason: str = strawberry.field(description="Why it was not stored, as the error for that file alone would say")


@strawberry.type(description="What an upload of several files stored, and what it did not.")
class UploadImagesResult:
    images: list[Image] = strawberry.field(description="The images stored, in the order of the files")
    skipped: list[Skipped] = strawberry.field(description="Files not stored, with the reason")
