"""This process's subscribers, and the events handed to each.

Each subscriber gets the events its filter matches, within its scope: the filter is MongoDB's
query language, evaluated on the event's document in the service (app/store/matching.py, held
to the per-element reference table), so no database query runs per event and subscriber.

A subscriber that does not keep up (more than `limit` events waiting) is ended with an error
rather than allowed to hold memory without bound; it subscribes again, and may resume after
the last event it saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.store.matching import matches

log = logging.getLogger(__name__)

EventKind = Literal["created", "updated", "deleted"]


@dataclass(frozen=True, kw_only=True)
class ImageEvent:
    id: str  # its key in the journal: what a subscriber resumes after
    kind: EventKind
    document: Mapping[str, Any]  # the image now; for a delete, as it was


def from_journal(stored: Mapping[str, Any]) -> ImageEvent:
    return ImageEvent(id=stored["_id"], kind=stored["kind"], document=stored["image"])


class Subscriber:
    def __init__(self, condition: dict[str, Any], *, after: str, limit: int) -> None:
        self.condition = condition
        self.after = after  # events up to this key reach it otherwise, or never
        self.limit = limit
        # One slot more than the limit: for the mark that ends an overflowed subscription.
        self.queue: asyncio.Queue[ImageEvent | None] = asyncio.Queue(limit + 1)
        self.overflowed = False

    def wants(self, event: ImageEvent) -> bool:
        return _matches(self.condition, event.document)

    def offer(self, event: ImageEvent) -> None:
        if self.overflowed or event.id <= self.after or not self.wants(event):
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            self.queue.put_nowait(None)  # its iterator ends here, after the events before it
            return
        self.queue.put_nowait(event)


class Hub:
    def __init__(self, *, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def add(self, condition: dict[str, Any], *, after: str) -> Subscriber:
        subscriber = Subscriber(condition, after=after, limit=self.queue_size)
        self._subscribers.add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def deliver(self, event: ImageEvent) -> None:
        """Hand the event to every subscriber whose filter matches; never waits."""
        for subscriber in list(self._subscribers):
            subscriber.offer(event)


def _matches(condition: dict[str, Any], document: Mapping[str, Any]) -> bool:
    try:
        return matches(condition, document)
    except Exception as error:  # a filter that cannot be evaluated: no events, not a broken write
        log.warning("a subscription's filter could not be evaluated (%s): %s", type(error).__name__, error)
        return False
