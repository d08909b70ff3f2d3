"""`/images/{id}/image` and `/file`: an image's bytes, with the HTTP a browser or CDN expects.

A strong `ETag` from the file's SHA-256 (when recorded) and `Last-Modified` from the stored
file; `Cache-Control: private, no-cache`, so a browser keeps the file but asks each time
whether it changed, and `If-None-Match` / `If-Modified-Since` answer 304 without reading it.
`Accept-Ranges: bytes`: a single `Range` is answered 206 with just those bytes, read as a range
from the storage; one that lies past the end is a 416; several ranges, or one that cannot be
parsed, get the whole file (as RFC 9110 allows). `HEAD` answers the same headers without
reading the file. `?redirect=true` answers, on S3, a 307 to a presigned URL of the file instead.
`?width=` / `?height=` (with `fit`, `format`, `quality`) send a resized copy instead, made once
and then kept (app/domain/media/thumbnails.py), with all of the above. Scope and authentication
apply as to every other route, before any of it.

`/images/{id}/content/{sha256}-{size}` (the `url` documents give) serves the same, at an address
that names the bytes (app/domain/images/content.py): `Cache-Control: private, max-age=31536000,
immutable`, so a browser never asks again; once the image is replaced it answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from werkzeug.http import http_date, parse_date, parse_etags, parse_range_header, quote_etag, unquote_etag

from app.domain.images.content import CONTENT_KEY_PATTERN, parse_content_key
from app.domain.images.reading import ImageFile, ImageReader
from app.domain.media.resize import DEFAULT_QUALITY, MAX_SIDE, Fit, Format, Resize, parse_resize
from app.rest.deps import ImageId, ImagesDep, ScopeDep, ServicesDep
from app.rest.schemas import documented, error_responses

router = APIRouter(tags=["images"])

CACHE_CONTROL = "private, no-cache"
# A content address never names other bytes (app/domain/images/content.py).
IMMUTABLE = "private, max-age=31536000, immutable"
UNSATISFIABLE: Literal["unsatisfiable"] = "unsatisfiable"
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/*": {}}, "description": "the file"},
    206: {"description": "the bytes of the one range asked for (`Range: bytes=0-1023`)"},
    304: {"description": "unchanged since the `If-None-Match` / `If-Modified-Since` given"},
    307: {"description": "with `redirect=true` on S3 storage: the presigned URL of the file"},
    416: {"description": "the range lies past the end of the file"},
    **error_responses(400, 404, 409, 422, 503),
}

IfNoneMatch = Annotated[str | None, Header(description="the ETag(s) of the copy you hold")]
IfModifiedSince = Annotated[str | None, Header(description="the Last-Modified of the copy you hold")]
RangeHeader = Annotated[str | None, Header(alias="Range", description="one byte range: bytes=0-1023, bytes=-500")]
IfRange = Annotated[str | None, Header(description="only send the range if the file is still this one")]
Side = Annotated[
    int | None,
    Query(
        description=f"a resized copy at most this many pixels wide (or high), 1 to {MAX_SIDE}; never enlarged",
        json_schema_extra=documented(type="integer", minimum=1, maximum=MAX_SIDE),
    ),
]
FitParameter = Annotated[
    str | None,
    Query(
        alias="fit",
        description="with width and height: `inside` (default) fits the image in the box, `cover` fills it, cropped",
        json_schema_extra=documented(type="string", enum=list(get_args(Fit))),
    ),
]
FormatParameter = Annotated[
    str | None,
    Query(
        alias="format",
        description="of a resized copy: `jpeg` (default), `webp`, `png`",
        json_schema_extra=documented(type="string", enum=list(get_args(Format))),
    ),
]
Quality = Annotated[
    int | None,
    Query(
        description=f"of a resized JPEG or WebP, 1 to 100 (default {DEFAULT_QUALITY})",
        json_schema_extra=documented(type="integer", minimum=1, maximum=100),
    ),
]


@dataclass(frozen=True)
class Conditions:
    """What the request's headers ask: validators of the copy it holds, and a range."""

    if_none_match: str | None
    if_modified_since: str | None
    range: str | None
    if_range: str | None


def get_conditions(
    if_none_match: IfNoneMatch = None,
    if_modified_since: IfModifiedSince = None,
    range_: RangeHeader = None,
    if_range: IfRange = None,
) -> Conditions:
    return Conditions(if_none_match, if_modified_since, range_, if_range)


def get_resize(
    width: Side = None,
    height: Side = None,
    fit: FitParameter = None,
    format_: FormatParameter = None,
    quality: Quality = None,
) -> Resize | None:
    """The resized copy asked for; None for the file itself."""
    return parse_resize(width=width, height=height, fit=fit, format=format_, quality=quality)


ConditionsDep = Annotated[Conditions, Depends(get_conditions)]
ResizeDep = Annotated[Resize | None, Depends(get_resize)]


async def download(
    request: Request,
    image_id: ImageId,
    services: ServicesDep,
    scope: ScopeDep,
    conditions: ConditionsDep,
    resize: ResizeDep,
    redirect: Annotated[
        bool,
        Query(
            description="true: on S3 storage, a 307 to a presigned URL of the file (valid PRESIGNED_URL_SECONDS) "
            "instead of the file; on local storage the file as usual"
        ),
    ] = False,
) -> Response:
    """The file, streamed with its content type and name; `HEAD` answers the headers alone.
    `ETag` (the file's SHA-256, once known) and `Last-Modified` let `If-None-Match` and
    `If-Modified-Since` answer 304; one `Range` answers 206 with those bytes, and a range past
    the end 416. `width`/`height` send a resized copy, made once and then kept (a stored image
    that cannot be resized is a 422); `redirect=true`, on S3, a 307 to a presigned URL. A file
    replaced while it is being sent is a 409: ask again."""
    images = services.images
    file = await (images.file(scope, image_id) if resize is None else images.resized(scope, image_id, resize))
    if redirect:
        url = await images.presigned_url(file, expires_in=services.settings.presigned_url_seconds)
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "private, no-store"})
    return await _send(request, images, file, conditions, cache_control=CACHE_CONTROL)


async def download_content(
    request: Request,
    image_id: ImageId,
    content: Annotated[
        str,
        Path(
            description="the image's checksum and size as its documents give them: `<sha256>-<bytes>`",
            pattern=CONTENT_KEY_PATTERN,
        ),
    ],
    images: ImagesDep,
    scope: ScopeDep,
    conditions: ConditionsDep,
    resize: ResizeDep,
) -> Response:
    """As `/images/{id}/file`, at an address that names the bytes: cached by a browser for good."""
    file = await images.content(scope, image_id, parse_content_key(content), resize)
    return await _send(request, images, file, conditions, cache_control=IMMUTABLE, for_good=True)


async def _send(
    request: Request,
    images: ImageReader,
    file: ImageFile,
    conditions: Conditions,
    *,
    cache_control: str,
    for_good: bool = False,
) -> Response:
    headers = {
        "Cache-Control": cache_control,
        "Last-Modified": http_date(file.modified),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(file.filename),
    }
    if file.etag:
        headers["ETag"] = quote_etag(file.etag)
    if _unchanged(file, conditions.if_none_match, conditions.if_modified_since):
        del headers["Content-Disposition"]
        return Response(status_code=304, headers=headers)
    status, start, end = 200, 0, file.size
    applies = conditions.range and _range_applies(file, conditions.if_range)
    wanted = _single_range(conditions.range, file.size) if conditions.range and applies else None
    if wanted == UNSATISFIABLE:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{file.size}"})
    if isinstance(wanted, tuple):
        status, (start, end) = 206, wanted
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=file.content_type)
    chunks = await images.read(file, start=start, end=None if end == file.size else end, for_good=for_good)
    return StreamingResponse(chunks, status_code=status, media_type=file.content_type, headers=headers)


# `/file` is the legacy service's second name for `/image`; HEAD gets routes of its own so
# that every operation has its own id in the OpenAPI document.
for path, name, summary in (
    ("/images/{image_id}/image", "download_image", "Download an image's file"),
    ("/images/{image_id}/file", "download_file", "Download an image's file (same as /image)"),
):
    router.add_api_route(path, download, methods=["GET"], name=name, summary=summary, responses=DOWNLOAD_RESPONSES)
    router.add_api_route(
        path,
        download,
        methods=["HEAD"],
        name=f"{name}_headers",
        summary=f"{summary}: the headers only",
        responses=DOWNLOAD_RESPONSES,
    )
CONTENT_PATH = "/images/{image_id}/content/{content}"
CONTENT_SUMMARY = "Download an image's file at its content address, cacheable for good"
CONTENT_RESPONSES = {
    **{code: response for code, response in DOWNLOAD_RESPONSES.items() if code != 307},
    404: {"description": "no such image, or it no longer holds these bytes (replaced)"},
}
router.add_api_route(
    CONTENT_PATH,
    download_content,
    methods=["GET"],
    name="download_content",
    summary=CONTENT_SUMMARY,
    responses=CONTENT_RESPONSES,
)
router.add_api_route(
    CONTENT_PATH,
    download_content,
    methods=["HEAD"],
    name="download_content_headers",
    summary=f"{CONTENT_SUMMARY}: the headers only",
    responses=CONTENT_RESPONSES,
)


def _unchanged(file: ImageFile, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether the client's copy is current (RFC 9110 §13.2.2: If-None-Match, when given, decides)."""
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        return bool(tags.star_tag or (file.etag and tags.contains_weak(file.etag)))
    since = parse_date(if_modified_since) if if_modified_since else None
    # HTTP dates have whole seconds: a file modified within the second named is unchanged.
    return since is not None and int(file.modified.timestamp()) <= int(since.timestamp())


def _range_applies(file: ImageFile, if_range: str | None) -> bool:
    """`If-Range`: the range only if the file is still the one named (strong ETag or the date)."""
    if if_range is None:
        return True
    if if_range.lstrip().startswith(('"', "W/")):
        tag, weak = unquote_etag(if_range.strip())
        return not weak and tag is not None and tag == file.etag
    since = parse_date(if_range)
    return since is not None and int(file.modified.timestamp()) <= int(since.timestamp())


def _single_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """(start, end) of the one byte range asked for; "unsatisfiable"; or None: send it all."""
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    first, stop = parsed.ranges[0]  # `stop` exclusive; `bytes=-500` is (-500, None)
    if first < 0:  # the last bytes: all of them when more are asked than there are
        return (max(size + first, 0), size) if size else UNSATISFIABLE
    if first >= size:
        return UNSATISFIABLE
    return first, size if stop is None else min(stop, size)


def content_disposition(filename: str, *, kind: str = "inline") -> str:
    """`inline` so `<img>` tags and browsers show the image; the name survives non-ASCII."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    if ascii_name == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
