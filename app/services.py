"""Everything a request needs, built once from the settings and shared by REST and GraphQL."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import httpx

from app.auth import Authenticator, JwksCache, TokenRules
from app.config import Settings
from app.domain.datasets.events import Events, EventSettings
from app.domain.datasets.kept import KeptBytes
from app.domain.datasets.snapshots import SnapshotService
from app.domain.datasets.views import ViewService
from app.domain.images import data_keys
from app.domain.images.analytics import Analytics
from app.domain.images.documents import FileRemoval
from app.domain.images.edits import Edits
from app.domain.images.listing import Listing
from app.domain.images.reading import ImageReader
from app.domain.images.uploads import Uploads
from app.domain.links import Linker, SignedLinks, SignedPath
from app.domain.media import checksums, file_facts
from app.domain.media.thumbnails import Thumbnails
from app.domain.scope import EVERYONE, Scope
from app.domain.writes import repair, replacement
from app.domain.writes.leases import Leases
from app.errors import Unavailable
from app.metrics import Metrics
from app.storage import Storage, build_storage
from app.store import Store

log = logging.getLogger(__name__)

# Each readiness check gives up after this long (both run at once), well inside a probe's timeout.
READINESS_TIMEOUT = 2.0
# A write in progress touches its temporary file all the time; one this old was left by a crash.
STALE_TEMPORARIES = timedelta(minutes=10)


def connect_store(settings: Settings, metrics: Metrics) -> Store:
    """The store of the configured database (nothing is sent before it is opened)."""
    return Store.connect(
        uri=settings.mongodb_uri,
        name=settings.mongodb_database,
        timeout_ms=settings.mongodb_timeout_ms,
        metrics=metrics,
        # Where the embedded database keeps its files, for the store to read (app/store/engines/).
        sqlite_directory=settings.ferretdb_sqlite_directory,
    )


def event_settings(settings: Settings) -> EventSettings:
    return EventSettings(
        poll_seconds=settings.events_poll_seconds,
        beat_seconds=settings.events_beat_seconds,
        writer_timeout=settings.events_writer_timeout_seconds,
        retention_seconds=settings.events_retention_seconds,
        retention_count=settings.events_retention_count,
    )


@dataclass(frozen=True, kw_only=True)
class Services:
    settings: Settings
    store: Store
    storage: Storage
    images: ImageReader  # one image and its files
    uploads: Uploads
    edits: Edits  # metadata changes and deletes, of one image or of every match
    listing: Listing
    analytics: Analytics  # identical files, keys, values and facets
    views: ViewService
    snapshots: SnapshotService
    events: Events  # live events of every replica's writes, through the database
    leases: Leases  # turns between writers of one image
    authenticator: Authenticator | None  # None: no OIDC_JWKS_URI, every caller sees every image
    links: SignedLinks | None  # with OIDC: links a browser opens without a header
    http: httpx.AsyncClient
    metrics: Metrics

    @classmethod
    async def open(cls, settings: Settings, metrics: Metrics) -> Services:
        storage = build_storage(settings, metrics)
        # The redacted URI: the password never reaches a log line.
        log.info(
            "starting: database %s, %s storage at %s",
            settings.mongodb_uri_redacted,
            storage.kind,
            storage.location,
        )
        # The storage first: the database's background maintenance reads files.
        try:
            await storage.start()
        except Unavailable as error:
            # Not fatal: requests that need the storage answer 503 until it is back.
            log.warning("storage not ready at start-up: %s", error.detail)
        store = connect_store(settings, metrics)
        leases = Leases(store=store.leases)
        events = Events(store=store, metrics=metrics, settings=event_settings(settings))
        kept = KeptBytes(store=store, storage=storage, leases=leases)  # what snapshots froze, kept
        await store.open(
            setup=[leases.prepare, events.start, store.kept.prepare],
            # For documents written by someone else (the legacy service, a restore).
            maintenance=[
                partial(replacement.settle_all, store.images, storage=storage, leases=leases),
                partial(data_keys.backfill, store.images, leases=leases),
                partial(file_facts.backfill, store.images, storage=storage, leases=leases),
                partial(checksums.backfill, store.images, storage=storage, leases=leases),
                partial(repair.remove_stale_temporaries, storage, older_than=STALE_TEMPORARIES),
                kept.mark_old_snapshots,  # so that their bytes are kept from now on
                kept.sweep,  # the kept files of snapshot deletes a crash cut short
            ],
        )
        thumbnails = Thumbnails(
            storage=storage,
            metrics=metrics,
            workers=settings.thumbnail_workers,
            max_pixels=settings.thumbnail_max_pixels,
        )
        images = ImageReader(
            store=store, storage=storage, leases=leases, thumbnails=thumbnails, metrics=metrics, kept=kept
        )
        uploads = Uploads(
            store=store,
            storage=storage,
            leases=leases,
            thumbnails=thumbnails,
            events=events,
            kept=kept,
            max_upload_bytes=settings.max_upload_bytes,
            metrics=metrics,
        )
        removal = FileRemoval(storage=storage, thumbnails=thumbnails)
        http = httpx.AsyncClient(follow_redirects=True)
        authenticator = None
        if settings.oidc_jwks_uri:
            jwks = JwksCache(uri=settings.oidc_jwks_uri, http=http, refresh_interval=settings.oidc_jwks_refresh_seconds)
            rules = TokenRules(
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience,
                user_identifier=settings.user_identifier,
                per_user=settings.image_scope == "user",
            )
            authenticator = Authenticator(jwks=jwks, rules=rules)
        return cls(
            settings=settings,
            store=store,
            storage=storage,
            images=images,
            uploads=uploads,
            edits=Edits(store=store, reader=images, leases=leases, events=events, kept=kept, removal=removal),
            listing=Listing(store=store),
            analytics=Analytics(store=store),
            views=ViewService(store=store),
            snapshots=SnapshotService(store=store, leases=leases, kept=kept),
            events=events,
            leases=leases,
            authenticator=authenticator,
            links=None if authenticator is None else SignedLinks(store=store, lifetime=settings.signed_link_seconds),
            http=http,
            metrics=metrics,
        )

    async def scope_for(self, authorization: str | None, *, link: SignedPath | None = None) -> Scope:
        """Whose images the caller may touch (Unauthenticated or Unavailable if that is unknowable);
        without a token, `link` may say it (Forbidden when the link is bad)."""
        if self.authenticator is None or self.links is None:
            return EVERYONE
        if authorization is None and link is not None:
            return (await self.links.signer()).scope_of(link.path, link.signature)
        return await self.authenticator.scope_for(authorization)

    async def linker(self, scope: Scope) -> Linker:
        """Makes the caller's links: signed for `scope` with OIDC, plain paths without."""
        return Linker(None if self.links is None else await self.links.signer(), scope)

    async def readiness(self, *, timeout: float = READINESS_TIMEOUT) -> dict[str, str]:
        """`ok`, or what is wrong, for the database and the storage, each checked right now."""
        database, storage = await asyncio.gather(self._database_state(timeout), self._storage_state(timeout))
        return {"database": database, "storage": storage}

    async def _database_state(self, timeout: float) -> str:
        if not await self.store.ping(timeout=timeout):
            return "unreachable"
        # Reachable, but the background start-up has not set it up yet (it retries every 2 s).
        return "ok" if self.store.initialised else "initialising"

    async def _storage_state(self, timeout: float) -> str:
        try:
            reachable = await asyncio.wait_for(self.storage.ping(), timeout)
        except TimeoutError:
            self.metrics.dependency_error("storage", "Timeout")
            return "unreachable"
        return "ok" if reachable else "unreachable"

    async def close(self) -> None:
        log.info("closing the database and storage connections")
        await self.http.aclose()
        await self.events.close()
        await self.leases.close()
        await self.storage.close()
        await self.store.close()
