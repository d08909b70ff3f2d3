"""Enum members with a GraphQL description, typed as their plain values."""

from __future__ import annotations

from typing import TypeVar, cast

import strawberry

T = TypeVar("T")


def described(value: T, description: str) -> T:
    """`strawberry.enum_value(value, description=...)`. `@strawberry.enum` unwraps it, so the
    member's `.value` is `value` at run time; the cast tells mypy so, which would otherwise
    take every member's value for an `EnumValueDefinition`."""
    return cast(T, strawberry.enum_value(value, description=description))
