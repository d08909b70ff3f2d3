"""The query compiler on its own: parameters and filters in, MongoDB queries (or BadInput) out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import query
from app.domain.metadata import NAME_PATTERN, check_new_name
from app.domain.query import (
    ALLOWED_OPERATORS,
    MAX_REGEX_LENGTH,
    ImageQuery,
    check_filter,
    parse_query_params,
    scoped,
)
from app.domain.scope import Scope
from app.errors import BadInput

ID_A = "6385c4b3a1e2f0c9d8b7a615"
ID_B = "6385c4b3a1e2f0c9d8b7a616"


def compile_query(query_string: str, *, max_limit: int = 1000) -> ImageQuery:
    return parse_query_params(parse_qsl(query_string, keep_blank_values=True), max_limit=max_limit)


# -- parameters ----------------------------------------------------------------------------


def test_no_parameters_means_everything_first_page() -> None:
    query = compile_query("")
    assert query.filter == {}
    assert (query.skip, query.limit) == (0, 100)
    assert query.sort == []  # the natural order, as the legacy service asked for
    assert query.projection is None


def test_legacy_gui_list_call() -> None:
    query = compile_query("limit=20&skip=40&sort=time&order=-1&label=cat")
    assert query.filter == {"data.label": "cat"}  # plain equality: every engine pushes it down
    assert (query.skip, query.limit) == (40, 20)
    assert query.sort == [("time", -1), ("_id", -1)]


@pytest.mark.parametrize(
    ("value", "forms"),
    [("2", ["2", 2]), ("-7", ["-7", -7]), ("2.5", ["2.5", 2.5]), ("true", ["true", True]), ("null", ["null", None])],
)
def test_plain_values_also_match_numbers_and_booleans(value: str, forms: list[Any]) -> None:
    assert compile_query(f"count={value}").filter == {"data.count": {"$in": forms}}


def test_repeated_key_matches_any_value() -> None:
    assert compile_query("label=cat&label=dog").filter == {"data.label": {"$in": ["cat", "dog"]}}


def test_regex_turns_matches_case_insensitive() -> None:
    query = compile_query("regex=true&label=ca&file=JPG")
    assert query.filter == {
        "$and": [{"file": {"$regex": "JPG", "$options": "i"}}, {"data.label": {"$regex": "ca", "$options": "i"}}]
    }


def test_time_range_is_inclusive_dates() -> None:
    query = compile_query("from=2022-01-01&to=2022-12-31T23:59:59.999Z")
    assert query.filter == {
        "time": {
            "$gte": datetime(2022, 1, 1, tzinfo=UTC),
            "$lte": datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        }
    }


@pytest.mark.parametrize("spelling", [f"ids={ID_A}&ids={ID_B}", f"ids={ID_A},{ID_B}", f"ids[]={ID_A}&ids[]={ID_B}"])
def test_ids_in_three_spellings(spelling: str) -> None:
    assert compile_query(spelling).filter == {"_id": {"$in": [ObjectId(ID_A), ObjectId(ID_B)]}}


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("time", "1", [("time", 1), ("_id", 1)]),
        ("time", "asc", [("time", 1), ("_id", 1)]),
        ("time", "desc", [("time", -1), ("_id", -1)]),
        ("-data.count,file", None, [("data.count", -1), ("file", 1), ("_id", -1)]),
        ("_id", "-1", [("_id", -1)]),
        ("", "-1", [("_id", -1)]),
    ],
)
def test_sort_and_order(sort: str, order: str | None, expected: list[tuple[str, int]]) -> None:
    query_string = f"sort={sort}" + (f"&order={order}" if order else "")
    assert compile_query(query_string).sort == expected


@pytest.mark.parametrize(
    ("select", "projection"),
    [("file time", {"file": 1, "time": 1}), ("file,data.label", {"file": 1, "data.label": 1}), ("-data", {"data": 0})],
)
def test_select_becomes_a_projection(select: str, projection: dict[str, int]) -> None:
    query = compile_query(f"select={select}")
    assert query.projection == projection
    assert query.select == select.replace(",", " ").split()


@pytest.mark.parametrize(
    ("query_string", "message"),
    [
        ("limit=5000", "limit must be between 1 and 1000"),
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=ten", "limit must be a whole number"),
        ("skip=-1", "skip must be at least 0"),
        ("order=sideways&sort=time", "order must be"),
        ("from=yesterday", "from 'yesterday' is not an ISO-8601 date"),
        ("to=2022-13-01", "to '2022-13-01' is not an ISO-8601 date"),
        ("ids=abc", "ids contains 'abc'"),
        (f"ids[]={ID_A},nope", "ids contains 'nope'"),
        ("regex=maybe", "regex must be true or false"),
        ("regex=true&label=(unclosed", "regular expression for label is invalid"),
        (f"regex=true&label={'a' * (MAX_REGEX_LENGTH + 1)}", "longer than"),
        ("select=file -data", "cannot mix"),
        ("select=$where", "must not start a part with '$'"),
        ("sort=$natural", "must not start a part with '$'"),
        ("$where=1", "must not start a part with '$'"),
        ("a..b=1", "empty part"),
        ("filter=[1]", "filter must be a JSON object"),
        ("filter={bad", "The filter field is not valid JSON"),
    ],
)
def test_bad_parameters_are_refused_with_a_sentence(query_string: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        compile_query(query_string)
    assert message in caught.value.detail
    assert caught.value.detail.endswith(".")


# -- filter JSON ---------------------------------------------------------------------------

GUI_FILTER = {
    "$and": [
        {"$or": [{"data.label": {"$regex": "ca", "$options": "i"}}, {"data.label": {"$ne": "dog"}}]},
        {"data.checked": {"$not": {"$regex": "^no", "$options": "i"}}},
        {"data.part": {"$in": ["200-004", "200-005"]}, "data.count": {"$gte": 1, "$lt": 10}},
    ]
}


def test_gui_filters_pass_unchanged() -> None:
    assert check_filter(GUI_FILTER) == GUI_FILTER


def test_every_whitelisted_operator_is_accepted() -> None:
    query = {
        "$nor": [{"data.a": {"$exists": False}}],
        "data.b": {"$eq": 1, "$ne": 2, "$gt": 0, "$gte": 0, "$lt": 9, "$lte": 9, "$nin": [5]},
        "data.tags": {"$all": ["x"], "$size": 2, "$elemMatch": {"$in": ["x", "y"]}},
        "data.c": {"$type": ["string", "number"]},
        "data.objs": {"$elemMatch": {"k": 1, "v": {"$gt": 2}}},
    }
    assert check_filter(query) == query


def test_time_and_id_strings_become_dates_and_object_ids() -> None:
    checked = check_filter({"time": {"$gte": "2022-01-01T00:00:00Z"}, "_id": {"$in": [ID_A]}})
    assert checked == {"time": {"$gte": datetime(2022, 1, 1, tzinfo=UTC)}, "_id": {"$in": [ObjectId(ID_A)]}}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"$where": "sleep(1000)"}, "$where"),
        ({"data.a": {"$expr": {"$eq": ["$a", "$b"]}}}, "$expr"),
        ({"$expr": {"$gt": ["$a", 1]}}, "$expr"),
        ({"data.a": {"$function": {"body": "x"}}}, "$function"),
        ({"data.a": {"$accumulator": {}}}, "$accumulator"),
        ({"$or": [{"data.a": {"$where": "x"}}]}, "$where"),
        ({"data.a": {"$not": {"$where": "x"}}}, "$where"),
        ({"data.a": {"$elemMatch": {"$where": "x"}}}, "$where"),
        ({"data.a": {"$elemMatch": {"b": {"$foo": 1}}}}, "$foo"),
        ({"data.a": {"$in": [{"$where": "x"}]}}, "$where"),
        ({"data.a": {"b": {"$where": "x"}}}, "$where"),
        ({"$comment": "x"}, "$comment"),
        ({"data.a": {"$jsonSchema": {}}}, "$jsonSchema"),
    ],
)
def test_forbidden_operators_are_named(query: dict[str, Any], named: str) -> None:
    with pytest.raises(BadInput) as caught:
        check_filter(query)
    assert named in caught.value.detail


@pytest.mark.parametrize(
    "query",
    [
        {"$and": []},
        {"$and": {"a": 1}},
        {"$or": [1]},
        {"data.a": {"$in": "x"}},
        {"data.a": {"$regex": 5}},
        {"data.a": {"$regex": "(", "$options": "i"}},
        {"data.a": {"$regex": "a", "$options": "ig"}},
        {"data.a": {"$options": "i"}},
        {"data.a": {"$size": -1}},
        {"data.a": {"$size": True}},
        {"data.a": {"$type": "nonsense"}},
        {"data.a": {"$type": {}}},
        {"data.a": {"$type": []}},
        {"data.a": {"$type": [["string"]]}},
        {"data.a": {"$not": "x"}},
        {"data.a": {"$gt": float("nan")}},
        {"data.a": {"$gt": 1, "b": 2}},
        {"data.a": {"$and": [{}]}},
        {"data..a": 1},
        {"": 1},
    ],
)
def test_malformed_operators_are_refused(query: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        check_filter(query)


def test_deep_nesting_is_refused() -> None:
    query: dict[str, Any] = {"data.a": 1}
    for _ in range(40):
        query = {"$and": [query]}
    with pytest.raises(BadInput, match="nested more than"):
        check_filter(query)


# -- scope ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [{"userId": "B"}, {"$or": [{"userId": "B"}]}, {"userId": {"$ne": "A"}}, {"$nor": [{"userId": "A"}]}],
)
def test_scope_is_anded_on_top_of_any_filter(attempt: dict[str, Any]) -> None:
    query = scoped(check_filter(attempt), Scope(owner="A"))
    assert query == {"$and": [attempt, {"userId": "A"}]}


def test_no_scope_leaves_the_filter_alone() -> None:
    assert scoped({"data.a": 1}, Scope()) == {"data.a": 1}
    assert scoped({}, Scope(owner="A")) == {"userId": "A"}


# -- properties ----------------------------------------------------------------------------

FORBIDDEN = ["$where", "$expr", "$function", "$accumulator", "$jsonSchema", "$text", "$foo", "$comment", "$set"]
OPERATOR_KEYS = st.sampled_from(sorted(ALLOWED_OPERATORS) + FORBIDDEN)
FIELD_KEYS = st.sampled_from(["data.label", "data.count", "file", "time", "_id", "data.tags", "a", "b.c", "x"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=5), st.just(ID_A)
)
JSON_TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(OPERATOR_KEYS, FIELD_KEYS), children, max_size=3),
    ),
    max_leaves=12,
)


def dollar_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {key for key in value if key.startswith("$")}
        for item in value.values():
            found |= dollar_keys(item)
        return found
    if isinstance(value, list):
        return set().union(*(dollar_keys(item) for item in value)) if value else set()
    return set()


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(OPERATOR_KEYS, FIELD_KEYS), JSON_TREES, max_size=3))
def test_accepted_filters_hold_only_whitelisted_operators(candidate: dict[str, Any]) -> None:
    try:
        checked = check_filter(candidate)
    except BadInput as refused:
        # Refused: one sentence, and any forbidden operator among the reasons is named.
        assert refused.detail.endswith(".")
        assert "\n" not in refused.detail
        return
    assert dollar_keys(checked) <= ALLOWED_OPERATORS
    assert not dollar_keys(candidate) & set(FORBIDDEN)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=6))
def test_any_parameters_compile_or_are_refused_cleanly(params: list[tuple[str, str]]) -> None:
    try:
        query = parse_query_params(params, max_limit=500)
    except BadInput as refused:
        assert refused.detail.endswith(".")
        return
    assert dollar_keys(query.filter) <= ALLOWED_OPERATORS
    assert 1 <= query.limit <= 500
    assert query.skip >= 0


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(FIELD_KEYS, SCALARS, max_size=3), st.text(min_size=1, max_size=6))
def test_scoped_query_always_requires_the_owner(candidate: dict[str, Any], owner: str) -> None:
    try:
        checked = check_filter(candidate)
    except BadInput:
        return
    query = scoped(checked, Scope(owner=owner))
    assert query == {"userId": owner} or query["$and"][-1] == {"userId": owner}


# -- the patterns the OpenAPI document states: exactly what the parsers take -----------------


def _takes(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def takes(text: str) -> bool:
        try:
            parse(text)
        except BadInput:
            return False
        return True

    return takes


PATTERNS: list[tuple[str, str, Callable[[str], bool]]] = [
    ("sort", query.SORT_PATTERN, _takes(lambda text: query.parse_sort(text, None))),
    ("order", query.ORDER_PATTERN, _takes(lambda text: query.parse_sort("time", text))),
    ("regex", query.FLAG_PATTERN, _takes(lambda text: query.parse_query_params([("regex", text)], max_limit=10))),
    ("ids", query.IDS_PATTERN, _takes(lambda text: query.parse_query_params([("ids", text)], max_limit=10))),
    ("select", query.SELECT_PATTERN, _takes(query.parse_select)),
    # A path parameter cannot hold '/', which the parser would take.
    ("path", query.PATH_PATTERN, _takes(lambda text: query.check_path(text.replace("/", "\x00"), what="field"))),
    ("name", NAME_PATTERN, _takes(lambda text: check_new_name(text, what="A view"))),
]
# What the patterns turn on: separators, signs, dots, '$', NUL, '/', control characters, letters.
TRICKY = st.text(alphabet=" ,.-+$_/\t\x00\x1f\x7faAsScCdDeEnNiIgG019fF", max_size=30)


@pytest.mark.parametrize(("name", "pattern", "takes"), PATTERNS, ids=[name for name, _, _ in PATTERNS])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_documented_pattern_matches_exactly_what_its_parser_takes(
    name: str, pattern: str, takes: Callable[[str], bool], data: st.DataObject
) -> None:
    drawn = data.draw(st.from_regex(pattern, fullmatch=True), label="matching")
    assert takes(drawn), drawn
    text = data.draw(TRICKY | st.text(max_size=12), label="any")
    assert bool(re.fullmatch(pattern, text)) == takes(text), text
