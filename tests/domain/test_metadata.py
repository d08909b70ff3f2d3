"""Input checks of the domain, without HTTP: what is accepted, and the sentence for what is not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.metadata import (
    MAX_DEPTH,
    check_data,
    parse_data_field,
    parse_data_patch,
    parse_object_id,
    parse_time,
)
from app.errors import BadInput


def test_nested_data_passes_unchanged() -> None:
    data = {"a": {"b": [1, {"c": None}], "d": 1.5}, "e": True, "f": "x"}
    assert check_data(data) is data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"$gt": 1}, "data.$gt: metadata keys must not start with '$'"),
        ({"a": {"b.c": 1}}, "data.a.b.c: metadata keys must not contain '.'"),
        ({"a": [{"$x": 1}]}, "data.a.0.$x"),
        ({"a": float("nan")}, "data.a is nan"),
        ({"a": float("inf")}, "data.a is inf"),
        ({"": 1}, "empty key"),
        ({"a\x00": 1}, "NUL"),
        ({"a": object()}, "unsupported value"),
    ],
)
def test_bad_data_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("$", r"\$").replace(".", r"\.")):
        check_data(data)


def test_too_deep_data_is_refused() -> None:
    data: dict[str, object] = {}
    level = data
    for _ in range(MAX_DEPTH + 1):
        level["x"] = {}
        level = level["x"]  # type: ignore[assignment]
    with pytest.raises(BadInput, match="nested more than"):
        check_data(data)


def test_data_field_null_means_none() -> None:
    assert parse_data_field("null", name="data") is None
    assert parse_data_field(' {"a": 1} ', name="data") == {"a": 1}


@pytest.mark.parametrize("text", ["{", "[1]", "1", '"s"', "true", '{"a": Infinity}'])
def test_data_field_must_be_a_json_object(text: str) -> None:
    with pytest.raises(BadInput, match="The data field"):
        parse_data_field(text, name="data")


def test_patch_splits_set_and_unset() -> None:
    assert parse_data_patch({"a": 1, "$unset": {"b": "", "c": 1}}) == ({"a": 1}, ["b", "c"])
    assert parse_data_patch({"$unset": ["b"]}) == ({}, ["b"])
    assert parse_data_patch({"$unset": "b"}) == ({}, ["b"])


def test_ids_and_times() -> None:
    assert str(parse_object_id("6385c4b3a1e2f0c9d8b7a615")) == "6385c4b3a1e2f0c9d8b7a615"
    with pytest.raises(BadInput, match="24 hexadecimal"):
        parse_object_id("6385c4b3a1e2f0c9d8b7a61")
    assert parse_time("2022-11-02T23:41:55.711999+02:00") == datetime(2022, 11, 2, 21, 41, 55, 711000, tzinfo=UTC)
    assert parse_time("2022-11-02") == datetime(2022, 11, 2, tzinfo=UTC)
    with pytest.raises(BadInput, match="ISO-8601"):
        parse_time("02/11/2022")
