"""Dependencies, declared once as `Annotated` aliases; route functions just use the names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import HTTPConnection

from app.domain.images.analytics import Analytics
from app.domain.images.edits import Edits
from app.domain.images.listing import Listing
from app.domain.images.reading import ImageReader
from app.domain.images.uploads import Uploads
from app.domain.links import SIGNATURE, Linker, SignedPath
from app.domain.query import (
    ARCHIVE_PARAMETERS,
    DEFAULT_LIMIT,
    FIELD_PATH_PATTERN,
    FLAG_PATTERN,
    IDS_PATTERN,
    ORDER_PATTERN,
    RESERVED_PARAMETERS,
    SELECT_PATTERN,
    SORT_PATTERN,
    ImageQuery,
    parse_query_params,
)
from app.domain.scope import Scope
from app.rest.etags import IF_MATCH_PATTERN, if_match_revisions
from app.rest.schemas import MERGE_PATCH, SKIP, documented
from app.services import Services

# `from` and `to`: ISO-8601, a date or a date-time (without a zone: UTC).
ISO_TIME = documented(anyOf=[{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}])


def services_of(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


# The dependencies are `async def` even where they await nothing: FastAPI runs a plain `def`
# one in a worker thread, a hop that costs more than the function.
async def get_services(connection: HTTPConnection) -> Services:
    return services_of(connection)


async def get_images(request: Request) -> ImageReader:
    return services_of(request).images


async def get_uploads(request: Request) -> Uploads:
    return services_of(request).uploads


async def get_edits(request: Request) -> Edits:
    return services_of(request).edits


async def get_listing(request: Request) -> Listing:
    return services_of(request).listing


async def get_analytics(request: Request) -> Analytics:
    return services_of(request).analytics


async def get_scope(request: Request) -> Scope:
    """The caller's scope from their bearer token (everyone's images when OIDC is off), or, for a
    read without one, from a signed link's `signature` (app/domain/links.py)."""
    signature = request.query_params.get(SIGNATURE)
    link = SignedPath(request.scope["path"], signature) if signature and request.method in ("GET", "HEAD") else None
    return await services_of(request).scope_for(request.headers.get("authorization"), link=link)


async def get_linker(request: Request, scope: Annotated[Scope, Depends(get_scope)]) -> Linker:
    return await services_of(request).linker(scope)


# The filter parameters, declared once for the OpenAPI document (the query compiler reads the
# raw parameters, because any other `key=value` is a metadata match and arrays come in three
# spellings): GET /images and its kin, and GET /events.
FromQuery = Annotated[str | None, Query(alias="from", description="time >= this ISO date", json_schema_extra=ISO_TIME)]
ToQuery = Annotated[str | None, Query(description="time <= this ISO date", json_schema_extra=ISO_TIME)]
FileQuery = Annotated[
    str | None,
    Query(
        description="exact file path; with regex, a case-insensitive regular expression (at most 512 characters)",
        json_schema_extra=documented(type="string"),
    ),
]
RegexQuery = Annotated[
    str | None,
    Query(
        description="true: file and key=value match as case-insensitive regex",
        json_schema_extra=documented(type="string", pattern=FLAG_PATTERN),
    ),
]
IdsQuery = Annotated[
    list[str] | None,
    Query(
        description="image ids, repeated or comma-separated (also ids[]); at most 10,000",
        json_schema_extra=documented(type="array", items={"type": "string", "pattern": IDS_PATTERN}),
    ),
]
FilterQuery = Annotated[
    str | None,
    Query(
        description='MongoDB-style query JSON under the operator whitelist, e.g. {"data.label":{"$in":["cat"]}}',
        json_schema_extra=documented(type="string", contentMediaType="application/json"),
    ),
]


async def get_image_query(
    request: Request,
    scope: Annotated[Scope, Depends(get_scope)],
    # Declared for the OpenAPI document only: the query compiler reads the raw parameters,
    # because any other `key=value` is a metadata match and arrays come in three spellings.
    skip: Annotated[
        str | None,
        Query(description="matches to skip", json_schema_extra=SKIP),
    ] = None,
    limit: Annotated[
        str | None,
        Query(
            description=f"page size (default {DEFAULT_LIMIT}, at most QUERY_MAX_LIMIT: 10,000 unless configured; "
            "facets at most 10,000)",
            json_schema_extra=documented(type="integer", minimum=1, maximum=10_000),
        ),
    ] = None,
    sort: Annotated[
        str | None,
        Query(
            description="field(s) to sort by, separated by commas or spaces (at most 16): time, file, data.x; "
            "'-x' descends",
            json_schema_extra=documented(type="string", pattern=SORT_PATTERN),
        ),
    ] = None,
    order: Annotated[
        str | None,
        Query(description="1, -1, asc or desc", json_schema_extra=documented(type="string", pattern=ORDER_PATTERN)),
    ] = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    file: FileQuery = None,
    regex: RegexQuery = None,
    ids: IdsQuery = None,
    filter: FilterQuery = None,
    select: Annotated[
        str | None,
        Query(
            description="fields to return, separated by commas or spaces; or '-field' to exclude (not both, but "
            "_id either way)",
            json_schema_extra=documented(type="string", pattern=SELECT_PATTERN),
        ),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            description="the `nextCursor` of the page before: the page starts after its last image, however many "
            "were added or deleted since (same filter and sort; not with skip). Empty: the first page, in _id order "
            "unless sorted",
            json_schema_extra=documented(type="string"),
        ),
    ] = None,
    view: Annotated[
        str | None,
        Query(
            description="the name of one of your saved views (/views): its filter is added, and its sort used "
            "unless sort is given",
            json_schema_extra=documented(type="string"),
        ),
    ] = None,
) -> ImageQuery:
    """Any other parameter `key=value` matches images whose `data.key` equals `value`."""
    services = services_of(request)
    route = request.scope.get("route")
    # `/export` reads the training formats' options (format=coco): not metadata matches there.
    reserved = (
        RESERVED_PARAMETERS | ARCHIVE_PARAMETERS if getattr(route, "path", None) == "/export" else RESERVED_PARAMETERS
    )
    query = parse_query_params(
        request.query_params.multi_items(), max_limit=services.settings.query_max_limit, reserved=reserved
    )
    return query if view is None else await services.views.narrow(scope, query, view)


async def get_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='change only if the image is still at this revision: its ETag, e.g. "3" (or *)',
            json_schema_extra=documented(type="string", pattern=IF_MATCH_PATTERN),
        ),
    ] = None,
) -> frozenset[int] | None:
    return if_match_revisions(if_match)


class ImageIdSegment(Convertor[str]):
    """The `{image_id}` of `/images/{image_id}`: any one segment but `check`, the path of
    `POST /images/check`. Else a GET, PUT, PATCH or DELETE of `/images/check` would be taken by
    the image routes (a 400 for the id) instead of a 405, and its `Allow` would list their
    methods (app/rest/methods.py reads the same patterns). Any other segment still reaches the
    route, so a malformed id keeps its 400 and its sentence."""

    regex = "(?!check$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Before the routes that name it compile their paths (app/rest/images.py imports this module).
register_url_convertor("image_id", ImageIdSegment())
IMAGE_PATH = "/images/{image_id:image_id}"


# The id's form is stated for the OpenAPI document (generated clients, fuzzers) only: the domain
# checks it, so a bad id gets the same sentence from REST and GraphQL.
ImageId = Annotated[
    str,
    Path(description="the image's id: 24 hexadecimal characters", json_schema_extra={"pattern": "^[0-9a-fA-F]{24}$"}),
]

ServicesDep = Annotated[Services, Depends(get_services)]
ImageQueryDep = Annotated[ImageQuery, Depends(get_image_query)]


def merge_patch_requested(request: Request) -> bool:
    """Whether a PATCH body is a JSON Merge Patch (RFC 7396), by its media type; else the
    legacy's one-level merge with `$unset`."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == MERGE_PATCH


ImagesDep = Annotated[ImageReader, Depends(get_images)]
MergePatchDep = Annotated[bool, Depends(merge_patch_requested)]
UploadsDep = Annotated[Uploads, Depends(get_uploads)]
EditsDep = Annotated[Edits, Depends(get_edits)]
ListingDep = Annotated[Listing, Depends(get_listing)]
AnalyticsDep = Annotated[Analytics, Depends(get_analytics)]
ScopeDep = Annotated[Scope, Depends(get_scope)]
LinkerDep = Annotated[Linker, Depends(get_linker)]
# The revisions `If-Match` accepts; None when any will do.
IfMatchDep = Annotated[frozenset[int] | None, Depends(get_if_match)]

# The keys the box convention reads labels and boxes from (app/domain/annotations.py).
LabelFieldQuery = Annotated[
    str | None,
    Query(
        alias="labelField",
        description="the metadata key of the labels; default `label`",
        json_schema_extra=documented(type="string", pattern=FIELD_PATH_PATTERN),
    ),
]
BoxesFieldQuery = Annotated[
    str | None,
    Query(
        alias="boxesField",
        description="the metadata key of the boxes (`ann.objects` reaches into objects); default `boxes`",
        json_schema_extra=documented(type="string", pattern=FIELD_PATH_PATTERN),
    ),
]
