"""Both API documents describe everything in them, so GraphiQL's Docs panel, /docs and generated
clients explain each name instead of leaving the reader to guess.

GraphQL: every type, field, argument, input field and enum value has a description that starts
with an uppercase letter (graphql-schema-linter's description rules). OpenAPI: every operation
has a summary, a description and a tag, and every tag an operation uses is declared at the top
level with a description (Spectral's `operation-description`, `operation-tags` and
`operation-tag-defined`). Pure: no server, no database; a failure lists every name to fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    specified_directives,
    specified_scalar_types,
)

from app.config import load_settings
from app.graphql.schema import schema
from app.main import create_app

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def graphql_descriptions() -> Iterator[tuple[str, str | None]]:
    """(name, description) of every element of the schema a client can read about.

    The introspection types (`__Type`, ...) and the spec's scalars and directives are the
    GraphQL library's, described by the spec itself. Strawberry's own scalars (DateTime, JSON,
    Upload) are walked like ours: they come with descriptions, and ours may override them.
    """
    for name, named in schema._schema.type_map.items():
        if name.startswith("__") or name in specified_scalar_types:
            continue
        yield name, named.description
        yield from _members(named)
    for directive in schema._schema.directives:
        if directive in specified_directives:
            continue
        yield f"@{directive.name}", directive.description
        for argument_name, argument in directive.args.items():
            yield f"@{directive.name}({argument_name})", argument.description


def _members(named: GraphQLNamedType) -> Iterator[tuple[str, str | None]]:
    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        for field_name, field in named.fields.items():
            yield f"{named.name}.{field_name}", field.description
            for argument_name, argument in field.args.items():
                yield f"{named.name}.{field_name}({argument_name})", argument.description
    elif isinstance(named, GraphQLInputObjectType):
        for field_name, input_field in named.fields.items():
            yield f"{named.name}.{field_name}", input_field.description
    elif isinstance(named, GraphQLEnumType):
        for value_name, value in named.values.items():
            yield f"{named.name}.{value_name}", value.description


def capitalised(description: str) -> bool:
    # Stricter than the linter, which lets "`JSON` ..." pass: a sentence starts with a letter.
    return description[:1].isalpha() and description[:1].isupper()


def test_the_walk_reaches_every_kind_of_element() -> None:
    names = {name for name, _ in graphql_descriptions()}
    assert {"Query", "Query.images", "Query.images(filter)", "ImageFilter.file", "SortDirection.ASC"} <= names
    assert {"DateTime", "JSON", "Upload"} <= names
    assert not {"String", "__Type", "__Schema.types"} & names


def test_every_graphql_element_has_a_description() -> None:
    missing = [name for name, description in graphql_descriptions() if not (description or "").strip()]
    assert not missing, f"{len(missing)} GraphQL elements without a description:\n" + "\n".join(missing)


def test_every_graphql_description_is_capitalised() -> None:
    lowercase = [
        f"{name}: {description!r}"
        for name, description in graphql_descriptions()
        if description and description.strip() and not capitalised(description)
    ]
    assert not lowercase, (
        f"{len(lowercase)} GraphQL descriptions that do not start with an uppercase letter:\n" + "\n".join(lowercase)
    )


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    # openapi() only reads the routes: no connection is opened to this address.
    return create_app(load_settings(mongodb_connection_string="mongodb://localhost:1/x")).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield f"{method.upper()} {path}", operation


def test_every_operation_has_a_description(openapi: dict[str, Any]) -> None:
    missing = [name for name, operation in operations(openapi) if not operation.get("description", "").strip()]
    assert not missing, f"{len(missing)} operations without a description:\n" + "\n".join(missing)


def test_every_operation_has_a_summary_of_its_own(openapi: dict[str, Any]) -> None:
    # FastAPI fills in a missing summary from the function's name ("Get Image"), which says
    # nothing the path does not; the operation id is that name (app/main.py).
    missing = [
        f"{name} ({operation.get('summary')!r})"
        for name, operation in operations(openapi)
        if operation.get("summary", "").strip() in ("", operation["operationId"].replace("_", " ").title())
    ]
    assert not missing, f"{len(missing)} operations without a summary of their own:\n" + "\n".join(missing)


def test_every_operation_has_a_tag(openapi: dict[str, Any]) -> None:
    # An untagged operation lands under "default" in /docs and ReDoc, beside no related route.
    untagged = [name for name, operation in operations(openapi) if not operation.get("tags")]
    assert not untagged, f"{len(untagged)} operations without a tag:\n" + "\n".join(untagged)


def test_every_tag_used_is_declared_with_a_description(openapi: dict[str, Any]) -> None:
    declared = {tag["name"]: tag.get("description", "") for tag in openapi.get("tags", [])}
    used = {tag for _, operation in operations(openapi) for tag in operation.get("tags", [])}
    undeclared = sorted(used - set(declared))
    undescribed = sorted(name for name in used & set(declared) if not declared[name].strip())
    assert not undeclared, "Tags used but not declared in the top-level `tags`: " + ", ".join(undeclared)
    assert not undescribed, "Tags declared without a description: " + ", ".join(undescribed)
