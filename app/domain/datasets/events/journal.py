"""The writing half of live events: every write's event, durable before the write is answered.

A create or change stores its event's stamp (key and kind, `EVENT_FIELD`) in the document it
writes, in the same insert or replacement, while it holds the image's lease: the write and its
event are one step, and the answer waits for nothing more. The events themselves follow into
the journal a moment later, those of concurrent writes in one insert (`written`, `_flush`);
a process that dies in between leaves the stamps, which recovery.py turns into events once it
is given up. A delete leaves no document to stamp: its tombstone (the document as it was) is
stored before the delete is answered (`record`). Either way the next writer of that image makes
its key after this one's (keys.py). Measured (bench_floor): a journal insert before every
answer cost uploads 7-16%; the stamp and the batched inserts, about nothing (README).

No transaction ties a delete and its tombstone: the store offers none, as not every engine has
them. If the database is gone, a delete is answered 503 (it happened; its event is late) and
the insert is tried again every beat for `GIVE_UP_SECONDS`, then dropped and counted; an event
the database refuses (it never will take it) is dropped and counted at once.

**Promises.** Keys are made by each process's clock, and an insert becomes visible some time
after its key was made, so a follower that has read up to key k cannot know from the events
alone that no event below k is still on its way. So each process keeps, in `event_writers`,
a promise rewritten every beat: every event it will still store has a key at or after
`promise` (the oldest key it has not yet stored, or now when it has none). A follower delivers
only below the smallest promise of the live writers (follower.py): it holds a gap while a
writer may still fill it. A writer whose beat stops (a `kill -9`) is given up after
`writer_timeout`; it cannot fill a gap any more, bar an insert already sent, which follower.py
watches for and counts.

Each beat also sweeps, now and then, what retention lets go (`retention_seconds`,
`retention_count`): the horizon first, then the events before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.domain.datasets.events.keys import EVENT_FIELD, Clock, floor, micros_of, new_writer, stamp_of, stamped
from app.domain.datasets.events.recovery import recover
from app.errors import ServiceError, Unavailable
from app.metrics import Metrics
from app.store import Store

log = logging.getLogger(__name__)

EventKind = Literal["created", "updated", "deleted"]

GIVE_UP_SECONDS = 60.0
FLUSH_LINGER = 0.1
SWEEP_SECONDS = 300.0
# A silent writer's record is kept this long (recovered and forgotten at the next sweep after).
FORGET_WRITERS_AFTER = timedelta(minutes=1)


class Journal:
    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        beat_seconds: float,
        writer_timeout: float,
        retention_seconds: float,
        retention_count: int,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.writer = new_writer()
        self.clock = Clock(self.writer)
        self.beat_seconds = beat_seconds
        self.writer_timeout = writer_timeout
        self.retention_seconds = retention_seconds
        self.retention_count = retention_count
        # key → its event until stored (None while its write is under way: see `stamp`)
        self._pending: dict[str, dict[str, Any] | None] = {}
        self._unsent: dict[str, float] = {}  # key → when its insert first failed
        self._stamped: dict[str, float] = {}  # key → when its write began
        self._outbox: list[str] = []  # keys of written events, for the next insert
        self._flusher: asyncio.Task[None] | None = None
        self._beats = 0
        self._next_sweep = time.monotonic() + random.uniform(0, SWEEP_SECONDS)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._stored: list[Callable[[], None]] = []

    def on_stored(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time events of this process are stored."""
        self._stored.append(callback)

    async def start(self) -> None:
        """Join the writers: no key of ours falls below a promise another writer has made, so a
        follower that read only theirs has skipped nothing of ours. A store setup task: it raises
        the driver's errors, and start-up retries."""
        await self.store.events.prepare()
        now = datetime.now(UTC)
        for writer in await self.store.events.writers():
            if _age(writer, now) < self.writer_timeout:
                self.clock.advance_past(int(writer["promise"]))
        await self._beat()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def promise(self) -> int:
        """Every event this process will still store has a key at or after this microsecond."""
        if self._pending:
            return micros_of(min(self._pending))
        return self.clock.promise()

    def stamp(self, kind: EventKind) -> str:
        """The mark of a write about to be made, to store in its document (`EVENT_FIELD`): the
        event's key and kind. Until `written` or `cancel`, it holds this process's promise."""
        key = self.clock.key()
        self._pending[key] = None
        self._stamped[key] = time.monotonic()
        return stamp_of(key, kind)

    def cancel(self, stamp: str | None) -> None:
        """The write `stamp` was made for did not happen."""
        found = stamped(stamp)
        if found is not None:
            self._stamped.pop(found[0], None)
            self._pending.pop(found[0], None)

    def written(self, documents: Iterable[Mapping[str, Any]]) -> None:
        """These documents, each with its stamp, are stored: their events go into the journal
        with the next insert, without waiting. The write is already durable with its stamp: if
        this process dies first, another finds the stamps (recovery.py)."""
        for document in documents:
            found = stamped(document.get(EVENT_FIELD))
            if found is None:
                continue
            key, kind = found
            self._stamped.pop(key, None)
            self._pending[key] = {"_id": key, "p": self.writer, "kind": kind, "image": dict(document)}
            self._outbox.append(key)
        if self._outbox and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        # Nobody waits for these inserts (but followers, by a few milliseconds): what was written
        # meanwhile goes in the same one, as does what is written while one runs.
        while self._outbox:
            await asyncio.sleep(FLUSH_LINGER)
            keys, self._outbox = self._outbox, []
            events = [event for key in keys if (event := self._pending.get(key)) is not None]
            try:
                with self.store.errors():
                    await self.store.events.append(events)
            except ServiceError as error:
                if not isinstance(error, Unavailable):
                    self._drop(keys, f"refused ({error.detail})")
                    continue
                self._retry_later(keys)
            except Exception:  # a bug: kept and tried again each beat, never lost silently
                log.exception("live events: %d events could not be sent; trying again", len(keys))
                self._retry_later(keys)
            else:
                self._done(keys)

    def _retry_later(self, keys: list[str]) -> None:
        first_failed = time.monotonic()
        for key in keys:
            self._unsent.setdefault(key, first_failed)

    async def settled(self) -> None:
        """Return once the events written so far have been sent (stored, or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def record(self, kind: EventKind, documents: Iterable[Mapping[str, Any]]) -> None:
        """Store an event per document; returns once they are in the database (Unavailable if
        it cannot say so: they are then tried again in the background)."""
        events: list[dict[str, Any]] = [
            {"_id": self.clock.key(), "p": self.writer, "kind": kind, "image": dict(doc)} for doc in documents
        ]
        if not events:
            return
        keys: list[str] = [event["_id"] for event in events]
        for key, event in zip(keys, events, strict=True):
            self._pending[key] = event
        try:
            with self.store.errors():
                await self.store.events.append(events)
        except Unavailable:
            first_failed = time.monotonic()
            for key in keys:
                self._unsent.setdefault(key, first_failed)
            raise
        except ServiceError as error:
            # Refused, not lost in transit (a document the database will never take): the
            # write stands, answered; its event cannot be, and waiting would hold every follower.
            self._drop(keys, f"refused ({error.detail})")
            return
        self._done(keys)

    def _done(self, keys: list[str]) -> None:
        for key in keys:
            self._pending.pop(key, None)
            self._unsent.pop(key, None)
        for callback in self._stored:
            callback()

    def _drop(self, keys: list[str], why: str) -> None:
        log.error("%d live events could not be stored and are lost: %s", len(keys), why)
        self.metrics.events_lost(len(keys))
        self._done(keys)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.beat_seconds)
            if self._stopping.is_set():
                return
            try:
                with self.store.errors():
                    await self._retry_unsent()
                    await self._beat()
                    if time.monotonic() >= self._next_sweep:
                        self._next_sweep = time.monotonic() + SWEEP_SECONDS
                        await self.sweep()
            except ServiceError as error:
                log.debug("event journal beat failed: %s", error)
            except Exception:  # a bug: the beat goes on, or every follower would give this process up
                log.exception("live events: the journal's beat failed")

    async def _beat(self) -> None:
        self._beats += 1
        await self.store.events.beat(self.writer, promise=self.promise(), beat=self._beats, at=datetime.now(UTC))

    async def _retry_unsent(self) -> None:
        # A stamp whose write never said how it went (a bug) must not hold every follower.
        stuck = [key for key, since in self._stamped.items() if time.monotonic() - since > GIVE_UP_SECONDS]
        for key in stuck:
            log.error("live events: the write stamped %s never finished; its promise is let go", key)
            self.cancel(stamp_of(key, "updated"))
        if not self._unsent:
            return
        given_up = [key for key, since in self._unsent.items() if time.monotonic() - since > GIVE_UP_SECONDS]
        if given_up:
            self._drop(given_up, f"the database did not take them for {GIVE_UP_SECONDS:.0f} s")
        keys = sorted(self._unsent)
        events = [event for key in keys if (event := self._pending.get(key)) is not None]
        if events:
            await self.store.events.append(events)
        if keys:
            self._done(keys)

    async def sweep(self) -> None:
        """Let go of what retention no longer keeps: events older than `retention_seconds`, and
        the oldest beyond `retention_count`; then the records of writers long gone."""
        horizon = floor(self.clock.now() - int(self.retention_seconds * 1_000_000))
        if await self.store.events.count() > self.retention_count:
            newest = await self.store.events.newest_keys(skip=self.retention_count)
            if newest is not None:
                horizon = max(horizon, newest)
        current = await self.store.events.horizon()
        if current is None or horizon > current:
            await self.store.events.raise_horizon(horizon)
            deleted = await self.store.events.delete_before(horizon)
            if deleted:
                log.info("live events: %d older than the retention let go", deleted)
        # Writers long silent: what their images' stamps hold goes into the journal (whoever
        # followed them did so already), then they are forgotten.
        now = datetime.now(UTC)
        writers = await self.store.events.writers()
        gone = {
            writer["_id"]: floor(int(writer["promise"]))
            for writer in writers
            if writer["_id"] != self.writer and now - _at(writer) > FORGET_WRITERS_AFTER
        }
        if gone:
            await recover(self.store, gone)
            await self.store.events.forget_writers(list(gone))

    async def close(self, *, wait: float = 5.0) -> None:
        """Stop beating; events still unsent get `wait` seconds; then leave the writers, so that no
        follower waits for this process's promise."""
        # Not cancelled mid-call: a call cancelled while its connection opened left the socket
        # open (PyMongo 4.20). It ends between beats, or within the database's own timeout.
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        deadline = time.monotonic() + wait
        while self._unsent and time.monotonic() < deadline:
            try:
                with self.store.errors():
                    await self._retry_unsent()
            except ServiceError:
                await asyncio.sleep(0.2)
        try:
            with self.store.errors():
                await self.store.events.forget_writers([self.writer])
        except ServiceError as error:
            log.warning("could not leave the event writers (followers give this process up later): %s", error.detail)


def _at(writer: Mapping[str, Any]) -> datetime:
    at: datetime = writer["at"]
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _age(writer: Mapping[str, Any], now: datetime) -> float:
    return (now - _at(writer)).total_seconds()
