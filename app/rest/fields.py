"""`/fields`: which metadata keys and values the matching images use (the GUI's filters);
`/duplicates`: which images hold identical files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.rest.deps import ImageQueryDep, ImagesDep, ScopeDep
from app.rest.schemas import DuplicateGroupOut, error_responses

router = APIRouter(tags=["fields"])


@router.get("/fields", responses=error_responses(400, 503), summary="Distinct top-level metadata keys")
async def list_fields(query: ImageQueryDep, images: ImagesDep, scope: ScopeDep) -> list[str]:
    return await images.fields(scope, query.filter)


@router.get("/fields/{name}", responses=error_responses(400, 503), summary="Distinct values of one metadata key")
async def list_field_values(name: str, query: ImageQueryDep, images: ImagesDep, scope: ScopeDep) -> list[Any]:
    return await images.field_values(scope, name, query.filter)


@router.get(
    "/duplicates",
    responses=error_responses(400, 503),
    summary="Groups of images holding identical files (equal checksums), a page at a time",
)
async def list_duplicates(
    images: ImagesDep,
    scope: ScopeDep,
    skip: Annotated[int, Query(description="groups to skip")] = 0,
    limit: Annotated[int, Query(description="groups per page (at most 1000)")] = 20,
) -> list[DuplicateGroupOut]:
    """Ordered by checksum; each group with its count and up to 100 image ids. Only images whose
    checksum is known (every image once the start-up backfill is done)."""
    groups = await images.duplicates(scope, skip=skip, limit=limit)
    return [DuplicateGroupOut(checksum=group.checksum, count=group.count, ids=group.ids) for group in groups]
