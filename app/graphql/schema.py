"""The schema. `make schema` writes it to schema.graphql; a test fails when the two drift."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.file_uploads import Upload
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.scalar import ScalarDefinition

from app.graphql.errors import ErrorCodes, graphql_error
from app.graphql.metrics import OperationMetrics
from app.graphql.mutations import Mutation
from app.graphql.queries import Query
from app.graphql.subscriptions import Subscription

# One request must not be able to exhaust the server: the deepest sensible query is
# images { items { ... } } (3 levels); filters nest through variables, not selections.
MAX_DEPTH = 6
MAX_TOKENS = 4000
MAX_ALIASES = 20

# Strawberry's own scalars, parsed and serialised as before, with descriptions that tell a
# client what this service does with them: its generic ones say "Date with time (isoformat)".
SCALARS: dict[object, ScalarDefinition] = {
    datetime: replace(
        DEFAULT_SCALAR_REGISTRY[datetime],
        description="A date and time, ISO 8601: 2022-11-02T23:41:55.711000+00:00. Stored and answered in UTC, to the "
        "millisecond; one given without an offset is taken as UTC.",
    ),
    Upload: replace(
        DEFAULT_SCALAR_REGISTRY[Upload],
        description="A file, sent as a part of a multipart request (the GraphQL multipart request spec), which needs "
        "an Apollo-Require-Preflight header.",
    ),
}


class Schema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # A request answered once (plain HTTP) cannot carry a subscription's events: Strawberry
        # would run it as a query and fail inside. Refused up front instead, with a 400.
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES) - {OperationType.SUBSCRIPTION}
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed,
            operation_extensions=operation_extensions,
        )

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Strawberry logs every error with a traceback; a bad filter is the user's mistake,
        # not news for the operator. ErrorCodes logs the unexpected ones, once each. The
        # events of a subscription reach the client without passing through ErrorCodes, so
        # their errors get the same sentence and code here, in place (done twice, it is the same).
        errors[:] = [graphql_error(error) for error in errors]


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    scalar_overrides=SCALARS,
    extensions=[  # factories: a fresh extension for every request
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        ErrorCodes,
        OperationMetrics,
    ],
)
