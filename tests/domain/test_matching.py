"""The service's own filter evaluator, held to the per-element reference table."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.domain.datasets.events.hub import Hub, ImageEvent
from app.domain.query import scoped
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


def test_live_events_are_matched_as_the_manual_says() -> None:
    # The matcher the subscriptions use, through the hub that hands events out: one subscriber
    # per case, every document delivered once.
    hub = Hub(queue_size=len(DOCUMENTS))
    subscribers = {case.name: hub.add(scoped(case.filter, EVERYONE), after="") for case in CASES}
    for index, document in enumerate(DOCUMENTS):
        hub.deliver(ImageEvent(id=f"{index + 1:022x}", kind="created", document=document))
    received = {
        name: [event.document["_id"] for event in drained(subscriber.queue)] for name, subscriber in subscribers.items()
    }
    assert received == {case.name: case.expected for case in CASES}


def drained(queue: asyncio.Queue[ImageEvent | None]) -> list[ImageEvent]:
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None  # no subscriber overflowed
        events.append(event)
    return events


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
