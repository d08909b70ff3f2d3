"""`/images` routes over every image a query matches: list, bulk update, bulk delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.errors import BadInput
from app.models import document_to_json
from app.rest.deps import EditsDep, ImageQueryDep, LinkerDep, ListingDep, MergePatchDep, ScopeDep
from app.rest.images import MetadataChangesBody
from app.rest.schemas import MERGE_PATCH_BODY, DeleteManyOut, PageOut, UpdateManyOut, error_responses
from app.rest.urls import with_url

router = APIRouter(tags=["images"])


@router.get("/images", response_model=PageOut, responses=error_responses(400, 404, 503), summary="List matching images")
async def list_images(query: ImageQueryDep, listing: ListingDep, scope: ScopeDep, linker: LinkerDep) -> JSONResponse:
    """A page of the images the query parameters match (none: all of yours), as `{"total",
    "skip", "limit", "items", "select", "nextCursor"}`; `total` counts every match. A filter
    outside the operator whitelist, a cursor from another query or a `limit` over
    QUERY_MAX_LIMIT is a 400; an unknown `view`, a 404."""
    page = await listing.find(scope, query)
    return JSONResponse(
        {
            "total": page.counted,
            "skip": query.skip,
            "limit": query.limit,
            # `select` names every field the caller wants: no `url` beside them.
            "items": [
                document_to_json(document) if query.select else with_url(document_to_json(document), linker)
                for document in page.items
            ],
            "select": query.select,
            "nextCursor": page.next_cursor,
        }
    )


@router.patch(
    "/images",
    response_model=UpdateManyOut,
    responses=error_responses(400, 404, 503),
    summary="Merge metadata into every matching image (`$unset` removes keys; merge-patch+json: RFC 7396)",
    openapi_extra=MERGE_PATCH_BODY,
)
async def update_images(
    query: ImageQueryDep, changes: MetadataChangesBody, edits: EditsDep, scope: ScopeDep, merge_patch: MergePatchDep
) -> dict[str, object]:
    """As `PATCH /images/{id}`, on every match: one level with `application/json`, RFC 7396
    with `application/merge-patch+json`."""
    summary = await edits.update_many(scope, query.filter, changes, deep=merge_patch)
    return {
        "acknowledged": True,
        "matchedCount": summary.matched,
        "modifiedCount": summary.modified,
        "upsertedCount": 0,
        "upsertedId": None,
    }


@router.delete(
    "/images",
    response_model=DeleteManyOut,
    responses=error_responses(400, 404, 503),
    summary="Delete every matching image and its file (no query: all images)",
)
async def delete_images(request: Request, query: ImageQueryDep, edits: EditsDep, scope: ScopeDep) -> dict[str, object]:
    """The filter goes in the query string, as on the legacy service; a body is refused, since
    ignoring `{"file": …}` there would delete every image instead of the one meant."""
    if await request.body():
        raise BadInput("DELETE /images takes its filter in the query string, not in a body; nothing was deleted.")
    return {"acknowledged": True, "deletedCount": await edits.delete_many(scope, query.filter)}
