"""Writers of one key take turns within a process.

Between processes, a lease in the database arbitrates (app/domain/writes/leases.py); but fifty
requests racing on one image in one process would mostly find the lease taken and poll for it.
Taking turns here first leaves the database to arbitrate between processes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class KeyedLocks:
    """One lock per key, made on first use and dropped once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @asynccontextmanager
    async def hold_all(self, keys: Iterable[Hashable]) -> AsyncIterator[None]:
        """Several keys at once, taken in one order (by their text) so two holders never deadlock."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys), key=str):
                await stack.enter_async_context(self.hold(key))
            yield

    def __len__(self) -> int:
        return len(self._locks)
