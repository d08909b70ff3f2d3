"""`/fields`: which metadata keys and values the matching images use (the GUI's filters)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.rest.deps import ImageQueryDep, ImagesDep, ScopeDep
from app.rest.schemas import error_responses

router = APIRouter(tags=["fields"])


@router.get("/fields", responses=error_responses(400, 503), summary="Distinct top-level metadata keys")
async def list_fields(query: ImageQueryDep, images: ImagesDep, scope: ScopeDep) -> list[str]:
    return await images.fields(scope, query.filter)


@router.get("/fields/{name}", responses=error_responses(400, 503), summary="Distinct values of one metadata key")
async def list_field_values(name: str, query: ImageQueryDep, images: ImagesDep, scope: ScopeDep) -> list[Any]:
    return await images.field_values(scope, name, query.filter)
