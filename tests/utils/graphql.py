"""Talking GraphQL over HTTP, as a frontend would."""

from __future__ import annotations

import json
from typing import Any

import httpx


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The response body of a GraphQL POST; the HTTP status must be 200."""
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def gql_data(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `data` of a GraphQL call that must succeed."""
    body = await gql(client, query, variables)
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def gql_upload(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, tuple[str, bytes]]],
    *,
    preflight: bool = True,
) -> httpx.Response:
    """A GraphQL multipart request (the spec's `operations` + `map` + file parts).

    `files` maps a part name to (variable path, (file name, content)).
    """
    form = {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({part: [path] for part, (path, _) in files.items()}),
    }
    parts = {part: (name, content, "application/octet-stream") for part, (_, (name, content)) in files.items()}
    headers = {"Apollo-Require-Preflight": "true"} if preflight else {}
    return await client.post("/graphql", data=form, files=parts, headers=headers)
