"""Trying again where the service says it may help: `busy`, `unavailable`, `timeout`, and no
answer at all. A `conflict`, a `duplicate` or a bad input is final, and tried once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from imagestore.errors import ImageStoreError

T = TypeVar("T")

ATTEMPTS = 6
FIRST_DELAY = 0.5
LONGEST_DELAY = 20.0


async def retried(attempt: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """`attempt()` until it succeeds, with exponential backoff and full jitter between tries of
    a retryable error (so many workers do not come back at the same instant)."""
    for tried in range(1, attempts + 1):
        try:
            return await attempt()
        except ImageStoreError as error:
            if not error.retryable or tried == attempts:
                raise
        await asyncio.sleep(random.uniform(0, min(LONGEST_DELAY, FIRST_DELAY * 2**tried)))
    raise AssertionError("unreachable")  # the loop returns or raises
