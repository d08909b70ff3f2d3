"""Compiling the typed filter inputs into the domain's safe query (app/domain/query.py).

Nothing here writes MongoDB operators by hand: each part goes through the domain's builders,
and the whole through `check_filter`, the same whitelist REST `filter` passes.
"""

from __future__ import annotations

from typing import Any

import strawberry

from app.domain.metadata import check_count, check_skip
from app.domain.query import (
    ImageQuery,
    all_of,
    any_of,
    build_sort,
    check_filter,
    check_regex,
    checksum_condition,
    field_condition,
    file_condition,
    ids_condition,
    none_of,
)
from app.errors import BadInput
from app.graphql.inputs import DataCondition, ImageFilter, SortInput, TimeFilter

MAX_FILTER_NESTING = 8
MAX_CONDITIONS = 100
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "nin", "exists")


def compile_query(
    image_filter: ImageFilter | None, sort: list[SortInput] | None, skip: int, limit: int, *, max_limit: int
) -> ImageQuery:
    return ImageQuery(
        filter=compile_filter(image_filter),
        sort=build_sort((key.field, key.direction.value) for key in sort or []),
        skip=check_skip(skip),
        limit=check_count(limit, name="limit", minimum=1, maximum=max_limit),
    )


def compile_filter(image_filter: ImageFilter | None) -> dict[str, Any]:
    return check_filter(_compile(image_filter, depth=0)) if image_filter else {}


def _compile(image_filter: ImageFilter, *, depth: int) -> dict[str, Any]:
    if depth > MAX_FILTER_NESTING:
        raise BadInput(f"The filter nests and/or/not more than {MAX_FILTER_NESTING} levels deep.")
    parts: list[dict[str, Any]] = []
    if image_filter.ids is not None:
        parts.append(ids_condition(image_filter.ids))
    if image_filter.file is not None:
        file = image_filter.file
        parts.append(file_condition(eq=file.eq, contains=file.contains, regex=file.regex))
    if image_filter.checksum is not None:
        parts.append(checksum_condition(image_filter.checksum))
    if image_filter.time is not None:
        parts.append(_time_condition(image_filter.time))
    for condition in _limited(image_filter.data, "data"):
        parts.append(_data_condition(condition))
    if image_filter.and_ is not None:
        parts.append(all_of(_compile(item, depth=depth + 1) for item in _limited(image_filter.and_, "and")))
    if image_filter.or_ is not None:
        parts.append(any_of(_compile(item, depth=depth + 1) for item in _limited(image_filter.or_, "or")))
    if image_filter.not_ is not None:
        negated = _compile(image_filter.not_, depth=depth + 1)
        if not negated:
            raise BadInput("'not' needs at least one condition.")
        parts.append(none_of([negated]))
    if image_filter.where is not None:
        parts.append(check_filter(image_filter.where))
    return all_of(parts)


def _limited(items: list[Any] | None, name: str) -> list[Any]:
    if items is not None and len(items) > MAX_CONDITIONS:
        raise BadInput(f"'{name}' holds more than {MAX_CONDITIONS} conditions.")
    return items or []


def _time_condition(time: TimeFilter) -> dict[str, Any]:
    bounds = {name: getattr(time, name) for name in ("gt", "gte", "lt", "lte") if getattr(time, name) is not None}
    return field_condition("time", bounds)


def _data_condition(condition: DataCondition) -> dict[str, Any]:
    operators: dict[str, Any] = {
        name: getattr(condition, name) for name in COMPARISONS if getattr(condition, name) is not strawberry.UNSET
    }
    if condition.in_ is not strawberry.UNSET:
        operators["in"] = condition.in_
    if condition.regex is not strawberry.UNSET and condition.regex is not None:
        operators["regex"] = check_regex(condition.regex, name=condition.path)
        if condition.case_insensitive:
            operators["options"] = "i"
    if not operators:
        raise BadInput(f"The condition on data.{condition.path} names no comparison.")
    return field_condition(f"data.{condition.path}", operators)
