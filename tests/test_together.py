"""Inserts of concurrent callers sent as one command (app/store/together.py), against the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from app.config import Settings
from app.store.together import InsertsTogether
from tests.utils.commands import recorded

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)


@pytest.fixture
async def things(settings: Settings) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    collection = client[settings.mongodb_database]["things"]
    await collection.create_index("name", unique=True)
    yield collection
    await client.close()


async def test_callers_at_once_share_one_insert_and_each_learns_its_own_fate(
    things: AsyncCollection[dict[str, Any]],
) -> None:
    await things.insert_one({"name": "taken"})
    inserts = InsertsTogether(lambda: things)
    names = [f"n{index}" for index in range(6)] + ["taken", "n0"]
    with recorded() as sent:
        outcomes = await asyncio.gather(*(inserts.insert_one({"name": name}) for name in names), return_exceptions=True)
    assert outcomes[:6] == [None] * 6
    # The path someone had, and the second writer of one path in the batch: refused alone.
    assert [type(outcome) for outcome in outcomes[6:]] == [DuplicateKeyError, DuplicateKeyError]
    assert [command.name for command in sent] == ["insert"]
    assert sorted(document["name"] for document in await things.find().to_list(None)) == sorted(
        [f"n{index}" for index in range(6)] + ["taken"]
    )


async def test_a_document_that_cannot_be_sent_fails_its_caller_alone(
    things: AsyncCollection[dict[str, Any]],
) -> None:
    inserts = InsertsTogether(lambda: things)
    outcomes = await asyncio.gather(
        inserts.insert_one({"name": "a"}),
        inserts.insert_one({"name": "huge", "n": 2**70}),  # no 8-byte integer
        inserts.insert_one({"name": "b"}),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], InvalidDocument)
    assert sorted(document["name"] for document in await things.find().to_list(None)) == ["a", "b"]


async def test_a_cancelled_caller_is_told_what_happened_to_its_documents(
    things: AsyncCollection[dict[str, Any]],
) -> None:
    inserts = InsertsTogether(lambda: things)
    abandoned: asyncio.Queue[list[Any]] = asyncio.Queue()

    async def undo(refusals: list[Any]) -> None:
        await abandoned.put(refusals)

    caller = asyncio.create_task(inserts.insert_many([{"name": "a"}, {"name": "a"}], if_abandoned=undo))
    await asyncio.sleep(0)  # its insert is on its way
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    refusals = await asyncio.wait_for(abandoned.get(), 10)
    assert refusals[0] is None and refusals[1]["code"] == 11000
    assert [document["name"] for document in await things.find().to_list(None)] == ["a"]
