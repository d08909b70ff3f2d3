"""Events only the images' documents hold: those of a process that died before storing them.

A create or change is answered once its document is stored with its stamp (journal.py,
`EVENT_FIELD`: the event's key and a letter for its kind); the event itself reaches the journal a moment later,
with others. A process killed in between leaves the stamp in the document and no event. Once
that process is given up (it stopped beating), whoever gives it up reads the stamps it left
after its last promise and stores their events, the document as it is now. Its leases keep
other writers off its images for longer than it takes to be given up, so the document is
still the one its write made. Inserting an event twice stores it once (its key is its `_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.domain.datasets.events.keys import EVENT_FIELD, MICROS_DIGITS, stamped
from app.store import Store

log = logging.getLogger(__name__)

BATCH = 1000


async def recover(store: Store, given_up: Mapping[str, str]) -> int:
    """Store the events of the writers in `given_up` (each with the key from which it may have
    left some) that their images' stamps hold; how many were found. Call inside store.errors()."""
    if not given_up:
        return 0
    found: list[dict[str, Any]] = []
    count = 0
    condition = {EVENT_FIELD: {"$gte": min(given_up.values())}}
    async for batch in store.images.batches(condition, None, BATCH):
        for document in batch:
            event = _event_of(document, given_up)
            if event is not None:
                found.append(event)
        if len(found) >= BATCH:
            await store.events.append(found)
            count, found = count + len(found), []
    if found:
        await store.events.append(found)
        count += len(found)
    if count:
        log.warning("live events: %d events of writers that stopped were found in their images", count)
    return count


def _event_of(document: Mapping[str, Any], given_up: Mapping[str, str]) -> dict[str, Any] | None:
    found = stamped(document.get(EVENT_FIELD))
    if found is None:
        return None
    key, kind = found
    writer = key[MICROS_DIGITS:]
    if writer not in given_up or key < given_up[writer]:
        return None
    return {"_id": key, "p": writer, "kind": kind, "image": dict(document)}
