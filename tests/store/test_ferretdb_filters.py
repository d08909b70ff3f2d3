"""What FerretDB is asked for each per-element reference case: never fewer documents than the
filter matches, and exactly those when the store trusts its answer (engines/ferretdb_filters.py).

If FerretDB answers a case the store checks one by one, nothing breaks; if a new FerretDB
answered a trusted form wrongly, or a wider filter narrower, this says so.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from app.store.engines.ferretdb_filters import Asked, ask
from tests.utils.per_element import CASES, DOCUMENTS


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # the database alone
async def test_ferretdb_is_asked_a_filter_it_answers_right_or_wider(
    raw_database: AsyncDatabase[dict[str, Any]],
) -> None:
    if "ferretdbVersion" not in await raw_database.client.admin.command("buildInfo"):
        pytest.skip("not FerretDB")
    collection = raw_database["images"]
    await collection.insert_many([dict(document) for document in DOCUMENTS])
    trusted = 0
    for case in CASES:
        asked = ask(case.filter)
        found = sorted([document["_id"] async for document in collection.find(asked.pushed, {"_id": 1})])
        if asked.exact:
            trusted += 1
            assert found == case.expected, case.name
        else:
            assert set(case.expected) <= set(found), case.name
    # The forms FerretDB answers right are asked as they are: not everything is checked here.
    assert trusted >= 25


def test_conditions_on_plain_fields_are_asked_as_they_are() -> None:
    # The store writes them as plain values: no array on their path, so FerretDB is right.
    for condition in (
        {"time": {"$gte": 1, "$lt": 2}},
        {"userId": None},
        {"file": {"$ne": "a.png"}},
        {"checksum": {"$exists": False}},
    ):
        assert ask(condition) == Asked(pushed=condition, exact=True)


def test_a_wider_filter_keeps_what_ferretdb_answers_right() -> None:
    asked = ask({"data.boxes": {"$elemMatch": {"label": "cat", "w": {"$gt": 50, "$ne": 60}}}, "time": {"$gte": 1}})
    assert asked == Asked(
        pushed={"$and": [{"data.boxes.label": "cat"}, {"data.boxes.w": {"$gt": 50}}, {"time": {"$gte": 1}}]},
        exact=False,
    )
    assert ask({"$or": [{"data.label": {"$ne": "cat"}}, {"data.n": 1}]}) == Asked(pushed={}, exact=False)
