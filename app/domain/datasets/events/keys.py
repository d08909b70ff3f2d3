"""Event keys: the order of the journal, made by each process without asking anyone.

A key is the microsecond it was made at (14 hexadecimal digits) and the writer's name (8), so
keys sort as text in time order, and two processes never make the same one. No counter in the
database: the store promises no atomic update (on some engines an update reads, then writes
back), so two processes' `$inc` could hand out one number twice. Within a process the
microseconds only go up, even when the clock steps back.

Why time order is the writes' order for one image: a process makes an event's key after the
write, while it still holds the image's lease, and stores the event before giving the lease
back (app/domain/images/). The next writer of that image, in this process or another, makes
its key after taking the lease, so later. Processes on one host read one clock; on several
hosts the order holds as long as their clocks agree closer than a lease changes hands (the
leases assume clocks within seconds; NTP keeps hosts within milliseconds).

A `floor(micros)` is the text just below every key of that microsecond and above every earlier
one: `key < floor(m)` selects the keys made before `m`.
"""

from __future__ import annotations

import re
import secrets
import time

from app.errors import BadInput

# The field of an image's document that names the event of the write that made it (journal.py):
# its key and a letter for its kind, as short as can be, since every stored document holds it.
EVENT_FIELD = "event"
KINDS = {"c": "created", "u": "updated"}
MICROS_DIGITS = 14
WRITER_DIGITS = 8
KEY = re.compile(rf"[0-9a-f]{{{MICROS_DIGITS + WRITER_DIGITS}}}")


def new_writer() -> str:
    """A name for this process's journal, random: no registry to ask."""
    return secrets.token_hex(WRITER_DIGITS // 2)


def floor(micros: int) -> str:
    return f"{micros:0{MICROS_DIGITS}x}"


def stamp_of(key: str, kind: str) -> str:
    return key + kind[0]


def stamped(stamp: object) -> tuple[str, str] | None:
    """The key and kind of a stamp (`stamp_of`); None if it is none."""
    if not isinstance(stamp, str) or len(stamp) != MICROS_DIGITS + WRITER_DIGITS + 1 or stamp[-1] not in KINDS:
        return None
    return stamp[:-1], KINDS[stamp[-1]]


def micros_of(key: str) -> int:
    return int(key[:MICROS_DIGITS], 16)


def checked(text: str) -> str:
    """`text` if it is an event's id, else BadInput."""
    if not KEY.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise BadInput(f"{shown!r} is not an event id: ids are the 22 hexadecimal digits events carry.")
    return text


class Clock:
    """Keys of one writer, each later than the one before."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self._last = 0

    def now(self) -> int:
        """The microsecond the next key would get (none is made)."""
        return max(time.time_ns() // 1000, self._last + 1)

    def promise(self) -> int:
        """A microsecond no later key will fall before, even if the clock steps back."""
        promised = self.now()
        self._last = promised - 1
        return promised

    def advance_past(self, micros: int) -> None:
        """Make every later key fall after `micros` (another writer's promise, say)."""
        self._last = max(self._last, micros)

    def key(self) -> str:
        self._last = self.now()
        return floor(self._last) + self.writer
