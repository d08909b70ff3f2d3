"""Opening a file or a connection in a worker thread, without leaking it when the caller leaves.

Cancelling a task that awaits `anyio.to_thread.run_sync` cancels the future it waits on at
once (a native asyncio cancellation passes anyio's shield); the thread runs on, and anyio then
drops its result. When that result is an open file or an HTTP response, nobody closes it: a
service shutting down mid-backfill left a file open, found by the garbage collector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from anyio import to_thread

T = TypeVar("T")


async def open_in_thread(opener: Callable[[], T], close: Callable[[T], None]) -> T:
    """`opener()`, run in a worker thread; if the caller stops waiting, what it opened is closed,
    whichever of the two finishes first."""
    lock = threading.Lock()
    opened: list[T] = []
    abandoned = False

    def run() -> T:
        result = opener()
        with lock:
            if abandoned:
                close(result)
            else:
                opened.append(result)
        return result

    try:
        return await to_thread.run_sync(run)
    except BaseException:
        with lock:
            abandoned = True
            for result in opened:
                close(result)
        raise
