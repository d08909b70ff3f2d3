"""Every Prometheus metric the service exposes, defined here and nowhere else.

Each app gets its own registry (`Metrics()` in `create_app`), so that tests, which build many
apps in one process, never see each other's counts, and `/metrics` serves exactly one app's.
The domain and the storage backends receive the `Metrics` object and call its plain methods;
this module imports no web framework, and every label value it accepts is bounded here, so a
client can never create new series at will.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from app.errors import ServiceError, Unavailable

NAMESPACE = "image_storage"
# Downloads and exports can stream for minutes: buckets past the client libraries' 10 s.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
ARCHIVE_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
GRAPHQL_TYPES = frozenset({"query", "mutation", "subscription"})
# A GraphQL Name, and few enough of them: clients choose operation names freely.
GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
MAX_GRAPHQL_NAMES = 50
ERROR_CLASS = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

Dependency = Literal["database", "storage"]
ArchiveOperation = Literal["export", "import"]
ThumbnailOutcome = Literal["made", "cached"]


class Metrics:
    def __init__(self) -> None:
        # No `_created` series beside every counter and histogram: they double the series count
        # and no dashboard reads them. Process-wide, and idempotent.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        # The process's memory, CPU, file descriptors and GC, as the default registry would have.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        registry = self.registry

        self._requests = Counter(
            "http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self._request_seconds = Histogram(
            "http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.requests_in_progress = Gauge(
            "http_requests_in_progress", "HTTP requests being served now.", namespace=NAMESPACE, registry=registry
        )
        self._graphql = Counter(
            "graphql_operations",
            "GraphQL operations executed.",
            ["operation_type", "operation_name", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self._graphql_seconds = Histogram(
            "graphql_operation_duration_seconds",
            "Time to parse, validate and execute a GraphQL operation.",
            ["operation_type", "operation_name"],
            namespace=NAMESPACE,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._graphql_names: set[str] = set()
        self._upload_bytes = Counter(
            "upload_bytes", "Bytes of image files stored (uploads and imports).", namespace=NAMESPACE, registry=registry
        )
        self._download_bytes = Counter(
            "download_bytes", "Bytes of image files sent to clients.", namespace=NAMESPACE, registry=registry
        )
        self._archives = Counter(
            "archive_operations",
            "Archive exports and imports, by how they ended.",
            ["operation", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self._archive_seconds = Histogram(
            "archive_operation_duration_seconds",
            "Time to stream an export or to import an archive.",
            ["operation"],
            namespace=NAMESPACE,
            buckets=ARCHIVE_BUCKETS,
            registry=registry,
        )
        self._thumbnails = Counter(
            "thumbnails",
            "Resized copies of images served: `made` (decoded and stored now) or `cached` (read back).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self._events = Counter(
            "live_events",
            "Live events out of the ordinary: `late` (stored after their writer was given up, delivered "
            "out of order), `lost` (the database never took them).",
            ["fate"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self._dependency_errors = Counter(
            "dependency_errors",
            "Failed attempts to reach the database or the storage, readiness checks included.",
            ["kind", "error"],
            namespace=NAMESPACE,
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    # -- HTTP --------------------------------------------------------------------------------

    def observe_request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """`route` must be a route template (or a fixed word), never a raw path."""
        labels = (method if method in METHODS else "other", route, str(status))
        self._requests.labels(*labels).inc()
        self._request_seconds.labels(*labels).observe(seconds)

    # -- GraphQL -----------------------------------------------------------------------------

    def observe_graphql(
        self, *, operation_type: str | None, operation_name: str | None, ok: bool, seconds: float
    ) -> None:
        kind = operation_type if operation_type in GRAPHQL_TYPES else "unknown"
        name = self._graphql_name(operation_name) if kind != "unknown" else "unknown"
        self._graphql.labels(kind, name, "ok" if ok else "error").inc()
        self._graphql_seconds.labels(kind, name).observe(seconds)

    def _graphql_name(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not GRAPHQL_NAME.match(name):
            return "other"
        if name not in self._graphql_names:
            if len(self._graphql_names) >= MAX_GRAPHQL_NAMES:
                return "other"
            self._graphql_names.add(name)
        return name

    # -- bytes -------------------------------------------------------------------------------

    def uploaded(self, size: int) -> None:
        self._upload_bytes.inc(size)

    async def count_download(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`chunks`, counting each one once the consumer asks for the next (it has been sent)."""
        try:
            async for chunk in chunks:
                yield chunk
                self._download_bytes.inc(len(chunk))
        finally:
            # Closing this wrapper must close the storage stream now, not whenever it is collected.
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    # -- archives ----------------------------------------------------------------------------

    @contextmanager
    def archive(self, operation: ArchiveOperation) -> Iterator[None]:
        """Counts and times the block: `ok`; `refused` (a bad or oversized archive: the client's
        doing); `aborted` (client gone, shutdown); `error` (a dependency failed, or a bug)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "aborted"
            raise
        except ServiceError as error:
            outcome = "error" if isinstance(error, Unavailable) else "refused"
            raise
        finally:
            self._archives.labels(operation, outcome).inc()
            self._archive_seconds.labels(operation).observe(time.perf_counter() - started)

    # -- thumbnails --------------------------------------------------------------------------

    def thumbnail(self, outcome: ThumbnailOutcome) -> None:
        self._thumbnails.labels(outcome).inc()

    # -- live events -------------------------------------------------------------------------

    def events_lost(self, count: int) -> None:
        self._events.labels("lost").inc(count)

    def events_late(self, count: int) -> None:
        self._events.labels("late").inc(count)

    # -- dependencies ------------------------------------------------------------------------

    def dependency_error(self, kind: Dependency, error: str) -> None:
        """`error` names the failure's class (`ServerSelectionTimeoutError`, `ENOSPC`…)."""
        self._dependency_errors.labels(kind, error if ERROR_CLASS.match(error) else "other").inc()
