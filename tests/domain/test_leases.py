"""How long a writer waits for a path's lease: until its holder dies, not past a live holder.

The holder is a real process (tests/utils/lease_holder.py) on the test's database, killed with
SIGKILL as a crash would; lease times are short (TTL, WAIT) so that each test takes seconds.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.writes.leases import Leases, path_key
from app.errors import Conflict
from app.store.leases import COLLECTION, LeaseStore
from tests.utils.lease_holder import holder

TTL = 2.0  # renewed every 0.67 s
WAIT = TTL  # as in the service: a writer waits as long as a lease lives unrenewed
KEYS = [path_key(f"{index}.png") for index in range(6)]  # their renewals spread over one interval

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # leases only


@pytest.fixture
async def waiters(settings: Settings) -> AsyncIterator[Leases]:
    """The leases of a writer process other than the holder: a client of its own."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    yield Leases(store=LeaseStore(lambda: client[settings.mongodb_database][COLLECTION]), ttl=TTL, wait=WAIT)
    await client.close()


async def take(leases: Leases, key: str) -> float | Conflict:
    """When the lease of `key` was taken (event-loop time), or the Conflict of giving up."""
    try:
        async with leases.hold([key]):
            return asyncio.get_running_loop().time()
    except Conflict as conflict:
        return conflict


# Killed early in the waiters' wait (some holders renewed since they began, some not), after
# every holder renewed, and just before the waiters' own wait runs out: a holder that renewed a
# moment before then leaves a lease that lives about TTL past it.
@pytest.mark.parametrize("killed_after", [0.2 * WAIT, 0.5 * WAIT, 0.9 * WAIT])
async def test_writers_waiting_when_the_holder_is_killed_take_over_its_leases(
    settings: Settings, waiters: Leases, killed_after: float
) -> None:
    with holder(settings.mongodb_uri, settings.mongodb_database, TTL, KEYS) as process:
        async with asyncio.timeout(WAIT + 3 * TTL):
            taking = [asyncio.create_task(take(waiters, key)) for key in KEYS]
            await asyncio.sleep(killed_after)
            assert not any(task.done() for task in taking)  # the holder is alive: they wait
            process.send_signal(signal.SIGKILL)
            killed = asyncio.get_running_loop().time()
            outcomes = await asyncio.gather(*taking)
    assert [outcome for outcome in outcomes if isinstance(outcome, Conflict)] == []
    assert all(isinstance(taken, float) and taken > killed for taken in outcomes)


async def test_a_writer_gives_up_on_a_live_holder_after_about_its_wait(settings: Settings, waiters: Leases) -> None:
    with holder(settings.mongodb_uri, settings.mongodb_database, TTL, KEYS[:1]) as process:
        loop = asyncio.get_running_loop()
        began = loop.time()
        outcome = await asyncio.wait_for(take(waiters, KEYS[0]), WAIT + 3 * TTL)
        waited = loop.time() - began
        assert process.poll() is None  # it held the lease throughout
    assert isinstance(outcome, Conflict)
    # Not before its wait; and on seeing the holder renew, not once the lease would have run out.
    assert WAIT <= waited < WAIT + TTL
