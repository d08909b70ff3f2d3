"""What the service says to the database: the commands its driver sends, recorded on request.

PyMongo reports to listeners registered before a client is made, so this registers at import,
before any test builds an app.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring


@dataclass(frozen=True)
class Sent:
    name: str  # find, insert, delete, aggregate…
    collection: str
    filter: dict[str, Any]  # of a find; empty for other commands
    statements: list[dict[str, Any]] = field(default_factory=list)  # the filters of a delete's or update's


class _Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.active = False
        self.sent: list[Sent] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active:
            target = event.command.get(event.command_name)
            if target in JOURNAL:
                return
            condition = event.command.get("filter") if event.command_name == "find" else None
            statements = event.command.get("deletes") or event.command.get("updates") or []
            filters = [dict(statement["q"]) for statement in statements]
            self.sent.append(Sent(event.command_name, str(target), dict(condition or {}), filters))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# The live events' journal (app/store/events.py) talks to the database on its own time (a beat
# every quarter second, inserts a few milliseconds after writes): not what a request sends.
JOURNAL = {"events", "event_writers", "event_horizons"}

_RECORDER = _Recorder()
monitoring.register(_RECORDER)


@contextmanager
def recorded() -> Iterator[list[Sent]]:
    """The commands sent during the block (by every client made after this module's import)."""
    _RECORDER.sent = []
    _RECORDER.active = True
    try:
        yield _RECORDER.sent
    finally:
        _RECORDER.active = False
