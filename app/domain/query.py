"""The safe query compiler: user input in, a MongoDB query that can only read images out.

Three inputs end here: REST query parameters (`parse_query_params`), the REST `filter` JSON and
GraphQL's `where` (`check_filter`), and GraphQL's typed filter inputs (built from
`field_condition` and `all_of`/`any_of`). Whatever the input, the result passes `check_filter`,
which knows the operator whitelist; the caller's scope is ANDed on top (`scoped`) as the last
step, so no user input can widen it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.domain.metadata import (
    check_count,
    check_int64,
    check_skip,
    check_text,
    parse_json,
    parse_object_id,
    parse_time,
)
from app.domain.scope import Scope
from app.errors import BadInput

# Query operators only: nothing that runs code ($where, $function, $accumulator), compares
# fields with each other ($expr), or changes documents.
LOGICAL_OPERATORS = frozenset({"$and", "$or", "$nor"})
FIELD_OPERATORS = frozenset(
    {
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
        "$regex", "$options", "$not", "$all", "$elemMatch", "$size", "$type",
    }
)  # fmt: skip
ALLOWED_OPERATORS = LOGICAL_OPERATORS | FIELD_OPERATORS
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

DEFAULT_LIMIT = 100
MAX_REGEX_LENGTH = 512
MAX_FILTER_DEPTH = 16
# Databases cap a sort at 32 keys (some answer more with an internal error); with `_id` added
# to break ties, this leaves room.
MAX_SORT_KEYS = 16
MAX_LIST_LENGTH = 10_000
REGEX_OPTIONS = set("imsx")
BSON_TYPE_NAMES = frozenset(
    {
        "double", "string", "object", "array", "binData", "objectId", "bool", "date", "null",
        "regex", "int", "timestamp", "long", "decimal", "number",
    }
)  # fmt: skip

# Parameters with a meaning of their own; any other `key=value` matches `data.key`.
RESERVED_PARAMETERS = frozenset(
    {"skip", "limit", "sort", "order", "from", "to", "file", "regex", "ids", "ids[]", "filter", "select"}
    | {"counts", "after", "view"}  # facets, cursor paging, saved views: after the legacy service
)
# The training formats' options and a signed link's `signature`: reserved on `/export` only.
ARCHIVE_PARAMETERS = frozenset({"format", "split", "splits", "labelField", "boxesField", "shardSize", "signature"})
_TRUE = {"", "1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INTEGER = re.compile(r"^-?\d{1,18}$")
_DECIMAL = re.compile(r"^-?\d+\.\d+(e-?\d+)?$", re.IGNORECASE)


# What the REST parameters accept, as JSON Schema patterns for the OpenAPI document (a generated
# client then cannot send what will be refused); each mirrors the parser named beside it.
_SEGMENT = r"[^\s,.$\x00][^\s,.\x00]*"  # check_path, inside a list split at spaces and commas
_FIRST_SEGMENT = r"[^\s,.$\x00+-][^\s,.\x00]*"  # the first, after the signs lstrip takes off
_SIGNED_PATH = rf"[-+]*{_FIRST_SEGMENT}(?:\.{_SEGMENT})*"
# check_path, of a name given alone (empty: the default)
FIELD_PATH_PATTERN = r"^(?:[^.$\x00][^.\x00]*(?:\.[^.$\x00][^.\x00]*)*)?$"
# parse_sort
SORT_PATTERN = rf"^[\s,]*(?:{_SIGNED_PATH}(?:[\s,]+{_SIGNED_PATH}){{0,15}}[\s,]*)?$"
ORDER_PATTERN = (
    r"^\s*(?:1|-1|[aA][sS][cC](?:[eE][nN][dD][iI][nN][gG])?|[dD][eE][sS][cC](?:[eE][nN][dD][iI][nN][gG])?)\s*$"
)
# _parse_flag
FLAG_PATTERN = r"^(?:|1|0|[tT][rR][uU][eE]|[yY][eE][sS]|[oO][nN]|[fF][aA][lL][sS][eE]|[nN][oO]|[oO][fF][fF])$"
# the `ids` parameter: comma-separated ids, empty parts skipped
IDS_PATTERN = r"^(?:\s*[0-9a-fA-F]{24}\s*)?(?:,(?:\s*[0-9a-fA-F]{24}\s*)?)*$"
# parse_select: fields to include, or fields to exclude (`-`), `_id` either way in both
_INCLUDED = rf"(?:\+*{_FIRST_SEGMENT}(?:\.{_SEGMENT})*|[-+]*_id)"
_EXCLUDED = rf"(?:-[-+]*{_FIRST_SEGMENT}(?:\.{_SEGMENT})*|[-+]*_id)"
SELECT_PATTERN = rf"^[\s,]*(?:(?:{_INCLUDED}(?:[\s,]+{_INCLUDED})*|{_EXCLUDED}(?:[\s,]+{_EXCLUDED})*)[\s,]*)?$"
# check_path, for one path given whole (a path parameter: no '/' either)
PATH_PATTERN = r"^[^./$\x00][^./\x00]*(?:\.[^./$\x00][^./\x00]*)*$"


@dataclass(frozen=True, kw_only=True)
class ImageQuery:
    """A compiled query, before the caller's scope is added."""

    filter: dict[str, Any] = field(default_factory=dict)
    # Empty: the database's natural order, as the legacy service asked (see `build_sort`).
    sort: list[tuple[str, int]] = field(default_factory=list)
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    projection: dict[str, int] | None = None
    select: list[str] = field(default_factory=list)
    # Cursor paging (app/domain/datasets/cursors.py): the cursor to start after; "" starts a walk.
    after: str | None = None


# -- REST query parameters -------------------------------------------------------------------


def parse_query_params(
    params: Iterable[tuple[str, str]], *, max_limit: int, reserved: frozenset[str] = RESERVED_PARAMETERS
) -> ImageQuery:
    """Compile the legacy service's query parameters (README's table); `reserved`: not metadata."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)

    def single(name: str) -> str | None:
        given = values.get(name)
        return given[-1] if given else None

    use_regex = _parse_flag(single("regex"), name="regex")
    conditions: list[dict[str, Any]] = []

    if (file := single("file")) is not None:
        conditions.append({"file": _regex(file, name="file") if use_regex else file})
    time_range: dict[str, datetime] = {}
    if (start := single("from")) is not None:
        time_range["$gte"] = parse_time(start, name="from")
    if (end := single("to")) is not None:
        time_range["$lte"] = parse_time(end, name="to")
    if time_range:
        conditions.append({"time": time_range})
    ids = [part for value in values.get("ids", []) + values.get("ids[]", []) for part in value.split(",") if part]
    if ids:
        conditions.append({"_id": {"$in": [_parse_id(text, name="ids") for text in ids]}})
    if (text := single("filter")) is not None:
        conditions.append(parse_filter_json(text))

    for name, given in values.items():
        if name in reserved:
            continue
        path = f"data.{check_path(name, what='query parameter')}"
        if use_regex:
            matches = [{path: _regex(value, name=name)} for value in given]
            conditions.append(matches[0] if len(matches) == 1 else {"$or": matches})
        else:
            forms = [form for value in given for form in _plain_value_forms(value)]
            # One value as plain equality: the form every engine can push down or use an index
            # for (not every engine does so for `$in`).
            conditions.append({path: forms[0] if len(forms) == 1 else {"$in": forms}})

    sort = parse_sort(single("sort"), single("order"))
    skip = check_skip(_parse_count(single("skip"), name="skip", default=0, minimum=0, maximum=None))
    limit = _parse_count(single("limit"), name="limit", default=DEFAULT_LIMIT, minimum=1, maximum=max_limit)
    select, projection = parse_select(single("select"))
    after = single("after")
    if after is not None and skip:
        raise BadInput("skip and after cannot be combined: a cursor already says where the page starts.")
    return ImageQuery(
        filter=check_filter(all_of(conditions)),
        sort=sort,
        skip=skip,
        limit=limit,
        projection=projection,
        select=select,
        after=after,
    )


def _parse_flag(text: str | None, *, name: str) -> bool:
    if text is None:
        return False
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise BadInput(f"{name} must be true or false, not {text!r}.")


def _parse_count(text: str | None, *, name: str, default: int, minimum: int, maximum: int | None) -> int:
    if text is None or text == "":
        return default
    try:
        number = int(text)
    except ValueError:
        raise BadInput(f"{name} must be a whole number, not {text!r}.") from None
    return check_count(number, name=name, minimum=minimum, maximum=maximum)


def _parse_id(text: str, *, name: str) -> ObjectId:
    try:
        return parse_object_id(text.strip())
    except BadInput:
        raise BadInput(
            f"{name} contains {text!r}, which is not a valid image id (24 hexadecimal characters)."
        ) from None


def _plain_value_forms(value: str) -> list[Any]:
    """`?count=2` matches the string "2" and the number 2: form fields arrive as text, but
    metadata set through JSON keeps its numbers and booleans."""
    forms: list[Any] = [value]
    lowered = value.lower()
    if lowered in ("true", "false"):
        forms.append(lowered == "true")
    elif lowered == "null":
        forms.append(None)
    elif _INTEGER.match(value):
        forms.append(int(value))
    elif _DECIMAL.match(value) and math.isfinite(number := float(value)):
        forms.append(number)
    return forms


def _regex(pattern: str, *, name: str) -> dict[str, str]:
    return {"$regex": check_regex(pattern, name=name), "$options": "i"}


def parse_sort(fields: str | None, order: str | None) -> list[tuple[str, int]]:
    """`sort=time&order=-1`, or several keys `sort=-time,file`; `_id` breaks ties so pages are stable.
    `order` alone orders by `_id`; neither is the natural order (`build_sort`)."""
    direction = _parse_direction(order) if order is not None else 1
    keys: list[tuple[str, int]] = []
    for item in re.split(r"[\s,]+", fields or ""):
        if item:
            keys.append((item.lstrip("-+"), -direction if item.startswith("-") else direction))
    if not keys and order is not None:
        keys.append(("_id", direction))
    return build_sort(keys)


def build_sort(keys: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Checked sort keys, with `_id` appended to break ties so that pages are stable.

    No keys, no sort: documents come in the database's natural order, which is insertion
    order on every engine the store runs on, and stable under updates, as the legacy service
    served them. Any sort may cost the database a read and sort of every match before the first
    document, where the natural order stops after `limit`.
    """
    checked = [(check_path(path, what="sort field"), direction) for path, direction in keys]
    if len(checked) > MAX_SORT_KEYS:
        raise BadInput(f"At most {MAX_SORT_KEYS} sort keys can be given; got {len(checked)}.")
    if checked and not any(path == "_id" for path, _ in checked):
        checked.append(("_id", checked[0][1]))
    return checked


def _parse_direction(text: str) -> int:
    lowered = text.strip().lower()
    if lowered in ("1", "asc", "ascending"):
        return 1
    if lowered in ("-1", "desc", "descending"):
        return -1
    raise BadInput(f"order must be 1, -1, asc or desc, not {text!r}.")


def parse_select(text: str | None) -> tuple[list[str], dict[str, int] | None]:
    """`select=file time` or `select=-data`: the field list as given, and a MongoDB projection."""
    fields = [item for item in re.split(r"[\s,]+", text or "") if item]
    if not fields:
        return [], None
    projection = {
        check_path(item.lstrip("-+"), what="select field"): 0 if item.startswith("-") else 1 for item in fields
    }
    kinds = {value for path, value in projection.items() if path != "_id"}
    if len(kinds) > 1:
        raise BadInput("select cannot mix fields to include with fields to exclude ('-field'), except _id.")
    # `data` with `data.label` asks for `data`: some engines refuse a projection naming both, so
    # the longer one goes, on all.
    return fields, {path: value for path, value in projection.items() if not _has_parent_in(path, projection)}


def _has_parent_in(path: str, paths: Mapping[str, Any]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:end]) in paths for end in range(1, len(parts)))


# -- filter JSON -----------------------------------------------------------------------------


def parse_filter_json(text: str) -> dict[str, Any]:
    value = parse_json(text, name="filter")
    if not isinstance(value, dict):
        raise BadInput('filter must be a JSON object such as {"data.label": "cat"}.')
    return check_filter(value)


def check_filter(value: Any) -> dict[str, Any]:
    """Validate a MongoDB-style query against the whitelist; return it with `time` strings as
    dates and `_id` strings as ObjectIds. BadInput names the first offending operator or field."""
    if not isinstance(value, Mapping):
        raise BadInput("A filter must be a JSON object.")
    return _check_query(value, depth=0)


def _check_query(query: Mapping[str, Any], *, depth: int) -> dict[str, Any]:
    if depth > MAX_FILTER_DEPTH:
        raise BadInput(f"The filter is nested more than {MAX_FILTER_DEPTH} levels deep.")
    checked: dict[str, Any] = {}
    for key, value in query.items():
        if not isinstance(key, str):
            raise BadInput("Filter keys must be strings.")
        if key.startswith("$"):
            _require_allowed(key)
            if key not in LOGICAL_OPERATORS:
                raise BadInput(f'{key} must be applied to a field, as in {{"data.x": {{"{key}": ...}}}}.')
            if not isinstance(value, list) or not value or not all(isinstance(item, Mapping) for item in value):
                raise BadInput(f"{key} needs a non-empty list of conditions.")
            _check_length(value, key)
            checked[key] = [_check_query(item, depth=depth + 1) for item in value]
        else:
            path = check_path(key, what="filter field")
            checked[path] = _check_condition(path, value, depth=depth + 1)
    return checked


def _check_condition(path: str, value: Any, *, depth: int) -> Any:
    """What may stand after a field: a literal, or an object of operators."""
    if depth > MAX_FILTER_DEPTH:
        raise BadInput(f"The filter is nested more than {MAX_FILTER_DEPTH} levels deep.")
    if isinstance(value, Mapping) and any(isinstance(key, str) and key.startswith("$") for key in value):
        return _check_operators(path, value, depth=depth)
    return _check_literal(path, value, depth=depth)


def _check_operators(path: str, operators: Mapping[str, Any], *, depth: int) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for operator, operand in operators.items():
        if not isinstance(operator, str) or not operator.startswith("$"):
            raise BadInput(f"{path}: cannot mix operators with plain fields ({operator!r}).")
        _require_allowed(operator)
        if operator in LOGICAL_OPERATORS:
            raise BadInput(f"{operator} combines whole conditions; it cannot stand inside {path}.")
        checked[operator] = _check_operand(path, operator, operand, depth=depth)
    if "$options" in checked and "$regex" not in checked:
        raise BadInput(f"{path}: $options needs $regex.")
    return checked


def _check_operand(path: str, operator: str, operand: Any, *, depth: int) -> Any:
    if operator in ("$in", "$nin", "$all"):
        if not isinstance(operand, list):
            raise BadInput(f"{path}: {operator} needs a list.")
        _check_length(operand, operator)
        return [_check_literal(path, item, depth=depth + 1) for item in operand]
    if operator == "$regex":
        if not isinstance(operand, str):
            raise BadInput(f"{path}: $regex needs a string.")
        return check_regex(operand, name=path)
    if operator == "$options":
        if not isinstance(operand, str) or not set(operand) <= REGEX_OPTIONS:
            raise BadInput(f"{path}: $options may only hold the letters i, m, s and x.")
        return operand
    if operator == "$exists":
        if not isinstance(operand, (bool, int)):
            raise BadInput(f"{path}: $exists needs true or false.")
        return bool(operand)
    if operator == "$size":
        if isinstance(operand, bool) or not isinstance(operand, int) or operand < 0:
            raise BadInput(f"{path}: $size needs a whole number of at least 0.")
        return operand
    if operator == "$type":
        names = operand if isinstance(operand, list) else [operand]
        if not names:
            raise BadInput(f"{path}: $type needs a type name.")
        for name in names:
            known_name = isinstance(name, str) and name in BSON_TYPE_NAMES
            if not (known_name or (isinstance(name, int) and not isinstance(name, bool))):
                raise BadInput(f"{path}: $type {name!r} is not a known type name.")
        return operand
    if operator == "$not":
        if isinstance(operand, Mapping) and operand:
            return _check_operators(path, operand, depth=depth + 1)
        raise BadInput(f'{path}: $not needs an object of operators, such as {{"$regex": "^a"}}.')
    if operator == "$elemMatch":
        if not isinstance(operand, Mapping) or not operand:
            raise BadInput(f"{path}: $elemMatch needs an object of conditions.")
        if all(isinstance(key, str) and key.startswith("$") for key in operand):
            return _check_operators(path, operand, depth=depth + 1)
        return _check_query(operand, depth=depth + 1)
    # $eq $ne $gt $gte $lt $lte: a literal
    return _check_literal(path, operand, depth=depth + 1)


def _check_literal(path: str, value: Any, *, depth: int) -> Any:
    if depth > MAX_FILTER_DEPTH:
        raise BadInput(f"The filter is nested more than {MAX_FILTER_DEPTH} levels deep.")
    if isinstance(value, Mapping):
        # An exact sub-document: its keys are data, but '$' keys would smuggle in operators.
        for key in value:
            if not isinstance(key, str) or key.startswith("$") or "\x00" in key:
                raise BadInput(f"{path}: {key!r} cannot be used inside a value to compare with.")
            check_text(key, what=f"A key of the value compared with {path}")
        return {key: _check_literal(path, item, depth=depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        _check_length(value, path)
        return [_check_literal(path, item, depth=depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{path}: {value} cannot be compared; use a finite number.")
    if isinstance(value, str):
        return _typed_string(path, check_text(value, what=f"The value compared with {path}"))
    if isinstance(value, int) and not isinstance(value, bool):
        return check_int64(value, path=path)
    if value is None or isinstance(value, (bool, float, datetime, ObjectId)):
        return value
    raise BadInput(f"{path}: values of type {type(value).__name__} cannot be compared.")


def _typed_string(path: str, value: str) -> Any:
    # JSON has no dates or ObjectIds; a string compared with `time` or `_id` means one.
    if path in ("time", "exif.takenAt"):
        return parse_time(value, name=f"{path} in filter")
    if path == "_id":
        return _parse_id(value, name="_id in filter")
    return value


def _require_allowed(operator: str) -> None:
    if operator not in ALLOWED_OPERATORS:
        raise BadInput(f"The operator {operator} is not allowed in a filter.")


def _check_length(items: list[Any], where: str) -> None:
    if len(items) > MAX_LIST_LENGTH:
        raise BadInput(f"{where} holds more than {MAX_LIST_LENGTH} items.")


def check_regex(pattern: str, *, name: str) -> str:
    check_text(pattern, what=f"The regular expression for {name}")
    if len(pattern) > MAX_REGEX_LENGTH:
        raise BadInput(f"The regular expression for {name} is longer than {MAX_REGEX_LENGTH} characters.")
    try:
        re.compile(pattern)
    except re.error as error:
        raise BadInput(f"The regular expression for {name} is invalid: {error}.") from None
    return pattern


def check_path(path: str, *, what: str) -> str:
    """A field path such as `data.camera.iso`: dotted names, none empty or starting with '$'."""
    if not path or "\x00" in path:
        raise BadInput(f"The {what} name is empty or contains NUL.")
    check_text(path, what=f"The {what} name")
    for segment in path.split("."):
        if not segment:
            raise BadInput(f"The {what} {path!r} has an empty part.")
        if segment.startswith("$"):
            raise BadInput(f"The {what} {path!r} must not start a part with '$'.")
    return path


# -- typed conditions (GraphQL's filter inputs) ----------------------------------------------


def ids_condition(ids: Iterable[str]) -> dict[str, Any]:
    given = list(ids)
    _check_length(given, "ids")
    return {"_id": {"$in": [_parse_id(text, name="ids") for text in given]}}


def file_condition(*, eq: str | None = None, contains: str | None = None, regex: str | None = None) -> dict[str, Any]:
    """`eq` exact; `contains` a case-insensitive substring (literal); `regex` a regular expression."""
    conditions: list[dict[str, Any]] = []
    if eq is not None:
        conditions.append({"file": eq})
    if contains is not None:
        conditions.append({"file": {"$regex": re.escape(contains), "$options": "i"}})
    if regex is not None:
        conditions.append({"file": {"$regex": check_regex(regex, name="file")}})
    return all_of(conditions)


def checksum_condition(checksum: str) -> dict[str, Any]:
    """Images whose file has this SHA-256: 64 hexadecimal characters, either case."""
    if not SHA256_HEX.fullmatch(checksum):
        raise BadInput("A checksum is a SHA-256: 64 hexadecimal characters.")
    return {"checksum": checksum.lower()}


def field_condition(path: str, operators: Mapping[str, Any]) -> dict[str, Any]:
    """`{"gt": 1, "lte": 5}` on `path` → `{path: {"$gt": 1, "$lte": 5}}`, checked like any filter."""
    if not operators:
        return {}
    condition = {check_path(path, what="filter field"): {f"${name}": value for name, value in operators.items()}}
    return check_filter(condition)


def none_of(conditions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    present = [dict(condition) for condition in conditions if condition]
    return {"$nor": present} if present else {}


# -- combining -------------------------------------------------------------------------------


def all_of(conditions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    present = [dict(condition) for condition in conditions if condition]
    if not present:
        return {}
    if len(present) == 1:
        return present[0]
    return {"$and": present}


def any_of(conditions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    present = [dict(condition) for condition in conditions]
    if not present:
        raise BadInput("An 'or' needs at least one condition.")
    return present[0] if len(present) == 1 else {"$or": present}


def scoped(query_filter: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """The filter as run: the caller's scope ANDed on top, so the filter can only narrow it."""
    return all_of([query_filter, scope.condition()])
