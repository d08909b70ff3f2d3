"""Filters kept as text: saved views and snapshots store the filter they were made with.

Relaxed Extended JSON: dates and ids stay what they are ({"$date": …}, {"$oid": …}); kept as
text because a filter's keys are operators and dotted paths, which a database may refuse as
field names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import json_util
from bson.json_util import JSONMode, JSONOptions
from bson.regex import Regex

_EXTENDED_JSON = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)
# The `$options` letters of the flags Extended JSON gives a regular expression.
_REGEX_OPTIONS = (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL), ("x", re.VERBOSE))


def filter_to_text(query_filter: Mapping[str, Any]) -> str:
    return json_util.dumps(query_filter, json_options=_EXTENDED_JSON)


def filter_from_text(text: str) -> dict[str, Any]:
    """A filter as `filter_to_text` kept it, unchecked: checks change over time, so a caller
    decides what a stored filter that no longer passes them means."""
    loaded: dict[str, Any] = _as_operators(json_util.loads(text, json_options=_EXTENDED_JSON))
    return loaded


def _as_operators(value: Any) -> Any:
    """Extended JSON reads `{"$regex": "^a", "$options": "i"}`, the filter's operator, as a
    regular expression value (its legacy spelling of one): the operator again, as it was saved."""
    if isinstance(value, Regex):
        options = "".join(letter for letter, flag in _REGEX_OPTIONS if value.flags & flag)
        return {"$regex": value.pattern, **({"$options": options} if options else {})}
    if isinstance(value, dict):
        return {key: _as_operators(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_operators(item) for item in value]
    return value


def filter_as_json(query_filter: Mapping[str, Any]) -> Any:
    """A filter as clients see it, in relaxed Extended JSON. Text that cannot be sent (a lone
    surrogate, kept before such filters were refused) shows as U+FFFD."""
    return json.loads(filter_to_text(query_filter), object_hook=_sendable)


def _sendable(value: dict[str, Any]) -> dict[str, Any]:
    return {_sendable_text(key): _sendable_item(item) for key, item in value.items()}


def _sendable_item(value: Any) -> Any:
    if isinstance(value, str):
        return _sendable_text(value)
    if isinstance(value, list):
        return [_sendable_item(item) for item in value]
    return value


def _sendable_text(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def filter_as_parameter(query_filter: Mapping[str, Any]) -> str:
    """A checked filter as REST's `filter` parameter reads it back: times as ISO-8601 text and
    ids as hexadecimal, which the query compiler turns into dates and ids again."""
    return json.dumps(query_filter, default=_as_text, ensure_ascii=False, separators=(",", ":"))


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # an ObjectId: its hexadecimal form
