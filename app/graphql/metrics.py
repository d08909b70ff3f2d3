"""Counts and times every GraphQL operation by its type and name (bounded in app/metrics.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import OperationDefinitionNode, get_operation_ast
from strawberry.extensions import SchemaExtension

from app.graphql.context import Context


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        operation = self._operation()
        result = self.execution_context.result
        context.services.metrics.observe_graphql(
            operation_type=operation.operation.value if operation else None,
            operation_name=operation.name.value if operation and operation.name else None,
            ok=not getattr(result, "errors", None),
            seconds=time.perf_counter() - started,
        )

    def _operation(self) -> OperationDefinitionNode | None:
        """The operation that ran, from the parsed document: never a name the client merely
        claimed. None when the document did not parse or names no such operation."""
        document = self.execution_context.graphql_document
        if document is None:
            return None
        return get_operation_ast(document, self.execution_context.operation_name)
