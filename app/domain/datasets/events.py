"""Live events: images created, updated and deleted, as they happen, to whoever subscribed.

Every write of an image in this process (uploads, metadata changes, replacements, deletes, one
at a time or in bulk, imports) publishes an event with the image as it now is (as it was, for
a delete). Each subscriber gets the events its filter matches, within its scope: the filter is
MongoDB's query language, evaluated on the event's document in the service (app/store/
matching.py, held to the per-element reference table), so no database query runs per event.

Delivery is in process: exact within one service process, in the order the writes completed.
A subscriber that does not keep up (more than `queue_size` events waiting) is ended with an
error rather than allowed to hold memory without bound; it subscribes again. Events of other
replicas are not seen: see the README (not every engine has change streams).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.query import scoped
from app.domain.scope import Scope
from app.errors import Conflict
from app.store.matching import matches

log = logging.getLogger(__name__)

EventKind = Literal["created", "updated", "deleted"]
QUEUE_SIZE = 1000


@dataclass(frozen=True, kw_only=True)
class ImageEvent:
    kind: EventKind
    document: Mapping[str, Any]  # the image now; for a delete, as it was


class _Subscriber:
    def __init__(self, condition: dict[str, Any], limit: int) -> None:
        self.condition = condition
        self.limit = limit
        # One slot more than the limit: for the mark that ends an overflowed subscription.
        self.queue: asyncio.Queue[ImageEvent | None] = asyncio.Queue(limit + 1)
        self.overflowed = False

    def offer(self, event: ImageEvent) -> None:
        if self.overflowed or not _matches(self.condition, event.document):
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            self.queue.put_nowait(None)  # its iterator ends here, after the events before it
            return
        self.queue.put_nowait(event)


class Events:
    def __init__(self, *, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: EventKind, documents: Iterable[Mapping[str, Any]]) -> None:
        """Hand the events to every subscriber whose filter matches; never waits."""
        if not self._subscribers:
            return
        for document in documents:
            event = ImageEvent(kind=kind, document=document)
            for subscriber in list(self._subscribers):
                subscriber.offer(event)

    async def subscribe(self, scope: Scope, query_filter: Mapping[str, Any]) -> AsyncIterator[ImageEvent]:
        """The events matching `query_filter` in `scope`, from now on, until the caller stops."""
        subscriber = _Subscriber(scoped(query_filter, scope), self._queue_size)
        self._subscribers.add(subscriber)
        try:
            while True:
                event = await subscriber.queue.get()
                if event is None:
                    raise Conflict(
                        f"More than {self._queue_size} events waited for this subscription; subscribe again."
                    )
                yield event
        finally:
            self._subscribers.discard(subscriber)


def _matches(condition: dict[str, Any], document: Mapping[str, Any]) -> bool:
    try:
        return matches(condition, document)
    except Exception as error:  # a filter that cannot be evaluated: no events, not a broken write
        log.warning("a subscription's filter could not be evaluated (%s): %s", type(error).__name__, error)
        return False
