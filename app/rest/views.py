"""`/views`: saved views, a named filter and sort per owner, then usable as `?view=<name>`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from app.domain.datasets.views import View
from app.domain.metadata import NAME_PATTERN
from app.domain.query import SORT_PATTERN, parse_sort
from app.models import format_time
from app.rest.deps import ScopeDep, ServicesDep
from app.rest.schemas import documented, error_responses

router = APIRouter(tags=["views"])

ViewName = Annotated[
    str,
    Path(
        description="the view's name: 1 to 100 characters, one URL path segment (no '/', not '.' or '..', no control "
        "characters)",
        json_schema_extra=documented(type="string", pattern=NAME_PATTERN),
    ),
]


class ViewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] = Field(
        default_factory=dict,
        description='a MongoDB-style query, as the `filter` parameter takes it: {"data.label": "cat"}',
    )
    sort: str = Field(
        default="",
        description="as the `sort` parameter: time, -file, data.count,…",
        json_schema_extra={"pattern": SORT_PATTERN},
    )


class ViewOut(BaseModel):
    name: str
    filter: dict[str, Any] = Field(description='dates as {"$date": …}, ids as {"$oid": …}')
    sort: str
    created: str
    updated: str
    problem: str | None = Field(
        default=None,
        description="why the view can no longer be used (its filter fails a check added since it was saved)",
    )


def _out(view: View) -> dict[str, Any]:
    return {
        "name": view.name,
        "filter": view.filter_json,
        "sort": ",".join(path if direction == 1 else f"-{path}" for path, direction in view.sort),
        "created": format_time(view.created),
        "updated": format_time(view.updated),
        "problem": view.problem,
    }


@router.get("/views", response_model=list[ViewOut], responses=error_responses(503), summary="Your saved views")
async def list_views(services: ServicesDep, scope: ScopeDep) -> list[dict[str, Any]]:
    """Every view of yours, by name, each with its filter, sort and dates. A view whose filter
    fails a check added since it was saved is listed too, with `problem` saying why."""
    return [_out(view) for view in await services.views.list(scope)]


@router.get("/views/{name}", response_model=ViewOut, responses=error_responses(400, 404, 503), summary="A saved view")
async def get_view(name: ViewName, services: ServicesDep, scope: ScopeDep) -> dict[str, Any]:
    """The view of that name: its filter (dates as `{"$date": …}`), sort and dates. A view of
    that name you do not have (another user's included) is a 404."""
    return _out(await services.views.get(scope, name))


@router.put(
    "/views/{name}",
    response_model=ViewOut,
    responses=error_responses(400, 409, 503),
    summary="Save a view (create it, or replace the one of that name)",
)
async def save_view(name: ViewName, body: ViewIn, services: ServicesDep, scope: ScopeDep) -> dict[str, Any]:
    """`{"filter", "sort"}`, both optional, as the `filter` and `sort` parameters take them; the
    view is then usable as `?view=<name>`. A filter or sort those parameters would refuse, or a
    name that is not one path segment, is a 400; a 1,001st view of yours, a 409."""
    sort = parse_sort(body.sort, None)
    return _out(await services.views.save(scope, name, body.filter, sort))


@router.delete("/views/{name}", responses=error_responses(400, 404, 503), summary="Delete a saved view")
async def delete_view(name: ViewName, services: ServicesDep, scope: ScopeDep) -> dict[str, str]:
    """Answers `{"name": name}`; the images it selected stay. A view you do not have is a 404."""
    await services.views.delete(scope, name)
    return {"name": name}
