"""The service's REST operations as data: what to send and how to read the answer.

`Client` and `AsyncClient` (client.py) each only send a `Call` their way, so the two can never
disagree on a route, a parameter or the shape of an answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")

# What POST /images/check takes in one request.
CHECK_BATCH = 1000
# Images per page when iterating: the service allows up to QUERY_MAX_LIMIT (10,000 by default).
PAGE_SIZE = 1000


@dataclass(frozen=True, kw_only=True)
class Image:
    """An image's document as the service shows it; `document` holds every field as sent."""

    id: str
    file: str
    data: dict[str, Any]
    time: str | None
    size: int | None
    content_type: str | None
    checksum: str | None
    revision: int | None  # known from one image's answer (its ETag), not from a listing
    url: str | None
    document: dict[str, Any]

    @classmethod
    def from_json(cls, document: dict[str, Any], etag: str | None = None) -> Image:
        revision = document.get("revision")
        if revision is None and etag and etag.strip('"').isdigit():
            revision = int(etag.strip('"'))
        return cls(
            id=str(document["_id"]),
            file=str(document.get("file", "")),
            data=document.get("data") or {},
            time=document.get("time"),
            size=document.get("size"),
            content_type=document.get("contentType"),
            checksum=document.get("checksum"),
            revision=revision,
            url=document.get("url"),
            document=document,
        )


@dataclass(frozen=True, kw_only=True)
class Page:
    total: int | None
    items: list[Image]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """What the service holds at a path (POST /images/check): `same` compares the checksum asked
    about with the stored one (None when either is unknown)."""

    file: str
    stored: bool
    id: str | None
    checksum: str | None
    size: int | None
    revision: int | None
    same: bool | None


@dataclass(frozen=True, kw_only=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _json(response: httpx.Response) -> Any:
    return response.json()


def image(response: httpx.Response) -> Image:
    """One image's answer: its document, its revision from the ETag."""
    return Image.from_json(response.json(), response.headers.get("ETag"))


def query(
    *, filter: Mapping[str, Any] | None = None, view: str | None = None, sort: str | None = None
) -> dict[str, str]:
    """The query parameters of a selection: a filter (MongoDB-style, under the service's
    operator whitelist), a saved view, a sort."""
    params: dict[str, str] = {}
    if filter:
        params["filter"] = json.dumps(filter, separators=(",", ":"))
    if view:
        params["view"] = view
    if sort:
        params["sort"] = sort
    return params


def info() -> Call[dict[str, Any]]:
    return Call(method="GET", path="/", read=_json)


def get(image_id: str) -> Call[Image]:
    return Call(method="GET", path=f"/images/{image_id}", read=image)


def page(
    *,
    filter: Mapping[str, Any] | None = None,
    view: str | None = None,
    sort: str | None = None,
    limit: int = PAGE_SIZE,
    after: str = "",
) -> Call[Page]:
    """One page by cursor: `after` is the previous page's `next_cursor`, empty for the first."""

    def read(response: httpx.Response) -> Page:
        body = response.json()
        items = [Image.from_json(item) for item in body["items"]]
        return Page(total=body.get("total"), items=items, next_cursor=body.get("nextCursor"))

    params = {**query(filter=filter, view=view, sort=sort), "limit": str(limit), "after": after}
    return Call(method="GET", path="/images", params=params, read=read)


def snapshot_page(name: str, *, skip: int, limit: int = PAGE_SIZE) -> Call[Page]:
    def read(response: httpx.Response) -> Page:
        body = response.json()
        items = [Image.from_json(item) for item in body["items"]]
        more = skip + len(items) < body["total"] and bool(items)
        return Page(total=body["total"], items=items, next_cursor=str(skip + len(items)) if more else None)

    return Call(
        method="GET", path=f"/snapshots/{name}/images", params={"skip": str(skip), "limit": str(limit)}, read=read
    )


def patch(image_id: str, changes: Mapping[str, Any], *, revision: int | None = None) -> Call[Image]:
    """An RFC 7396 merge patch of the image's metadata (`None` removes a key)."""
    headers = {"Content-Type": "application/merge-patch+json"}
    if revision is not None:
        headers["If-Match"] = f'"{revision}"'
    return Call(method="PATCH", path=f"/images/{image_id}", json=dict(changes), headers=headers, read=image)


def delete(image_id: str) -> Call[str]:
    return Call(method="DELETE", path=f"/images/{image_id}", read=lambda response: str(response.json()["_id"]))


def delete_many(*, filter: Mapping[str, Any] | None = None, view: str | None = None) -> Call[int]:
    """Every image the selection matches; with neither a filter nor a view, every image."""
    return Call(
        method="DELETE",
        path="/images",
        params=query(filter=filter, view=view),
        read=lambda response: int(response.json()["deletedCount"]),
    )


def update_many(changes: Mapping[str, Any], *, filter: Mapping[str, Any] | None = None) -> Call[int]:
    """A merge patch of every match's metadata; how many changed."""
    return Call(
        method="PATCH",
        path="/images",
        params=query(filter=filter),
        json=dict(changes),
        headers={"Content-Type": "application/merge-patch+json"},
        read=lambda response: int(response.json()["modifiedCount"]),
    )


def check(files: Sequence[tuple[str, str | None]]) -> Call[list[StoredFile]]:
    """What is stored at each `(path, checksum or None)`, CHECK_BATCH at most."""

    def read(response: httpx.Response) -> list[StoredFile]:
        return [
            StoredFile(
                file=entry["file"],
                stored=bool(entry["stored"]),
                id=entry.get("id"),
                checksum=entry.get("checksum"),
                size=entry.get("size"),
                revision=entry.get("revision"),
                same=entry.get("same"),
            )
            for entry in response.json()["files"]
        ]

    body = {"files": [{"file": path, **({"checksum": sum_} if sum_ else {})} for path, sum_ in files]}
    return Call(method="POST", path="/images/check", json=body, read=read)


def duplicates(*, skip: int = 0, limit: int = 20) -> Call[list[dict[str, Any]]]:
    return Call(method="GET", path="/duplicates", params={"skip": str(skip), "limit": str(limit)}, read=_json)


def views() -> Call[list[dict[str, Any]]]:
    return Call(method="GET", path="/views", read=_json)


def view(name: str) -> Call[dict[str, Any]]:
    return Call(method="GET", path=f"/views/{name}", read=_json)


def save_view(name: str, *, filter: Mapping[str, Any] | None = None, sort: str | None = None) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"filter": dict(filter or {})}
    if sort:
        body["sort"] = sort
    return Call(method="PUT", path=f"/views/{name}", json=body, read=_json)


def delete_view(name: str) -> Call[dict[str, Any]]:
    return Call(method="DELETE", path=f"/views/{name}", read=_json)


def snapshots() -> Call[list[dict[str, Any]]]:
    return Call(method="GET", path="/snapshots", read=_json)


def snapshot(name: str) -> Call[dict[str, Any]]:
    return Call(method="GET", path=f"/snapshots/{name}", read=_json)


def create_snapshot(
    name: str, *, filter: Mapping[str, Any] | None = None, view: str | None = None
) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"name": name, "filter": dict(filter or {})}
    if view:
        body["view"] = view
    return Call(method="POST", path="/snapshots", json=body, read=_json)


def delete_snapshot(name: str) -> Call[dict[str, Any]]:
    return Call(method="DELETE", path=f"/snapshots/{name}", read=_json)


def diff(name: str, other: str) -> Call[dict[str, Any]]:
    return Call(method="GET", path=f"/snapshots/{name}/diff/{other}", read=_json)


def export_request(
    *,
    filter: Mapping[str, Any] | None = None,
    view: str | None = None,
    snapshot: str | None = None,
    format: str | None = None,
    options: Mapping[str, str] | None = None,
    ids: Sequence[str] | None = None,
) -> tuple[str, dict[str, str]]:
    """The path and parameters of an export: a snapshot's, or the selection's (`ids` narrows it
    to those images)."""
    params = {**(dict(options or {})), **({"format": format} if format else {})}
    if snapshot:
        return f"/snapshots/{snapshot}/export", params
    if ids is not None:
        params["ids"] = ",".join(ids)
    return "/export", {**query(filter=filter, view=view), **params}


def files_params(
    *, filter: Mapping[str, Any] | None = None, view: str | None = None, ids: Sequence[str] | None = None
) -> dict[str, str]:
    """The parameters of `/export/files`: a selection, narrowed to `ids` if given."""
    params = query(filter=filter, view=view)
    if ids is not None:
        params["ids"] = ",".join(ids)
    return params


def upload_fields(
    file: str, data: Mapping[str, Any] | None, *, time: str | None = None, image_id: str | None = None
) -> dict[str, str]:
    """The upload form's fields beside the file part: its path, its metadata as JSON."""
    fields = {"file": file, "data": json.dumps(dict(data or {}), separators=(",", ":"))}
    if time:
        fields["time"] = time
    if image_id:
        fields["_id"] = image_id
    return fields
