"""Live events: images created, updated and deleted, by any replica, to whoever subscribed.

Every write of an image (uploads, metadata changes, replacements, deletes, one at a time or in
bulk, imports) records an event per image in the database before it is answered: the image as
it now is (as it was, for a delete: a tombstone carrying the whole document). Each service
process follows that journal and hands its own subscribers the events their filters match, so
a subscriber connected to any replica sees every replica's writes, in one order, the same on
every replica: the order of the events' keys, which for one image is the order its writes
completed.

- journal.py: the writing half, and why an acknowledged write always has its event;
- follower.py: the reading half, and how it never skips an event that is stored late;
- keys.py: keys every process makes alone (no counter: the store promises no atomic update);
- hub.py: this process's subscribers, their filters and their bounded queues.

A subscriber may pass the id of the last event it saw and resumes right after it, while that
event is retained; an id older than the retention is Gone (reload, then subscribe again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.datasets.events.follower import Follower
from app.domain.datasets.events.hub import EventKind, Hub, ImageEvent, Subscriber, from_journal
from app.domain.datasets.events.journal import Journal
from app.domain.datasets.events.keys import EVENT_FIELD, checked, floor
from app.domain.query import scoped
from app.domain.scope import Scope
from app.errors import Conflict, Gone
from app.metrics import Metrics
from app.store import Store

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
REPLAY_PAGE = 1000


class Subscription:
    """One subscriber's events: those it missed first (when it resumes), then the live ones."""

    def __init__(self, hub: Hub, subscriber: Subscriber, replay: AsyncIterator[ImageEvent] | None) -> None:
        self._hub = hub
        self._subscriber = subscriber
        self._replay = replay

    async def next(self, timeout: float | None = None) -> ImageEvent | None:
        """The next event; None if none came within `timeout` seconds. Conflict once the
        subscriber fell too far behind."""
        while self._replay is not None:
            replayed = await anext(self._replay, None)
            if replayed is None:
                self._replay = None
            elif self._subscriber.wants(replayed):
                return replayed
        try:
            waiting = await asyncio.wait_for(self._subscriber.queue.get(), timeout)
        except TimeoutError:
            return None
        if waiting is None:
            raise Conflict(
                f"More than {self._subscriber.limit} events waited for this subscription; subscribe again after "
                "the last event you received."
            )
        return waiting

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ImageEvent:
        event = await self.next()
        assert event is not None  # no timeout: it waits
        return event

    def close(self) -> None:
        self._hub.remove(self._subscriber)


@dataclass(frozen=True, kw_only=True)
class EventSettings:
    poll_seconds: float = 0.25
    beat_seconds: float = 0.25
    writer_timeout: float = 5.0
    retention_seconds: float = 86400.0
    retention_count: int = 100_000
    queue_size: int = QUEUE_SIZE


class Events:
    def __init__(self, *, store: Store, metrics: Metrics, settings: EventSettings | None = None) -> None:
        settings = settings or EventSettings()
        self.store = store
        self.journal = Journal(
            store=store,
            metrics=metrics,
            beat_seconds=settings.beat_seconds,
            writer_timeout=settings.writer_timeout,
            retention_seconds=settings.retention_seconds,
            retention_count=settings.retention_count,
        )
        self.hub = Hub(queue_size=settings.queue_size)
        self.follower = Follower(
            store=store,
            journal=self.journal,
            hub=self.hub,
            metrics=metrics,
            poll_seconds=settings.poll_seconds,
            writer_timeout=settings.writer_timeout,
        )

    @property
    def subscribers(self) -> int:
        return len(self.hub)

    async def start(self) -> None:
        """A store setup task: join the writers before the first write is served."""
        await self.journal.start()

    def stamp(self, kind: EventKind) -> str:
        """The mark to store in the document of a create or change about to be written (under
        its lease), as `EVENT_FIELD`; then `written` once it is stored, or `cancel`."""
        return self.journal.stamp(kind)

    def cancel(self, stamp: str | None) -> None:
        self.journal.cancel(stamp)

    def written(self, documents: Iterable[Mapping[str, Any]]) -> None:
        """These stamped documents are stored: their events follow, without waiting."""
        self.journal.written(documents)

    async def record(self, kind: EventKind, documents: Iterable[Mapping[str, Any]]) -> None:
        """Record an event per document now (a delete's: the document is gone, so no stamp can
        carry it); returns once they are stored. Call while holding the images' leases, so that
        the next writer of an image records after this."""
        await self.journal.record(kind, documents)

    async def open(self, scope: Scope, query_filter: Mapping[str, Any], *, after: str | None = None) -> Subscription:
        """A subscription to the events matching `query_filter` in `scope`: from now on, or
        right after the event `after` (BadInput if that is no event id, Gone if it is older than
        what is kept). Close it when done."""
        condition = scoped(query_filter, scope)
        if after is not None:
            checked(after)
            with self.store.errors():
                horizon = await self.store.events.horizon()
            if horizon is not None and after < horizon:
                raise Gone(
                    f"Event {after} is older than the events kept; reload what you show, then subscribe "
                    "again without it."
                )
        await self.follower.running()
        delivered = self.follower.cursor
        # From now on: events of writes answered before this subscription are not new to it.
        start = after if after is not None else max(delivered, floor(self.journal.clock.now()))
        subscriber = self.hub.add(condition, after=max(start, delivered))
        replay = self._replay(after, delivered) if after is not None and after < delivered else None
        return Subscription(self.hub, subscriber, replay)

    async def _replay(self, after: str, last: str) -> AsyncIterator[ImageEvent]:
        """The journal's events after `after` up to `last`, a page at a time."""
        while True:
            with self.store.errors():
                page = await self.store.events.through(after, last, limit=REPLAY_PAGE)
            for stored in page:
                yield from_journal(stored)
            if len(page) < REPLAY_PAGE:
                return
            after = page[-1]["_id"]

    async def close(self) -> None:
        await self.follower.stop()
        await self.journal.close()


__all__ = ["EVENT_FIELD", "EventKind", "EventSettings", "Events", "ImageEvent", "Subscription"]
