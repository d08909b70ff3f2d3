"""`Client` and `AsyncClient`: the service's REST API as typed methods, errors as exceptions.

    with Client("http://127.0.0.1:3000", token="…") as client:
        for image in client.images(filter={"data.label": "cat"}):
            print(image.id, image.file)

Both send the same `calls.Call`s (calls.py); an answer of 400 or more raises the
`ImageStoreError` its `code` names (errors.py), a service that cannot be reached `Unreachable`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import IO, Any, TypeVar

import httpx

from imagestore import calls
from imagestore.calls import Call, Image, Page, StoredFile
from imagestore.errors import error_from, unreachable

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:3000"
# Connect quickly or say so; a large upload or a long export may take its time between bytes.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
USER_AGENT = "imagestore-client/0.1"


def _headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _verify(url: str, auth: httpx.Auth | None) -> bool:
    """Whether to set up certificate checks: not for a plain-http service with no issuer to
    reach, where no connection ever uses TLS (the client sends only paths under `url` and
    follows no redirects), since loading the CA bundle costs a quick command a tenth of its
    time. Every https connection is checked."""
    return not (url.startswith("http://") and auth is None)


def _connection(url: str, token: str | None, auth: httpx.Auth | None, timeout: httpx.Timeout) -> dict[str, Any]:
    """What both clients' httpx clients are made with."""
    return {
        "base_url": url,
        "headers": _headers(token),
        "auth": auth,
        "timeout": timeout,
        "verify": _verify(url, auth),
    }


def _upload_form(
    source: IO[bytes] | bytes,
    file: str,
    data: Mapping[str, Any] | None,
    filename: str | None,
    time: str | None,
    image_id: str | None,
    refuse_duplicates: bool,
) -> dict[str, Any]:
    """POST /images's parameters, file part and fields, as httpx takes them."""
    return {
        "params": {"refuseDuplicates": "true"} if refuse_duplicates else None,
        "files": {"image": (filename or os.path.basename(file) or "image", source)},
        "data": calls.upload_fields(file, data, time=time, image_id=image_id),
    }


class Client:
    """The service over HTTP, one request at a time per thread (httpx's `Client` is shared)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        auth: httpx.Auth | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(**_connection(self.url, token, auth, timeout), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None
        if response.status_code >= 400:
            raise error_from(response)
        return call.read(response)

    def info(self) -> dict[str, Any]:
        return self._send(calls.info())

    def get(self, image_id: str) -> Image:
        return self._send(calls.get(image_id))

    def page(self, **selection: Any) -> Page:
        """One page (`filter`, `view`, `sort`, `limit`, `after`: see `calls.page`)."""
        return self._send(calls.page(**selection))

    def images(
        self, *, filter: Mapping[str, Any] | None = None, view: str | None = None, sort: str | None = None
    ) -> Iterator[Image]:
        """Every match, a page at a time by cursor: none skipped or repeated while others write."""
        after = ""
        while True:
            page = self._send(calls.page(filter=filter, view=view, sort=sort, after=after))
            yield from page.items
            if not page.next_cursor:
                return
            after = page.next_cursor

    def snapshot_images(self, name: str) -> Iterator[Image]:
        """The images a snapshot froze, as it froze them."""
        skip = 0
        while True:
            page = self._send(calls.snapshot_page(name, skip=skip))
            yield from page.items
            if page.next_cursor is None:
                return
            skip = int(page.next_cursor)

    def upload(
        self,
        source: IO[bytes] | bytes,
        file: str,
        data: Mapping[str, Any] | None = None,
        *,
        filename: str | None = None,
        time: str | None = None,
        image_id: str | None = None,
        refuse_duplicates: bool = False,
    ) -> Image:
        """Store `source` at `file` (replacing the image there) with metadata `data`."""
        form = _upload_form(source, file, data, filename, time, image_id, refuse_duplicates)
        try:
            response = self._http.post("/images", **form)
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None
        if response.status_code >= 400:
            raise error_from(response)
        return calls.image(response)

    def patch(self, image_id: str, changes: Mapping[str, Any], *, revision: int | None = None) -> Image:
        return self._send(calls.patch(image_id, changes, revision=revision))

    def delete(self, image_id: str) -> str:
        return self._send(calls.delete(image_id))

    def delete_many(self, *, filter: Mapping[str, Any] | None = None, view: str | None = None) -> int:
        return self._send(calls.delete_many(filter=filter, view=view))

    def update_many(self, changes: Mapping[str, Any], *, filter: Mapping[str, Any] | None = None) -> int:
        return self._send(calls.update_many(changes, filter=filter))

    def check(self, files: Sequence[tuple[str, str | None]]) -> list[StoredFile]:
        """What is stored at each `(path, checksum or None)`, in order, asked CHECK_BATCH at a time."""
        found: list[StoredFile] = []
        for start in range(0, len(files), calls.CHECK_BATCH):
            answers: list[StoredFile] = self._send(calls.check(files[start : start + calls.CHECK_BATCH]))
            found.extend(answers)
        return found

    def duplicates(self, *, skip: int = 0, limit: int = 20) -> list[dict[str, Any]]:
        return self._send(calls.duplicates(skip=skip, limit=limit))

    def views(self) -> list[dict[str, Any]]:
        return self._send(calls.views())

    def view(self, name: str) -> dict[str, Any]:
        return self._send(calls.view(name))

    def save_view(self, name: str, *, filter: Mapping[str, Any] | None = None, sort: str | None = None) -> Any:
        return self._send(calls.save_view(name, filter=filter, sort=sort))

    def delete_view(self, name: str) -> None:
        self._send(calls.delete_view(name))

    def snapshots(self) -> list[dict[str, Any]]:
        return self._send(calls.snapshots())

    def snapshot(self, name: str) -> dict[str, Any]:
        return self._send(calls.snapshot(name))

    def create_snapshot(
        self, name: str, *, filter: Mapping[str, Any] | None = None, view: str | None = None
    ) -> dict[str, Any]:
        return self._send(calls.create_snapshot(name, filter=filter, view=view))

    def delete_snapshot(self, name: str) -> None:
        self._send(calls.delete_snapshot(name))

    def diff(self, name: str, other: str) -> dict[str, Any]:
        return self._send(calls.diff(name, other))

    @contextmanager
    def download(self, image: Image | str) -> Iterator[httpx.Response]:
        """The image's bytes as a streamed response (`iter_bytes()`): at its content address when
        the document gave one (it never serves other bytes), else the image's current file."""
        path = image.url if isinstance(image, Image) and image.url else f"/images/{_id_of(image)}/file"
        with self._stream("GET", path, None) as response:
            yield response

    @contextmanager
    def export(self, **selection: Any) -> Iterator[httpx.Response]:
        """The `.zip` of an export, streamed (`filter`, `view`, `snapshot`, `format`, `options`)."""
        path, params = calls.export_request(**selection)
        with self._stream("GET", path, params) as response:
            yield response

    @contextmanager
    def files(self, **selection: Any) -> Iterator[httpx.Response]:
        """The matches' files as an uncompressed tar, streamed (`filter`, `view`, `ids`): each
        member at the image's path, with `IMAGESTORE.id` and `IMAGESTORE.checksum` pax headers."""
        with self._stream("GET", "/export/files", calls.files_params(**selection)) as response:
            yield response

    @contextmanager
    def _stream(self, method: str, path: str, params: Mapping[str, str] | None) -> Iterator[httpx.Response]:
        try:
            with self._http.stream(method, path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                yield response
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None


class AsyncClient:
    """The service over HTTP from asyncio: many requests at once on one connection pool."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        auth: httpx.Auth | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._credentials = (token, auth)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.AsyncClient(
            **_connection(self.url, token, auth, timeout), limits=limits, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def sync(self) -> Client:
        """A `Client` on the same service with the same credentials, for work done in a thread."""
        token, auth = self._credentials
        return Client(self.url, token=token, auth=auth, timeout=self._http.timeout)

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None
        if response.status_code >= 400:
            raise error_from(response)
        return call.read(response)

    async def info(self) -> dict[str, Any]:
        return await self._send(calls.info())

    async def get(self, image_id: str) -> Image:
        return await self._send(calls.get(image_id))

    async def page(self, **selection: Any) -> Page:
        return await self._send(calls.page(**selection))

    async def images(
        self, *, filter: Mapping[str, Any] | None = None, view: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Image]:
        async for page in self.pages(filter=filter, view=view, sort=sort):
            for image in page.items:
                yield image

    async def pages(
        self, *, filter: Mapping[str, Any] | None = None, view: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Page]:
        """Every page of matches by cursor (the first one's `total` counts them all)."""
        after = ""
        while True:
            page = await self._send(calls.page(filter=filter, view=view, sort=sort, after=after))
            yield page
            if not page.next_cursor:
                return
            after = page.next_cursor

    async def snapshot_pages(self, name: str) -> AsyncIterator[Page]:
        skip = 0
        while True:
            page = await self._send(calls.snapshot_page(name, skip=skip))
            yield page
            if page.next_cursor is None:
                return
            skip = int(page.next_cursor)

    async def upload(
        self,
        source: IO[bytes] | bytes,
        file: str,
        data: Mapping[str, Any] | None = None,
        *,
        filename: str | None = None,
        time: str | None = None,
        image_id: str | None = None,
        refuse_duplicates: bool = False,
    ) -> Image:
        """Store `source` at `file` (replacing the image there) with metadata `data`. A file
        object is read as it is sent, in the event loop's thread."""
        form = _upload_form(source, file, data, filename, time, image_id, refuse_duplicates)
        try:
            response = await self._http.post("/images", **form)
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None
        if response.status_code >= 400:
            raise error_from(response)
        return calls.image(response)

    async def patch(self, image_id: str, changes: Mapping[str, Any], *, revision: int | None = None) -> Image:
        return await self._send(calls.patch(image_id, changes, revision=revision))

    async def delete(self, image_id: str) -> str:
        return await self._send(calls.delete(image_id))

    async def delete_many(self, *, filter: Mapping[str, Any] | None = None, view: str | None = None) -> int:
        return await self._send(calls.delete_many(filter=filter, view=view))

    async def update_many(self, changes: Mapping[str, Any], *, filter: Mapping[str, Any] | None = None) -> int:
        return await self._send(calls.update_many(changes, filter=filter))

    async def check(self, files: Sequence[tuple[str, str | None]]) -> list[StoredFile]:
        found: list[StoredFile] = []
        for start in range(0, len(files), calls.CHECK_BATCH):
            answers: list[StoredFile] = await self._send(calls.check(files[start : start + calls.CHECK_BATCH]))
            found.extend(answers)
        return found

    async def duplicates(self, *, skip: int = 0, limit: int = 20) -> list[dict[str, Any]]:
        return await self._send(calls.duplicates(skip=skip, limit=limit))

    async def views(self) -> list[dict[str, Any]]:
        return await self._send(calls.views())

    async def view(self, name: str) -> dict[str, Any]:
        return await self._send(calls.view(name))

    async def save_view(self, name: str, *, filter: Mapping[str, Any] | None = None, sort: str | None = None) -> Any:
        return await self._send(calls.save_view(name, filter=filter, sort=sort))

    async def delete_view(self, name: str) -> None:
        await self._send(calls.delete_view(name))

    async def snapshots(self) -> list[dict[str, Any]]:
        return await self._send(calls.snapshots())

    async def snapshot(self, name: str) -> dict[str, Any]:
        return await self._send(calls.snapshot(name))

    async def create_snapshot(
        self, name: str, *, filter: Mapping[str, Any] | None = None, view: str | None = None
    ) -> dict[str, Any]:
        return await self._send(calls.create_snapshot(name, filter=filter, view=view))

    async def delete_snapshot(self, name: str) -> None:
        await self._send(calls.delete_snapshot(name))

    async def diff(self, name: str, other: str) -> dict[str, Any]:
        return await self._send(calls.diff(name, other))

    @asynccontextmanager
    async def download(self, image: Image | str) -> AsyncIterator[httpx.Response]:
        path = image.url if isinstance(image, Image) and image.url else f"/images/{_id_of(image)}/file"
        async with self._stream("GET", path, None) as response:
            yield response

    @asynccontextmanager
    async def export(self, **selection: Any) -> AsyncIterator[httpx.Response]:
        path, params = calls.export_request(**selection)
        async with self._stream("GET", path, params) as response:
            yield response

    @asynccontextmanager
    async def _stream(self, method: str, path: str, params: Mapping[str, str] | None) -> AsyncIterator[httpx.Response]:
        try:
            async with self._http.stream(method, path, params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from(response)
                yield response
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None


def _id_of(image: Image | str) -> str:
    return image.id if isinstance(image, Image) else image
