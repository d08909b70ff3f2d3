"""The service's own filter evaluator, held to the per-element reference table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.domain.datasets.events import Events, ImageEvent
from app.domain.scope import EVERYONE
from app.store.matching import matches
from tests.utils.per_element import CASES, DOCUMENTS, Case


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_evaluator_answers_as_the_manual_says(case: Case) -> None:
    assert [document["_id"] for document in DOCUMENTS if matches(case.filter, document)] == case.expected


def test_the_table_is_large_enough_and_sourced() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)
    assert all(case.source.startswith("https://www.mongodb.com/docs/manual/") for case in CASES)
    assert sum("$elemMatch" in str(case.filter) for case in CASES) >= 30


async def test_live_events_are_matched_as_the_manual_says() -> None:
    # The matcher the subscriptions use, through Events itself: one subscriber per case, every
    # document published once.
    events = Events()
    streams = [(case, events.subscribe(EVERYONE, case.filter)) for case in CASES]
    received: dict[str, list[str]] = {case.name: [] for case in CASES}

    async def collect(case: Case, stream: AsyncIterator[ImageEvent]) -> None:
        async for event in stream:
            received[case.name].append(event.document["_id"])

    tasks = [asyncio.create_task(collect(case, stream)) for case, stream in streams]
    while events.subscribers < len(CASES):
        await asyncio.sleep(0)
    events.publish("created", DOCUMENTS)
    for _ in range(3):  # each collector takes what its queue holds
        await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert {name: ids for name, ids in received.items()} == {case.name: case.expected for case in CASES}


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {"a": 1, "b": 0}),  # a document that runs out first is the smaller
        ({"a": 9}, {"b": 0}),  # then by key name
        ({"a": 9}, {"a": "x"}),  # first by the value's type: numbers before strings
        ({"a": {"b": 1}}, {"a": {"b": 1.5}}),
        ({"a": [1, 2]}, {"a": [1, 3]}),  # arrays inside, element by element
        ({"a": [1, 2]}, {"a": [1, 2, 0]}),
    ],
)
def test_documents_are_ordered_as_mongodb_orders_them(smaller: dict[str, Any], larger: dict[str, Any]) -> None:
    # https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/ (Objects)
    document = {"data": {"v": larger}}
    assert matches({"data.v": {"$gt": smaller}}, document)
    assert not matches({"data.v": {"$lt": smaller}}, document)
    assert matches({"data.v": {"$gte": larger, "$lte": larger}}, document)
