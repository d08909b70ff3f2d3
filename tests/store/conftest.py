"""What the store's tests share: FerretDB's SQLite files, and the test database read with the
driver alone (not through the service)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings


@pytest.fixture
def sqlite_directory(ferretdb_sqlite_directory: Path | None) -> Path:
    if ferretdb_sqlite_directory is None:
        pytest.skip("the database is external: no FerretDB SQLite files to look at")
    return ferretdb_sqlite_directory


@pytest.fixture
async def raw_database(make_settings: Callable[..., Settings]) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The test's database, through a client of the test's own."""
    settings = make_settings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        yield client[settings.mongodb_database]
    finally:
        await client.close()
