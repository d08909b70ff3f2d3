"""Facets: the values one field takes over the matching images, with how many images take each.

An image counts once for each value it has: once for a plain value, once for each distinct
element of an array (so `["cat", "dog"]` counts for both, and `["dog", "dog"]` once for
`dog`). Values are ordered by count, most frequent first, then by value. The store counts them
(app/store/value_counts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Facet:
    value: Any
    count: int


def as_facets(counts: list[tuple[Any, int]]) -> list[Facet]:
    return [Facet(value=value, count=count) for value, count in counts]
