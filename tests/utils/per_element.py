"""The per-element query reference: documents, filters and the ids MongoDB's manual says match.

`tests/fixtures/per_element_queries.json` holds the table; each case names the manual's page it
follows and why. Every evaluator of filters here (the database engines behind REST and GraphQL,
the live-event matcher) is held to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.utils.fixtures import FIXTURES

TABLE = FIXTURES / "per_element_queries.json"


@dataclass(frozen=True)
class Case:
    name: str
    filter: dict[str, Any]
    expected: list[str]  # the documents' `_id`s, in order
    source: str

    def __str__(self) -> str:
        return self.name


def load() -> tuple[list[dict[str, Any]], list[Case]]:
    table = json.loads(TABLE.read_text())
    cases = [Case(case["name"], case["filter"], case["expected"], case["source"]) for case in table["cases"]]
    return table["documents"], cases


DOCUMENTS, CASES = load()
