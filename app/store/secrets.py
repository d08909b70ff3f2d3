"""The secrets collection: values every replica shares, made by the first one to need them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from bson import Binary
from pymongo.errors import DuplicateKeyError

from app.store.database import Database

COLLECTION = "secrets"


class SecretStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def shared(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The secret `name`: the one stored, or `make()`'s if none is (the first replica's wins)."""
        secrets = self._database.collection(COLLECTION)
        found = await secrets.find_one({"_id": name})
        if found is None:
            with suppress(DuplicateKeyError):  # another replica made it first: theirs is the secret
                await secrets.insert_one({"_id": name, "key": Binary(make())})
            found = await secrets.find_one({"_id": name})
        assert found is not None
        return bytes(found["key"])
