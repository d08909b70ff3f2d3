"""The filters FerretDB 1.24 answers wrongly, and the wider filter it is asked instead.

Measured against the per-element reference table (tests/fixtures/per_element_queries.json,
answers from MongoDB's manual), FerretDB 1.24 gets 45 of its 102 cases wrong:

- `$elemMatch` with field conditions matches nothing, and with two of them fails ("unknown
  operator: label"); with operator conditions on numbers (`{"$gte": 0.5, "$lt": 0.8}`) it lets
  different elements meet each bound.
- `$ne`, `$nin` and `$not` through a path that crosses an array match documents where some
  element differs, where MongoDB wants none to be equal.
- Equality with null through an array counts an empty array as null and misses an element
  without the field.
- Two operators on one path (`{"$gt": 45, "$lt": 60}`) are taken on one element, where MongoDB
  lets different elements meet each (not even a wider answer: a narrower one).
- An embedded document's equality, `$exists: false`, `$type`, `$size` and `$all` through arrays
  were not all right either.

What it answers right, case by case in the table: one positive condition per path (equality
with a value other than null, `$in` of such values, one range bound, `$regex`, `$exists: true`),
through arrays too, combined with `$and` and `$or`. So `ask` keeps a filter made only of those,
and otherwise asks for a wider one made of them: every document the filter matches, and some
more, which the store then checks one by one with app/store/matching.py. A condition with no
such part asks for nothing (every document is checked); FerretDB reads every document for any
filter but a lone `_id` anyway (engines/ferretdb.py, "Reads"), so the cost added is the
documents' trip to the service and the check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RANGES = {"$gt", "$gte", "$lt", "$lte"}
# Where an image's document can hold arrays: its metadata, its EXIF and the metadata's keys. The
# store writes every other field as a plain value (app/store/images.py), and on paths without an
# array FerretDB answers every operator right: `{"time": {"$gte": a, "$lt": b}}` is asked as is.
ARRAY_FIELDS = frozenset({"data", "exif", "dataKeys"})


@dataclass(frozen=True)
class Asked:
    pushed: dict[str, Any]  # what FerretDB is asked
    exact: bool  # False: FerretDB's answer holds every match and more; each is checked


def ask(condition: Mapping[str, Any]) -> Asked:
    """What to ask FerretDB for `condition`."""
    parts: list[dict[str, Any]] = []
    exact = True
    for key, operand in condition.items():
        if key == "$and":
            asked = [ask(part) for part in operand]
            exact = exact and all(part.exact for part in asked)
            parts += [part.pushed for part in asked if part.pushed]
        elif key == "$or":
            asked = [ask(part) for part in operand]
            if all(part.exact for part in asked):
                parts.append({"$or": [part.pushed for part in asked]})
            else:
                exact = False
                if all(part.pushed for part in asked):  # else a branch may match anything
                    parts.append({"$or": [part.pushed for part in asked]})
        elif key.startswith("$"):  # $nor: the negation of positive parts is never narrower
            exact = False
        else:
            field_parts, field_exact = _field(key, operand)
            exact = exact and field_exact
            parts += field_parts
    return Asked(pushed=_all_of(parts), exact=exact)


def fields_named(condition: Mapping[str, Any]) -> set[str]:
    """The top-level fields a condition reads: enough of a document to check it."""
    named: set[str] = set()
    for key, operand in condition.items():
        if key in ("$and", "$or", "$nor"):
            for part in operand:
                named |= fields_named(part)
        else:
            named.add(key.split(".", 1)[0])
    return named


def _field(path: str, operand: Any) -> tuple[list[dict[str, Any]], bool]:
    """The positive conditions FerretDB answers right that `{path: operand}` implies, and
    whether they say exactly the same."""
    if path.split(".", 1)[0] not in ARRAY_FIELDS and not (_operators(operand) and "$elemMatch" in operand):
        return [{path: operand}], True
    if not _operators(operand):
        return ([{path: operand}], True) if _plain(operand) else ([], False)
    safe: list[dict[str, Any]] = []
    for name, value in operand.items():
        if _safe(name, value):
            single = {name: value}
            if name == "$regex" and "$options" in operand:
                single["$options"] = operand["$options"]
            safe.append({path: single})
    exact = len(safe) == 1 and len(safe[0][path]) == len(operand)
    widened = list(safe)
    element = operand.get("$elemMatch")
    if isinstance(element, Mapping):
        if _operators(element):
            widened += [{path: {name: value}} for name, value in element.items() if _safe(name, value)]
        else:
            for key, inner in element.items():
                if not key.startswith("$"):
                    inner_parts, _ = _field(f"{path}.{key}", inner)
                    widened += inner_parts
    return widened, exact


def _safe(name: str, value: Any) -> bool:
    if name == "$eq":
        return _plain(value)
    if name == "$in":
        return isinstance(value, list) and bool(value) and all(_plain(item) for item in value)
    if name in RANGES:
        return value is not None and _plain(value)
    if name == "$regex":
        return isinstance(value, str)
    if name == "$exists":
        return value is True
    return False


def _plain(value: Any) -> bool:
    """A value FerretDB compares right: not null, not a document, not an array."""
    return value is not None and not isinstance(value, (Mapping, list))


def _operators(operand: Any) -> bool:
    return isinstance(operand, Mapping) and bool(operand) and all(str(key).startswith("$") for key in operand)


def _all_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts}
