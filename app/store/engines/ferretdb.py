"""FerretDB 1.24 (the embedded default of `make run`, and the test database): what it answers
differently from MongoDB, and how the store works around each.

- **Reads.** It pushes a filter down to its storage only when the filter is a lone `_id`
  equality (and a sort only when it is `$natural`): any other filter, range, sort or `$in` is
  answered by decoding every document of the collection in Go, about 80 µs each. So the store
  finds an image by `_id` alone and checks the rest itself, reads a collection's matches from one
  cursor in natural order (`batches`: paging by `_id` would read the whole collection once per
  page), and makes every write name its document by `_id` alone (the store's `replace`): with
  any condition beside it a PATCH of one image among 20,000 took 724 ms.
- **Updates are not atomic.** An update (replace, `$set`, `$inc`, findAndModify) reads the
  matching documents and writes them back in a second, separate step, so two processes' updates
  of one document both "match" and the later silently undoes the earlier (measured: 30
  concurrent `replace_one({_id, revision: 0}, …)` → up to 8 report a match). Deletes, too, read
  then delete. An insert against a unique index is atomic (SQLite enforces it). So writers of an
  image take turns through leases, which are inserts (app/domain/writes/leases.py), never through a
  condition on the write, and a lease's `_id` names its holder, so that a delete by `_id` can
  only remove the deleter's own lease.
- **Embedded documents.** It compares an embedded document with the one it would replace by
  values only, ignoring keys, and silently skips the write when they look alike, even beside
  other changes in the same update: `$set: {"data": {"y": 1}}` leaves `{"x": 1}` in place. The
  store therefore changes documents by replacing them whole, which it honours.
- **Bulk writes.** An `update` command of 100 statements or more is never answered (measured
  with UpdateOne and ReplaceOne by `_id`: 99 in 0.5 s, 100 still unanswered after 20 s; SQLite
  backend): sent 99 at a time. A bulk write in which it refuses a value comes back without the
  counts PyMongo needs (a KeyError in the driver), where a single write carries the error: the
  first of a run of replacements goes alone.
- **Indexes.** It drops the connection when several indexes of one `createIndexes` command
  already exist: one index per command.
- **Error texts.** Some start with where in its Go source they were raised:
  "[sort.go:96 common.ValidateSortDocument] maximum sort keys exceeded: 40". Clients get the
  sentence, not the server's internals.
- **Storage format.** No array directly inside an array, no NUL in a string (the store keeps
  view sort keys as objects for this).
- **No change streams**, and no `$collStats` count that is exact on every backend: totals are
  counted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from app.store.engines.mongodb import Collection, MongoDB, in_batches

# See "Bulk writes" above.
MAX_UPDATE_STATEMENTS = 99

_GO_SOURCE_LOCATION = re.compile(r"^\[[^\]]*\.go:\d+[^\]]*\]\s*")


class FerretDB(MongoDB):
    name = "FerretDB"
    max_statements_per_write = MAX_UPDATE_STATEMENTS

    def __init__(self, version: str = "") -> None:
        self.version = version

    def describe(self) -> str:
        return f"{self.name} {self.version}".strip()

    def error_text(self, message: str) -> str:
        return _GO_SOURCE_LOCATION.sub("", message).rstrip(".")

    async def batches(
        self, collection: Collection, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        # One cursor in natural order: see "Reads".
        found = collection.find(condition, projection, batch_size=size)
        async for batch in in_batches(found, size):
            yield batch

    async def replace_each(self, collection: Collection, documents: Sequence[dict[str, Any]]) -> int:
        if not documents:
            return 0
        # The first alone: see "Bulk writes".
        first, *rest = documents
        written = (await collection.replace_one({"_id": first["_id"]}, first)).matched_count
        return written + await super().replace_each(collection, rest)
