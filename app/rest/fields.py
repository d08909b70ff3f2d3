"""`/fields`: which metadata keys and values the matching images use (the GUI's filters);
`/duplicates`: which images hold identical files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.domain.images.analytics import MAX_GROUPS, SYSTEM_FACETS
from app.domain.query import PATH_PATTERN
from app.rest.deps import AnalyticsDep, ImageQueryDep, ScopeDep
from app.rest.schemas import SKIP, DuplicateGroupOut, FacetOut, documented, error_responses

router = APIRouter(tags=["fields"])


@router.get("/fields", responses=error_responses(400, 404, 503), summary="Distinct top-level metadata keys")
async def list_fields(query: ImageQueryDep, analytics: AnalyticsDep, scope: ScopeDep) -> list[str]:
    """The distinct top-level keys of the matching images' `data`, sorted. The images are
    selected by the query parameters of `GET /images` (paging aside); a bad filter is a 400."""
    return await analytics.fields(scope, query.filter)


@router.get(
    "/fields/{name}",
    response_model=list[Any] | list[FacetOut],
    responses=error_responses(400, 404, 503),
    summary="Distinct values of one metadata key; with counts=true, how many images take each",
)
async def list_field_values(
    name: Annotated[
        str,
        Path(
            description="a metadata key, dotted for nested ones (camera.iso)",
            json_schema_extra=documented(type="string", pattern=PATH_PATTERN),
        ),
    ],
    query: ImageQueryDep,
    analytics: AnalyticsDep,
    scope: ScopeDep,
    counts: Annotated[
        bool,
        Query(
            description="true: [{value, count}] for the `limit` (default 100) most frequent values, most frequent "
            "first; an array counts once for each distinct element"
        ),
    ] = False,
) -> list[Any]:
    """The distinct values of `data.<name>` over the matches, an array's elements one by one.
    With `counts=true`, `[{"value", "count"}]` instead: how many matching images take each
    value, for the `limit` (default 100) most frequent, most frequent first."""
    if counts:
        return [
            {"value": facet.value, "count": facet.count}
            for facet in await analytics.facets(scope, name, query.filter, limit=query.limit)
        ]
    return await analytics.field_values(scope, name, query.filter)


@router.get(
    "/facets/{field}",
    response_model=list[FacetOut],
    responses=error_responses(400, 404, 503),
    summary="How many matching images take each value of a system field: contentType or owner",
)
async def list_system_facets(
    field: Annotated[
        str,
        Path(
            description="`contentType`, or `owner` (with per-user scope: only yours)",
            json_schema_extra=documented(type="string", enum=list(SYSTEM_FACETS)),
        ),
    ],
    query: ImageQueryDep,
    analytics: AnalyticsDep,
    scope: ScopeDep,
) -> list[dict[str, Any]]:
    """The `limit` (default 100) most frequent values, most frequent first."""
    found = await analytics.system_facets(scope, field, query.filter, limit=query.limit)
    return [{"value": facet.value, "count": facet.count} for facet in found]


@router.get(
    "/duplicates",
    responses=error_responses(400, 503),
    summary="Groups of images holding identical files (equal checksums), a page at a time",
)
async def list_duplicates(
    analytics: AnalyticsDep,
    scope: ScopeDep,
    skip: Annotated[
        int,
        Query(description="groups to skip", json_schema_extra=SKIP),
    ] = 0,
    limit: Annotated[
        int,
        Query(
            description=f"groups per page (at most {MAX_GROUPS})",
            json_schema_extra=documented(type="integer", minimum=1, maximum=MAX_GROUPS),
        ),
    ] = 20,
) -> list[DuplicateGroupOut]:
    """Ordered by checksum; each group with its count and up to 100 image ids. Only images whose
    checksum is known (every image once the start-up backfill is done)."""
    groups = await analytics.duplicates(scope, skip=skip, limit=limit)
    return [DuplicateGroupOut(checksum=group.checksum, count=group.count, ids=group.ids) for group in groups]
