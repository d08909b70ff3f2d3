"""Reading and checking what users send as metadata, ids and times.

Everything here either returns a clean value or raises BadInput with one sentence that names
the offending field, so neither face has to guess what went wrong.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from itertools import accumulate
from typing import Any, NoReturn

from bson import ObjectId
from bson.errors import InvalidId

from app.errors import BadInput
from app.models import to_stored_time

MAX_DEPTH = 32  # nesting levels inside `data`; deeper documents are almost surely mistakes
# Any JSON a client sends (bodies, filters, form fields, GraphQL requests): room for `data` at
# MAX_DEPTH inside whatever wraps it.
MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_text(text: str, *, what: str) -> str:
    """`text`, if it is Unicode that can be stored: JSON's `\\ud800` escape yields a lone UTF-16
    surrogate, which UTF-8 (and so BSON, and every response) cannot carry. `what` names the
    text in the sentence; the text itself is never echoed, since it cannot be."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(
                f"{what} holds a lone UTF-16 surrogate (such as \\ud800), which is not valid text."
            ) from None
    return text


def parse_object_id(text: str) -> ObjectId:
    try:
        return ObjectId(text)
    except (InvalidId, TypeError):
        raise BadInput(f"{text!r} is not a valid image id (expected 24 hexadecimal characters).") from None


def parse_time(text: str, *, name: str = "time") -> datetime:
    """An ISO-8601 date or date-time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{name} {text!r} is not an ISO-8601 date (such as 2022-11-02T23:41:55.711Z).") from None
    try:
        return to_stored_time(moment)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise BadInput(f"{name} {text!r} is out of range: in UTC it falls outside the years 1 to 9999.") from None


def check_int64(value: int, *, path: str) -> int:
    """`value`, if MongoDB can store it: BSON integers have 64 bits."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadInput(f"{path} is {value}, beyond the 64-bit integers the database stores; send it as a string.")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, *, name: str) -> Any:
    """Strict JSON: NaN and Infinity are refused (MongoDB-compatible servers choke on them)."""
    check_json_nesting(text, what=f"The {name} field")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise BadInput(f"The {name} field is not valid JSON: {error}.") from None


# JSON strings, skipped when counting brackets: a "[" inside a string opens nothing.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_json_nesting(text: str | bytes, *, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """BadInput when JSON text nests arrays and objects more than `limit` deep, found before
    parsing it: Python's parser (and every check that walks the result) recurses once per
    level, and thousands of levels would exhaust the stack."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if brackets and max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > limit:
        raise BadInput(f"{what} is nested more than {limit} levels deep.")


def parse_data_field(text: str, *, name: str) -> dict[str, Any] | None:
    """A form field holding metadata as JSON text; the literal `null` means no metadata."""
    value = parse_json(text, name=name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadInput(f"The {name} field must hold a JSON object, not {_json_kind(value)}.")
    return check_data(value)


def check_data(data: dict[str, Any], *, prefix: str = "data") -> dict[str, Any]:
    """Refuse keys MongoDB cannot query and values it cannot store; return `data` unchanged."""
    _check_value(data, prefix, depth=0)
    return data


def check_key(key: object, *, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise BadInput(f"{path} has an empty key.")
    check_text(key, what=f"A key of {path}")
    if key.startswith("$"):
        raise BadInput(f"{path}.{key}: metadata keys must not start with '$'.")
    if "." in key:
        raise BadInput(f"{path}.{key}: metadata keys must not contain '.'.")
    if "\x00" in key:
        raise BadInput(f"{path}: metadata keys must not contain NUL characters.")
    return key


def _check_value(value: Any, path: str, *, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadInput(f"{path} is nested more than {MAX_DEPTH} levels deep.")
    if isinstance(value, dict):
        for key, item in value.items():
            check_key(key, path=path)
            _check_value(item, f"{path}.{key}", depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}.{index}", depth=depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{path} is {value}, which cannot be stored; use a finite number or null.")
    elif isinstance(value, int) and not isinstance(value, bool):
        check_int64(value, path=path)
    elif isinstance(value, str):
        check_text(value, what=path)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise BadInput(f"{path} holds an unsupported value of type {type(value).__name__}.")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def parse_data_patch(body: Any) -> tuple[dict[str, Any], list[str]]:
    """A PATCH body as `(set, unset)`: `{"k": v}` sets `data.k`, `{"$unset": {"k": ""}}` removes it."""
    if not isinstance(body, dict):
        raise BadInput("The request body must be a JSON object of metadata to merge.")
    to_set: dict[str, Any] = {}
    to_unset: list[str] = []
    for key, value in body.items():
        if key == "$unset":
            to_unset = _unset_keys(value)
        elif isinstance(key, str) and key.startswith("$"):
            raise BadInput(f"{key} is not supported in a metadata update; only $unset is.")
        else:
            check_key(key, path="data")
            _check_value(value, f"data.{key}", depth=1)
            to_set[key] = value
    clash = sorted(set(to_set) & set(to_unset))
    if clash:
        raise BadInput(f"data.{clash[0]} cannot be both set and unset in one update.")
    return to_set, to_unset


def parse_merge_patch(body: Any) -> dict[str, Any]:
    """A JSON Merge Patch (RFC 7396) of an image's data: an object whose `null`s remove keys, at
    any depth, and whose other values are set, objects merged into objects."""
    if not isinstance(body, dict):
        raise BadInput("A merge patch of metadata must be a JSON object.")
    _check_value(body, "data", depth=0)
    return body


def _unset_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        keys = list(value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        keys = value
    elif isinstance(value, str):
        keys = [value]
    else:
        raise BadInput("$unset must be an object (or a list) of metadata keys.")
    return [check_key(key, path="data") for key in keys]


MAX_NAME_LENGTH = 100  # of saved views and snapshots
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What `check_new_name` allows, as a JSON Schema pattern for the OpenAPI document: a name is one
# URL path segment (`/views/{name}`, `/snapshots/{name}`), so no '/', which routing splits on
# even when sent as %2F, and not '.' or '..', which clients resolve away before sending.
NAME_PATTERN = r"^(?!\.\.?$)(?=.*\S)[^/\x00-\x1f\x7f]{1,100}$"


def check_new_name(name: str, *, what: str) -> str:
    """The name of a view or snapshot being created (`what`: "A view"), or BadInput: it must be
    reachable afterwards as one path segment of its routes."""
    check_text(name, what=f"{what}'s name")
    if not name or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise BadInput(f"{what}'s name is 1 to {MAX_NAME_LENGTH} characters, not only spaces.")
    if _NAME_CONTROL.search(name):
        raise BadInput(f"{what}'s name cannot contain control characters (such as a tab or a line break).")
    if "/" in name:
        raise BadInput(f"{what}'s name cannot contain '/': it is one segment of a URL path.")
    if name in (".", ".."):
        raise BadInput(f"{what}'s name cannot be '.' or '..': URL paths resolve those away.")
    return name


def check_name(name: str, *, what: str) -> str:
    """The name of a view or snapshot to look up: any stored name, even one saved before
    `check_new_name` refused its kind, so that it can still be read and deleted."""
    return check_text(name, what=f"{what}'s name")


# -- counts given by callers (limits, skips) -----------------------------------------------


def check_count(number: int, *, name: str, minimum: int, maximum: int | None) -> int:
    if maximum is not None and not minimum <= number <= maximum:
        raise BadInput(f"{name} must be between {minimum} and {maximum}; got {number}.")
    if number < minimum:
        raise BadInput(f"{name} must be at least {minimum}; got {number}.")
    return number


def check_skip(skip: int) -> int:
    """A `skip`: not negative, and no larger than the database can take (int64)."""
    check_count(skip, name="skip", minimum=0, maximum=None)
    if skip > INT64_MAX:
        raise BadInput(f"skip must be at most {INT64_MAX}; got {skip}.")
    return skip
