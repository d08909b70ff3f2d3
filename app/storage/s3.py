"""Files in an S3 bucket, through the minio client.

The minio SDK is synchronous; every call runs in a worker thread so the event loop never waits
on the network. Its default HTTP pool waits minutes on an unreachable endpoint and retries
five times; ours gives up after a short connect timeout so clients get a prompt 503.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import urllib3
from anyio import to_thread
from minio import Minio
from minio.commonconfig import ComposeSource
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError as TransportError

from app.errors import NotFound, Unavailable
from app.metrics import Metrics
from app.storage.base import CHUNK_SIZE, FileStat, ListedFile, StoredFile
from app.storage.keys import storage_key
from app.storage.threads import open_in_thread

T = TypeVar("T")

MISSING_CODES = {"NoSuchKey", "NoSuchObject", "NotFound"}
PART_SIZE = 16 * 1024 * 1024


LIST_BATCH = 1000


def _next_batch(objects: Iterator[Any], size: int) -> list[ListedFile]:
    # The SDK pages through the listing (1,000 keys per request) as the iterator is read.
    return [
        ListedFile(key=item.object_name, size=item.size or 0, modified=item.last_modified or datetime.now(UTC))
        for item in islice(objects, size)
        if not item.is_dir
    ]


class S3Storage:
    kind: Literal["s3"] = "s3"

    def __init__(
        self,
        *,
        endpoint: str,
        secure: bool,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str | None,
        connect_timeout: float,
        metrics: Metrics,
    ) -> None:
        self.endpoint, self.bucket, self.secure = endpoint, bucket, secure
        self._metrics = metrics
        self._bucket_ready = False
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=60),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=16,
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            secure=secure,
            http_client=self._http,
        )

    @property
    def location(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.endpoint}/{self.bucket}"

    async def _call(
        self,
        function: Callable[..., T],
        *args: object,
        closing: Callable[[T], None] | None = None,
        **kwargs: object,
    ) -> T:
        """`function(*args, **kwargs)` in a worker thread, its errors in the domain's terms;
        `closing` closes what it returns should the caller stop waiting for it."""
        try:
            if closing is not None:
                return await open_in_thread(lambda: function(*args, **kwargs), closing)
            return await to_thread.run_sync(lambda: function(*args, **kwargs))
        except S3Error as error:
            if error.code in MISSING_CODES:
                raise NotFound("The file is missing from storage.") from None
            self._metrics.dependency_error("storage", "S3Error")
            raise Unavailable(f"The S3 storage refused the request: {error.code}.", cause="S3Error") from None
        except (MinioException, TransportError, OSError) as error:
            cause = type(error).__name__
            self._metrics.dependency_error("storage", cause)
            raise Unavailable(f"The S3 storage at {self.endpoint} is unreachable ({cause}).", cause=cause) from None

    async def start(self) -> None:
        if not await self._call(self._client.bucket_exists, self.bucket):
            try:
                await self._call(self._client.make_bucket, self.bucket)
            except Unavailable:
                # Another replica may have created it between our check and our request.
                if not await self._call(self._client.bucket_exists, self.bucket):
                    raise
        self._bucket_ready = True

    async def save(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> None:
        if not self._bucket_ready:  # S3 was down at start-up: create the bucket now
            await self.start()
        # A PUT is atomic in S3: readers see the old object or the new one, never a part.
        await self._call(
            self._client.put_object,
            self.bucket,
            storage_key(key),
            source,
            length,
            content_type=content_type,
            part_size=PART_SIZE,
        )

    async def save_new(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> bool:
        # Not a conditional PUT (`If-None-Match: *`): S3-compatible stores do not all honour it.
        if await self.exists(key):
            return False
        await self.save(key, source, length=length, content_type=content_type)
        return True

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile:
        if start == 0 and end is None:
            response = await self._call(self._client.get_object, self.bucket, storage_key(key), closing=_release)
            return StoredFile(size=int(response.headers["Content-Length"]), chunks=self._stream(response))
        # A ranged GET (minio-py asks for all the rest when the length is 0); the whole size is
        # what follows the slash of the answer's `Content-Range: bytes 0-99/2048`.
        length = 0 if end is None else end - start
        response = await self._call(
            self._client.get_object, self.bucket, storage_key(key), offset=start, length=length, closing=_release
        )
        size = int(response.headers["Content-Range"].rpartition("/")[2])
        return StoredFile(size=size, chunks=self._stream(response))

    async def presigned_url(self, key: str, *, expires: timedelta, filename: str, content_type: str) -> str:
        # Signed locally (minio-py may first ask the endpoint for the bucket's region). The
        # answer's headers are part of the signature, so the download keeps its name and type.
        disposition = f"inline; filename*=UTF-8''{quote(filename, safe='')}"
        overrides = {"response-content-type": content_type, "response-content-disposition": disposition}
        return await self._call(
            self._client.presigned_get_object,
            self.bucket,
            storage_key(key),
            expires=expires,
            response_headers=overrides,
        )

    async def stat(self, key: str) -> FileStat:
        found = await self._call(self._client.stat_object, self.bucket, storage_key(key))
        modified = found.last_modified or datetime.now(UTC)
        return FileStat(size=found.size or 0, modified=modified.astimezone(UTC))

    async def _stream(self, response: urllib3.BaseHTTPResponse) -> AsyncGenerator[bytes, None]:
        chunks = response.stream(CHUNK_SIZE)
        try:
            while chunk := await to_thread.run_sync(next, chunks, b""):
                yield chunk
        finally:
            _release(response)

    async def move(self, source: str, target: str) -> None:
        # S3 has no rename: a server-side copy (in parts above 5 GiB, which compose_object
        # handles), then the source goes. A crash between the two leaves both: moving again
        # copies once more.
        source_key = storage_key(source)
        await self._call(
            self._client.compose_object, self.bucket, storage_key(target), [ComposeSource(self.bucket, source_key)]
        )
        await self._call(self._client.remove_object, self.bucket, source_key)

    async def copy(self, source: str, target: str) -> None:
        # Server-side: the bytes never leave the store. A PUT of the copy is atomic, as any PUT.
        await self._call(
            self._client.compose_object,
            self.bucket,
            storage_key(target),
            [ComposeSource(self.bucket, storage_key(source))],
        )

    async def delete(self, key: str) -> None:
        await self._call(self._client.remove_object, self.bucket, storage_key(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self._client.stat_object, self.bucket, storage_key(key))
        except NotFound:
            return False
        return True

    async def list_files(self, *, folder: str | None = None) -> AsyncIterator[list[ListedFile]]:
        prefix = None if folder is None else f"{storage_key(folder)}/"
        objects = await self._call(self._client.list_objects, self.bucket, prefix=prefix, recursive=True)
        while batch := await self._call(_next_batch, objects, LIST_BATCH):
            yield batch

    async def ping(self) -> bool:
        try:
            await self._call(self._client.bucket_exists, self.bucket)
        except Unavailable:
            return False
        return True

    async def close(self) -> None:
        self._http.clear()


def _release(response: urllib3.BaseHTTPResponse) -> None:
    response.close()
    response.release_conn()
