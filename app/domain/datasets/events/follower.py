"""The reading half of live events: each process follows the journal and feeds its subscribers.

While the process has a subscriber, it reads the journal every `poll_seconds` (and as soon as
its own events are stored): the events after its cursor and below the frontier, oldest first.
The frontier is the smallest promise of the live writers (journal.py): below it no event can
still appear, so the cursor never passes a gap a writer may yet fill, and every process
delivers the same events in the same order, the order of their keys.

A writer is live while its beat moves. One whose beat has not moved for `writer_timeout` (or
whose last beat is that old when first seen) is given up: the frontier stops waiting for it. An
insert it had sent before dying may still land below the cursor; for `LATE_WATCH_SECONDS` the
follower looks for such events, delivers them (out of order: better late than never) and counts
them (`image_storage_live_events_total{fate="late"}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.domain.datasets.events.hub import Hub, from_journal
from app.domain.datasets.events.journal import Journal
from app.domain.datasets.events.keys import floor
from app.domain.datasets.events.recovery import recover
from app.errors import ServiceError
from app.metrics import Metrics
from app.store import Store

log = logging.getLogger(__name__)

PAGE = 1000
LATE_WATCH_SECONDS = 60.0
# Woken by this process's own events no more often than this: a busy writer would poll non-stop.
MIN_POLL_GAP = 0.02
# With no subscriber left for this long, stop reading (a subscriber that comes back soon finds
# the cursor where it was).
IDLE_STOP_SECONDS = 30.0


class _GivenUp:
    def __init__(self, since: str, *, when: float) -> None:
        self.since = since  # its promise: none of its events below this
        self.when = when
        self.delivered: set[str] = set()  # its events delivered since


class _Writer:
    def __init__(self, beat: int, *, seen: float) -> None:
        self.beat = beat
        self.moved = seen  # when its beat last moved, by this process's monotonic clock


class Follower:
    def __init__(
        self, *, store: Store, journal: Journal, hub: Hub, metrics: Metrics, poll_seconds: float, writer_timeout: float
    ) -> None:
        self.store = store
        self.journal = journal
        self.hub = hub
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.writer_timeout = writer_timeout
        self.cursor = ""  # every event up to here has been delivered (a key, or a floor)
        self._writers: dict[str, _Writer] = {}
        self._given_up: dict[str, _GivenUp] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        journal.on_stored(self._wake.set)

    async def running(self) -> None:
        """Follow from now on, if not already; returns once the cursor is placed (or raises
        what kept it from being placed)."""
        if self._task is None or self._task.done():
            self._started = asyncio.Event()
            self._task = asyncio.create_task(self._run())
        task, started = self._task, asyncio.ensure_future(self._started.wait())
        try:
            await asyncio.wait({task, started}, return_when="FIRST_COMPLETED")
        finally:
            started.cancel()
        if task.done() and not self._started.is_set():
            task.result()

    async def stop(self) -> None:
        # Between polls, not mid-call (see Journal.close).
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        # Where to start: the frontier now. Nothing before it is new to this process's subscribers.
        with self.store.errors():
            self.cursor = floor(await self._frontier())
        self._started.set()
        last, idle_since = 0.0, time.monotonic()
        while not self._stopping.is_set() and (self.hub or time.monotonic() - idle_since < IDLE_STOP_SECONDS):
            if self.hub:
                idle_since = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            await asyncio.sleep(max(0.0, last + MIN_POLL_GAP - time.monotonic()))
            self._wake.clear()
            if self._stopping.is_set():
                break
            last = time.monotonic()
            try:
                with self.store.errors():
                    await self.poll()
            except ServiceError as error:  # the database is away: keep the cursor, try again
                log.debug("live events: the journal could not be read: %s", error.detail)
            except Exception:  # a bug: subscribers wait on this loop, so it goes on
                log.exception("live events: reading the journal failed")
        self._task = None

    async def poll(self) -> None:
        upto = floor(await self._frontier())
        while True:
            page = await self.store.events.between(self.cursor, upto, limit=PAGE)
            for stored in page:
                self.hub.deliver(from_journal(stored))
                if stored["p"] in self._given_up:
                    self._given_up[stored["p"]].delivered.add(stored["_id"])
            if page:
                self.cursor = page[-1]["_id"]
            if len(page) < PAGE:
                break
        self.cursor = max(self.cursor, upto)
        if self._given_up:
            await self._late()

    async def _frontier(self) -> int:
        """The smallest promise of the live writers: no event below it is still on its way."""
        promises = [self.journal.promise()]
        now, wall = time.monotonic(), datetime.now(UTC)
        current: dict[str, _Writer] = {}
        newly: dict[str, str] = {}
        for document in await self.store.events.writers():
            name = document["_id"]
            if name == self.journal.writer:
                continue
            known = self._writers.get(name)
            if known is None:
                stale = (wall - _at(document)).total_seconds() >= self.writer_timeout
                known = _Writer(document["beat"], seen=now - self.writer_timeout if stale else now)
            elif known.beat != document["beat"]:
                known.beat, known.moved = document["beat"], now
            current[name] = known
            if now - known.moved < self.writer_timeout:
                promises.append(int(document["promise"]))
            elif name not in self._given_up and name in self._writers:
                log.warning("live events: writer %s stopped beating; no longer waited for", name)
                self._given_up[name] = _GivenUp(floor(int(document["promise"])), when=now)
                newly[name] = self._given_up[name].since
        self._writers = current
        # Before the frontier passes it: what it wrote and had not yet journaled.
        await recover(self.store, newly)
        return min(promises)

    async def _late(self) -> None:
        """Events of given-up writers that landed below the cursor after all."""
        now = time.monotonic()
        self._given_up = {name: up for name, up in self._given_up.items() if now - up.when < LATE_WATCH_SECONDS}
        if not self._given_up:
            return
        since = {name: up.since for name, up in self._given_up.items()}
        found = await self.store.events.of_writers_since(since, self.cursor)
        late = [stored for stored in found if stored["_id"] not in self._given_up[stored["p"]].delivered]
        for stored in late:
            self.hub.deliver(from_journal(stored))
            self._given_up[stored["p"]].delivered.add(stored["_id"])
        if late:
            log.warning("live events: %d events of a given-up writer arrived late", len(late))
            self.metrics.events_late(len(late))


def _at(writer: Mapping[str, Any]) -> datetime:
    at: datetime = writer["at"]
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
