"""Turns between writers of one image: a lease per path, taken by inserting a document.

Every write of an image (upload, metadata change, delete, the start-up backfills) holds the
lease of its path while it reads, decides and writes, so two writers, in one process or in
several on one database, never interleave on one image: the document then always describes
the bytes stored for it, and no change is lost.

Why leases and not conditional updates: the store promises that an insert against a unique
index is atomic (exactly one of 30 inserters wins), not that a conditional update or delete is:
on some engines an update reads the matching documents and writes them back in a second step,
so two processes' updates of one document both "match" and the later silently undoes the
earlier (see the store's engines). So a writer inserts `{_id: <owner>:<key>, key, owner,
expires}` into the leases (app/store/leases.py), whose `key` is unique, and deletes it by `_id`
when done. The `_id` names the holder, not only the key: two writers taking over one dead
holder's lease both read it, and had the new lease the same `_id`, the later writer's delete
(itself a read, then a delete, on such an engine) could remove the lease the earlier one had
just inserted, and both would hold the path.

Within one process, writers of one key first take turns on an asyncio lock (app/domain/
locks.py), so the database only arbitrates between processes. The process's writers also share
their round trips: leases asked for while an insert of leases runs go in the next one, and the
same for releases, so eight concurrent uploads cost about two lease writes, not sixteen
(the embedded database runs one write at a time). A release is not waited for: the write it
guarded is done and acknowledged without it (the process's next writer of that key still
waits for it, as its turn ends with the release).

A process that dies holding a lease leaves it behind: once `expires` has passed, any writer
deletes it and takes its place. Leases held longer than `ttl` (a large upload) are renewed
while they run: every ttl/3, one renewer per process moves the expiry of all it holds. A process
stopped gracefully (`close`) first lets its releases finish. Several keys are taken all at
once or not at all, so two writers of overlapping sets can never hold one each and wait for
the other's.

How long a writer waits: `wait`, and past it until it sees the holder alive or its lease
expire. With `wait` and `ttl` both 30 s, a writer that began waiting before its holder's last
renewal would otherwise give up just before a dead holder's lease expired: the same crash made
some waiters 409 and others 200. So past `wait`, a writer gives up only on seeing a lease
renewed, its `expires` changed since the first look past `wait`: its holder was alive after
the writer's time ran out. A holder that died before then renews no more; its lease expires at
most `ttl` after its last renewal, and the writer takes it over. A live holder renews within
ttl/3, so its waiters give up between `wait` and `wait + ttl/3` (30 to 40 s).

Clocks: a holder writes `expires` by its clock and a waiter judges expiry by its own. Whether
a lease was renewed compares two values one holder wrote, so no clock enters it. Expiry does:
a waiter whose clock is behind the holder's takes a dead lease over that much later, one ahead
that much sooner; a live lease, never less than 2/3 ttl from expiry, is safe unless the clocks
are that far apart. The design assumes clocks within ttl/3 (10 s) of each other: a writer
gives up in any case at `wait + ttl + ttl/3`, by when a lease that was dead at its `wait` has
expired even by a clock that far behind, so a lease written by a wildly wrong clock cannot
hold writers without end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.writes.locks import KeyedLocks
from app.errors import Busy
from app.store.leases import LeaseStore

log = logging.getLogger(__name__)


def lease_id(key: str, owner: str) -> str:
    return f"{owner}:{key}"


def lease_document(key: str, owner: str, expires: datetime) -> dict[str, Any]:
    """The lease `owner` holds on `key` until `expires`."""
    return {"_id": lease_id(key, owner), "key": key, "owner": owner, "expires": expires}


class Leases:
    def __init__(
        self,
        *,
        store: LeaseStore,
        ttl: float = 30.0,
        wait: float = 30.0,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._wait = wait
        self._local = KeyedLocks()
        self._indexed = asyncio.Lock()
        self._has_index = False
        # One renewer for every lease this process holds: a task per hold cost each upload
        # more than its lease's round trips.
        self._held: set[str] = set()
        self._nothing_held = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def hold(self, keys: Iterable[str], *, what: str = "The image") -> AsyncIterator[None]:
        """Hold every key's lease for the block; Busy (a Conflict) if a live writer keeps one past `wait`.

        The leases are released after the block, not within it: a write is acknowledged once
        done, without waiting for its release to reach the database. This process's next
        writer of one of the keys waits for it all the same (the keys' turns end with it)."""
        wanted = sorted(set(keys))
        if not wanted:
            yield
            return
        turns = AsyncExitStack()
        await turns.enter_async_context(self._local.hold_all(wanted))
        try:
            ids = await self._take(wanted, uuid.uuid4().hex, what)
        except BaseException:
            await turns.aclose()
            raise
        self._held.update(ids)
        self._keep_renewing()
        try:
            yield
        finally:
            self._held.difference_update(ids)
            if not self._held:
                self._nothing_held.set()
            releasing = asyncio.create_task(self._release(ids, turns))
            self._releasing.add(releasing)  # a reference, or the task may be collected mid-way
            releasing.add_done_callback(self._releasing.discard)

    async def _release(self, ids: list[str], turns: AsyncExitStack) -> None:
        try:
            await self._store.release(ids)
        finally:
            await turns.aclose()

    async def settled(self) -> None:
        """Wait until every lease released so far is gone from the database."""
        while self._releasing:
            await asyncio.gather(*self._releasing)

    async def close(self) -> None:
        """Let the releases under way finish, and stop renewing."""
        await self.settled()
        if self._renewer is None:
            return
        if self._held:  # a writer still under way as the process stops: it renews no more
            self._renewer.cancel()
        with suppress(asyncio.CancelledError):
            await self._renewer  # else it ends by itself, a renewal under way done first

    async def prepare(self) -> None:
        """Make the unique index that makes a lease exclusive; else done by the first writer."""
        async with self._indexed:
            if self._has_index:
                return
            await self._store.prepare()
            self._has_index = True

    async def _take(self, keys: list[str], owner: str, what: str) -> list[str]:
        """Insert the leases of `keys` for `owner`, waiting for their holders; their `_id`s."""
        await self.prepare()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        last_chance = deadline + self._ttl + self._ttl / 3  # see the docstring's "Clocks"
        seen: dict[str, datetime] = {}  # the blocking leases' `expires`, as first read past the deadline
        attempt = 0
        ids = [lease_id(key, owner) for key in keys]
        while True:
            expires = datetime.now(UTC) + timedelta(seconds=self._ttl)
            documents = [lease_document(key, owner, expires) for key in keys]
            held = await self._store.take(documents, if_abandoned=lambda _: self._store.release(ids))
            taken = {key for key, other in zip(keys, held, strict=True) if other}
            if not taken:
                return ids
            # Some are held by someone else: give back the others, so nobody waits on us meanwhile.
            given_back = [lease_id(key, owner) for key in keys if key not in taken]
            await self._store.give_back(given_back)
            read_at = loop.time()  # before the read: a change seen in a later read was written after it
            blocking = await self._blocking(taken)
            if read_at > deadline:
                renewed = any(seen.setdefault(held, until) != until for held, until in blocking.items())
                if renewed or read_at > last_chance:
                    raise Busy(f"{what} is being changed by another request; try again.")
            await asyncio.sleep(random.uniform(0.002, 0.01 * 2 ** min(attempt, 5)))
            attempt += 1

    async def _blocking(self, keys: set[str]) -> dict[str, datetime]:
        """The live leases of `keys`, by `_id`: when each expires. Expired ones are deleted on the
        way: their holder stopped renewing them (it died)."""
        now = datetime.now(UTC)
        live = {}
        for lease in await self._store.holders(sorted(keys)):
            if lease["expires"] < now:
                log.warning("taking over the expired lease of %r", lease["key"])
                await self._store.drop(lease["_id"])
            else:
                live[lease["_id"]] = lease["expires"]
        return live

    def _keep_renewing(self) -> None:
        self._nothing_held.clear()
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        """Every ttl/3 while anything is held, push the expiry of every held lease a ttl on.

        Never cancelled: a command cancelled under way closes its connection, and the embedded
        database drops the cursors opened on it (a bulk delete failed half-way with "cursor not
        found" when its batch outlasted a renewal). Told to stop by `_nothing_held`."""
        while self._held:
            try:
                await asyncio.wait_for(self._nothing_held.wait(), self._ttl / 3)
                continue  # held again meanwhile, or the loop ends
            except TimeoutError:
                pass
            ids = sorted(self._held)
            expires = datetime.now(UTC) + timedelta(seconds=self._ttl)
            failure = await self._store.renew(ids, expires)
            if failure is not None:
                log.warning("could not renew the leases of %d paths (%s)", len(ids), failure)


def path_key(file: str) -> str:
    """The lease of the image stored at `file` (its storage key)."""
    return f"file:{file}"
