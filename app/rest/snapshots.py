"""`/snapshots`: datasets frozen under a name; listed, paged, compared and exported as they were."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.domain.datasets.snapshots import MAX_DIFF_IDS, IdList, Snapshot
from app.domain.metadata import NAME_PATTERN
from app.domain.query import ImageQuery
from app.models import document_to_json, format_time
from app.rest.archive import ZIP_RESPONSE, TrainingExportDep, archive_response
from app.rest.deps import LinkerDep, ScopeDep, ServicesDep
from app.rest.schemas import SKIP, ImageOut, documented, error_responses
from app.rest.urls import with_url

router = APIRouter(tags=["snapshots"])

NAME_RULE = "1 to 100 characters, one URL path segment (no '/', not '.' or '..', no control characters)"
SnapshotName = Annotated[
    str,
    Path(
        description=f"the snapshot's name: {NAME_RULE}",
        json_schema_extra=documented(type="string", pattern=NAME_PATTERN),
    ),
]


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description=f"{NAME_RULE}, unique among your snapshots", json_schema_extra={"pattern": NAME_PATTERN}
    )
    filter: dict[str, Any] = Field(default_factory=dict, description="as the `filter` parameter takes it")
    view: str | None = Field(default=None, description="one of your saved views, its filter ANDed with `filter`")


class SnapshotOut(BaseModel):
    name: str
    filter: dict[str, Any]
    created: str
    count: int | None = Field(description="images frozen; null while unfinished (a creation cut short)")
    version: str | None = Field(
        description="SHA-256 of the canonical JSON of the frozen images' {id, file, checksum, time, data} "
        "(README, Snapshots): equal for equal content; null while unfinished"
    )
    keptBytes: int = Field(  # noqa: N815 (the API's spelling)
        description="bytes of replaced or deleted images' files kept for this snapshot alone: what deleting it frees"
    )


class SnapshotPageOut(BaseModel):
    total: int
    skip: int
    limit: int
    items: list[ImageOut] = Field(description="the images as they were, in id order")


class IdListOut(BaseModel):
    count: int
    ids: list[str] = Field(description="at most `limit` of them")


class DiffOut(BaseModel):
    added: IdListOut = Field(description="in the other snapshot only")
    removed: IdListOut = Field(description="in this snapshot only")
    changed: IdListOut = Field(description="in both, with another file, checksum, time or data")


def _out(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "name": snapshot.name,
        "filter": snapshot.filter_json,
        "created": format_time(snapshot.created),
        "count": snapshot.count,
        "version": snapshot.version,
        "keptBytes": snapshot.kept_bytes,
    }


def _ids(found: IdList) -> dict[str, Any]:
    return {"count": found.count, "ids": found.ids}


@router.post(
    "/snapshots",
    status_code=201,
    response_model=SnapshotOut,
    responses=error_responses(400, 404, 409, 503),
    summary="Freeze the matching images under a name: ids, files, checksums, times and data as they are now",
)
async def create_snapshot(body: SnapshotIn, services: ServicesDep, scope: ScopeDep) -> dict[str, Any]:
    """`{"name", "filter", "view"}`: the matches of `filter` and of the view's filter (both
    optional, ANDed) are frozen, each image's id, file, checksum, time and data as they are now.
    Answers 201 with `{"name", "filter", "created", "count"}`; a name you have already is a 409
    (snapshots never change), a `view` you do not have a 404, a bad filter a 400."""
    query = ImageQuery(filter=body.filter)
    if body.view is not None:
        query = await services.views.narrow(scope, query, body.view)
    return _out(await services.snapshots.create(scope, body.name, query.filter))


@router.get("/snapshots", response_model=list[SnapshotOut], responses=error_responses(503), summary="Your snapshots")
async def list_snapshots(services: ServicesDep, scope: ScopeDep) -> list[dict[str, Any]]:
    """Every snapshot of yours, oldest first, with its filter, creation time, `count`, `version`
    and `keptBytes` (the bytes of replaced or deleted images kept for it alone); a `count` of
    null marks one whose creation was cut short (it can only be deleted)."""
    return [_out(snapshot) for snapshot in await services.snapshots.list(scope)]


@router.get(
    "/snapshots/{name}", response_model=SnapshotOut, responses=error_responses(400, 404, 503), summary="A snapshot"
)
async def get_snapshot(name: SnapshotName, services: ServicesDep, scope: ScopeDep) -> dict[str, Any]:
    """Its filter, creation time, `count` (null while unfinished), `version` and `keptBytes`. A
    snapshot of that name you do not have (another user's included) is a 404."""
    return _out(await services.snapshots.describe(scope, name))


@router.get(
    "/snapshots/{name}/images",
    response_model=SnapshotPageOut,
    responses=error_responses(400, 404, 409, 503),
    summary="The frozen images of a snapshot, a page at a time",
)
async def list_snapshot_images(
    name: SnapshotName,
    services: ServicesDep,
    scope: ScopeDep,
    linker: LinkerDep,
    skip: Annotated[
        int,
        Query(description="images to skip", json_schema_extra=SKIP),
    ] = 0,
    limit: Annotated[
        int,
        Query(
            description="page size (at most QUERY_MAX_LIMIT: 10,000 unless configured)",
            json_schema_extra=documented(type="integer", minimum=1, maximum=10_000),
        ),
    ] = 100,
) -> JSONResponse:
    """`{"total", "skip", "limit", "items"}`: the images as they were frozen, in id order, as a
    listing shows images. An unfinished snapshot is a 409; one you do not have, a 404."""
    page = await services.snapshots.page(
        scope, name, skip=skip, limit=limit, max_limit=services.settings.query_max_limit
    )
    # Each with the content address of its frozen bytes: it serves them while the image holds them.
    items = [with_url(document_to_json(document), linker) for document in page.items]
    return JSONResponse({"total": page.total, "skip": skip, "limit": limit, "items": items})


@router.get(
    "/snapshots/{name}/diff/{other}",
    response_model=DiffOut,
    responses=error_responses(400, 404, 409, 503),
    summary="What changed from one snapshot to another: ids added, removed and changed",
)
async def diff_snapshots(
    name: SnapshotName,
    other: Annotated[
        str, Path(description="the later snapshot", json_schema_extra=documented(type="string", pattern=NAME_PATTERN))
    ],
    services: ServicesDep,
    scope: ScopeDep,
    limit: Annotated[
        int,
        Query(
            description=f"ids listed per kind (at most {MAX_DIFF_IDS}); counts are whole",
            json_schema_extra=documented(type="integer", minimum=0, maximum=MAX_DIFF_IDS),
        ),
    ] = 1000,
) -> dict[str, Any]:
    """`{"added", "removed", "changed"}` from `name` to `other`, each `{"count", "ids"}`: in
    `other` only, in `name` only, and in both with another file, checksum, time or data. The
    counts are whole; at most `limit` ids are listed of each. An unfinished snapshot is a 409."""
    diff = await services.snapshots.diff(scope, name, other, limit=limit)
    return {"added": _ids(diff.added), "removed": _ids(diff.removed), "changed": _ids(diff.changed)}


@router.get(
    "/snapshots/{name}/export",
    response_class=StreamingResponse,
    responses={**ZIP_RESPONSE, **error_responses(400, 404, 409, 503)},
    summary="The snapshot as a .zip, as /export makes, with every file's frozen bytes",
)
async def export_snapshot(
    name: SnapshotName, services: ServicesDep, scope: ScopeDep, training: TrainingExportDep
) -> StreamingResponse:
    """The frozen metadata and every file with its frozen bytes, also those of images replaced or
    deleted since (kept for the snapshot). Only bytes lost before this service kept them are
    missing: such images are in mongodb_data.json with `fileChanged: true` and without their file
    (in a training format's report.json under `fileChanged`)."""
    return await archive_response(services, await services.snapshots.selection(scope, name), training)


@router.delete("/snapshots/{name}", responses=error_responses(400, 404, 503), summary="Delete a snapshot")
async def delete_snapshot(name: SnapshotName, services: ServicesDep, scope: ScopeDep) -> dict[str, str]:
    """Answers `{"name": name}`; the images themselves stay. Unfinished snapshots are deleted
    like the others; one you do not have is a 404."""
    await services.snapshots.delete(scope, name)
    return {"name": name}
