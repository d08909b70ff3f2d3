"""Whether one document matches a filter, as MongoDB answers it: the service's own evaluator.

For the filters app/domain/query.py lets through (its operator whitelist), on documents as the
store gives them. Used where the service itself decides a match: live events, and the store's
check of what FerretDB finds for filters it answers wrongly (engines/ferretdb_filters.py). Held to the per-element
reference table (tests/fixtures/per_element_queries.json), whose answers come from MongoDB's
manual; mongomock, used before, answered 5 of its 102 cases otherwise (a dotted range met by two
different elements, `$exists: false` and `$not` through arrays, key order in embedded documents).

The rules that matter, from the manual:

- A dotted path crosses arrays: `data.boxes.label` is tested on the `label` of every element of
  `boxes`, and a condition holds if it holds for one of them. At the end of a path an array is
  tested as a whole and element by element (`{"label": "cat"}` matches `["cat", "dog"]`).
- Each operator on a path is its own condition: `{"$gt": 45, "$lt": 60}` may be met by two
  different elements. `$elemMatch` ties its conditions to one element.
- `$ne`, `$nin`, `$not` and `$exists: false` are the negation of the positive condition over the
  whole path: `{"data.boxes.label": {"$ne": "dog"}}` matches when no box is labelled dog, and
  when there are no boxes.
- Comparisons only compare values of one type bracket: numbers with numbers (a bool is not a
  number), strings with strings; `null` equals null and a missing field.
- Embedded documents are equal only with the same keys in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import bson
from bson import ObjectId

# A value at the end of a path that is not there.
MISSING: Any = object()


class Unanswerable(ValueError):
    """A filter form this evaluator does not answer as MongoDB would: refused, never guessed."""


Test = Callable[[Any], bool]  # a positive condition on one value (MISSING for an absent one)

RANGE_OPERATORS = {"$gt", "$gte", "$lt", "$lte"}
NEGATIONS = {"$ne", "$nin", "$not"}
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def matches(condition: Mapping[str, Any], document: Any) -> bool:
    """Whether `document` matches `condition` (a filter `query.check_filter` accepted)."""
    for key, operand in condition.items():
        if key == "$and":
            if not all(matches(part, document) for part in operand):
                return False
        elif key == "$or":
            if not any(matches(part, document) for part in operand):
                return False
        elif key == "$nor":
            if any(matches(part, document) for part in operand):
                return False
        elif not _path_matches(document, key.split("."), operand):
            return False
    return True


def _path_matches(document: Any, path: list[str], operand: Any) -> bool:
    if not (isinstance(operand, Mapping) and operand and all(str(key).startswith("$") for key in operand)):
        return _anywhere(document, path, _equals_test(operand))
    return all(_operator_matches(document, path, name, value, operand) for name, value in operand.items())


def _operator_matches(document: Any, path: list[str], name: str, value: Any, operators: Mapping[str, Any]) -> bool:
    if name == "$options":
        return True  # read with $regex
    if name == "$ne":
        return not _anywhere(document, path, _equals_test(value))
    if name == "$nin":
        return not _anywhere(document, path, _in_test(value))
    if name == "$not":
        return not all(_operator_matches(document, path, inner, operand, value) for inner, operand in value.items())
    if name == "$exists" and not value:
        return not _anywhere(document, path, _exists)
    if name == "$all":
        return all(_anywhere(document, path, _equals_test(item)) for item in value) if value else False
    return _anywhere(document, path, _positive_test(name, value, operators))


def _anywhere(value: Any, path: Sequence[str], test: Test) -> bool:
    """Whether `test` holds for a value the path reaches from `value`, crossing arrays."""
    if not path:
        return test(value)
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        return _anywhere(value.get(head, MISSING), rest, test)
    if isinstance(value, list):
        if head.isdigit() and int(head) < len(value) and _anywhere(value[int(head)], rest, test):
            return True  # `boxes.0.label`: the first element's
        return any(_anywhere(item, path, test) for item in value if isinstance(item, Mapping))
    return test(MISSING)  # a path on through a scalar, or past a missing field, reaches nothing


# -- positive conditions on the value at the end of a path -----------------------------------


def _positive_test(name: str, value: Any, operators: Mapping[str, Any]) -> Test:
    if name == "$eq":
        return _equals_test(value)
    if name == "$in":
        return _in_test(value)
    if name in RANGE_OPERATORS:
        return _range_test(name, value)
    if name == "$exists":
        return _exists
    if name == "$regex":
        return _regex_test(value, operators.get("$options", ""))
    if name == "$size":
        return lambda found: isinstance(found, list) and len(found) == value
    if name == "$type":
        names = value if isinstance(value, list) else [value]
        return lambda found: _each(found, lambda item: any(_has_type(item, type_name) for type_name in names), True)
    if name == "$elemMatch":
        return _element_test(value)
    raise Unanswerable(f"{name} is not an operator this evaluator knows")


def _each(found: Any, test: Test, whole: bool = False) -> bool:
    """`test` on a value, or on an array's elements (and, with `whole`, on the array itself)."""
    if isinstance(found, list):
        return (whole and test(found)) or any(test(item) for item in found)
    return test(found)


def _equals_test(expected: Any) -> Test:
    if expected is None:
        return lambda found: (
            found is MISSING or found is None or (isinstance(found, list) and any(item is None for item in found))
        )
    return lambda found: found is not MISSING and _each(found, lambda item: _equal(item, expected), whole=True)


def _in_test(candidates: list[Any]) -> Test:
    tests = [_equals_test(candidate) for candidate in candidates]
    return lambda found: any(test(found) for test in tests)


def _exists(found: Any) -> bool:
    return found is not MISSING


def _range_test(name: str, bound: Any) -> Test:
    if isinstance(bound, list):
        raise Unanswerable(f"{name} with an array to compare with")
    if bound is None:  # null is only ever equal to null: `$gte`/`$lte` null are equality
        return _equals_test(None) if name in ("$gte", "$lte") else lambda found: False

    def holds(item: Any) -> bool:
        if item is MISSING or _bracket(item) != _bracket(bound) or _bracket(item) is None:
            return False
        order = _compare(item, bound)
        if name == "$gt":
            return order > 0
        if name == "$gte":
            return order >= 0
        if name == "$lt":
            return order < 0
        return order <= 0

    return lambda found: _each(found, holds)


# MongoDB's order of types, for comparing the values inside documents (its "BSON comparison
# order": numbers together; null, numbers, strings, objects, arrays, ObjectIds, booleans, dates).
_RANKS = {"null": 1, "number": 2, "string": 3, "object": 4, "array": 5, "objectId": 7, "bool": 8, "date": 9}


def _compare(left: Any, right: Any) -> int:
    """-1, 0 or 1: how MongoDB orders two values of one type bracket, documents included
    (pair by pair in their order: the value's type, then the key, then the value; a document
    that runs out first is the smaller)."""
    kind = _bracket(left)
    if kind in ("object", "array"):
        # An array compares as the document of its elements keyed by position (equal keys).
        sides = [dict(enumerate(side)) if kind == "array" else side for side in (left, right)]
        for (left_key, left_value), (right_key, right_value) in zip(sides[0].items(), sides[1].items(), strict=False):
            ranks = _RANKS.get(_bracket(left_value) or "", 0), _RANKS.get(_bracket(right_value) or "", 0)
            if ranks[0] != ranks[1]:
                return -1 if ranks[0] < ranks[1] else 1
            if left_key != right_key:
                return -1 if left_key < right_key else 1
            if ranks[0] == 0:
                raise Unanswerable(f"a comparison of {kind}s holding values of unknown types")
            order = _compare(left_value, right_value)
            if order:
                return order
        return (len(left) > len(right)) - (len(left) < len(right))
    if kind == "null":
        return 0
    a, b = _comparable(left), _comparable(right)
    return int(a > b) - int(a < b)


def _regex_test(pattern: str, options: str) -> Test:
    flags = 0
    for letter in options:
        flags |= REGEX_FLAGS.get(letter, 0)
    compiled = re.compile(pattern, flags)
    return lambda found: _each(found, lambda item: isinstance(item, str) and compiled.search(item) is not None)


def _element_test(condition: Mapping[str, Any]) -> Test:
    """`$elemMatch`: one element of the array meets every condition."""
    if all(str(key).startswith("$") for key in condition):
        # Conditions on the element itself (`{"$gte": 80, "$lt": 85}`).
        def element(item: Any) -> bool:
            return all(_operator_matches(item, [], name, value, condition) for name, value in condition.items())
    else:

        def element(item: Any) -> bool:
            return isinstance(item, Mapping) and matches(condition, item)

    return lambda found: isinstance(found, list) and any(element(item) for item in found)


# -- values ----------------------------------------------------------------------------------


def _bracket(value: Any) -> str | None:
    """The type bracket MongoDB compares within; None for types no range compares."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, ObjectId):
        return "objectId"
    return None


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # the store's times are UTC, with or without a zone
    return value


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, Mapping) or isinstance(right, Mapping):
        if not (isinstance(left, Mapping) and isinstance(right, Mapping)):
            return False
        # Same keys in the same order, as BSON documents compare.
        return list(left) == list(right) and all(_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) or isinstance(right, list):
        return (
            isinstance(left, list)
            and isinstance(right, list)
            and len(left) == len(right)
            and all(_equal(a, b) for a, b in zip(left, right, strict=True))
        )
    if _bracket(left) != _bracket(right):
        return left is None and right is None
    return bool(_comparable(left) == _comparable(right))


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "double": lambda value: isinstance(value, float),
    "string": lambda value: isinstance(value, str),
    "object": lambda value: isinstance(value, Mapping),
    "array": lambda value: isinstance(value, list),
    "objectId": lambda value: isinstance(value, ObjectId),
    "bool": lambda value: isinstance(value, bool),
    "date": lambda value: isinstance(value, datetime),
    "null": lambda value: value is None,
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31,
    "long": lambda value: isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31,
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
}
_TYPE_NUMBERS = {1: "double", 2: "string", 3: "object", 4: "array", 7: "objectId", 8: "bool", 9: "date", 10: "null"}
_TYPE_NUMBERS |= {16: "int", 18: "long"}


def _has_type(value: Any, name: Any) -> bool:
    if isinstance(name, int):
        name = _TYPE_NUMBERS.get(name, "")
    test = _TYPE_TESTS.get(name)
    return value is not MISSING and test is not None and test(value)


# -- what a read shows of the matches -------------------------------------------------------


def projected(document: dict[str, Any], projection: Mapping[str, Any] | None) -> dict[str, Any]:
    """`document` as a find with `projection` (fields shown, or fields left out) returns it."""
    if projection is None:
        return document
    if all(value == 0 for value in projection.values()):
        shown = dict(document)
        for path in projection:
            _drop(shown, path.split("."))
        return shown
    shown = {} if projection.get("_id") == 0 or "_id" not in document else {"_id": document["_id"]}
    for path, value in projection.items():
        if value and path != "_id":
            _copy(document, shown, path.split("."))
    return shown


def _copy(source: Mapping[str, Any], target: dict[str, Any], path: list[str]) -> None:
    if path[0] not in source:
        return
    value = source[path[0]]
    if len(path) == 1:
        target[path[0]] = value
    elif isinstance(value, Mapping):
        _copy(value, target.setdefault(path[0], {}), path[1:])


def _drop(document: dict[str, Any], path: list[str]) -> None:
    if len(path) == 1:
        document.pop(path[0], None)
    elif isinstance(document.get(path[0]), Mapping):
        document[path[0]] = dict(document[path[0]])
        _drop(document[path[0]], path[1:])


def distinct_values(documents: list[dict[str, Any]], field: str) -> list[Any]:
    """Each value at `field` in the documents once, an array's elements singly, as `distinct`."""
    found: dict[Any, Any] = {}
    for document in documents:
        for value in _values_at(document, field.split(".")):
            for item in value if isinstance(value, list) else [value]:
                found.setdefault(_key(item), item)
    return sorted(found.values(), key=_order)


def _values_at(value: Any, path: list[str]) -> list[Any]:
    if not path:
        return [value]
    if isinstance(value, Mapping):
        return _values_at(value[path[0]], path[1:]) if path[0] in value else []
    if isinstance(value, list):
        return [found for item in value if isinstance(item, Mapping) for found in _values_at(item, path)]
    return []


def _key(value: Any) -> Any:
    """Equal for values `distinct` gives once: numbers by value (1 and 1.0), the rest by BSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", value)
    return bson.encode({"v": value})


# MongoDB's order of types.
_TYPE_ORDER = {type(None): 0, int: 1, float: 1, str: 2, dict: 3, list: 4, ObjectId: 5, bool: 6, datetime: 7}


def _order(value: Any) -> tuple[int, Any]:
    rank = _TYPE_ORDER.get(type(value), 8)
    return (rank, value if rank in (1, 2, 6, 7) else str(value))
