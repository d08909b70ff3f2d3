"""The command's progress bar: files done of all, bytes moved, their rate, the time left."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from imagestore.push import Progress


class _Bytes(ProgressColumn):
    def render(self, task: Task) -> Text:
        moved = task.fields.get("moved", 0)
        elapsed = task.elapsed or 0.0
        rate = f"{decimal(int(moved / elapsed))}/s" if elapsed > 0.5 else "?/s"
        return Text(f"{decimal(moved)} {rate}")


class Bar(Progress):
    """Files done of all, bytes moved, their rate and the time left, on stderr (drawn only
    where stderr is a terminal)."""

    def __init__(self, verb: str) -> None:
        console = Console(stderr=True)
        self._bar = RichProgress(
            TextColumn(verb),
            BarColumn(),
            MofNCompleteColumn(),
            _Bytes(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task(verb, total=None, moved=0, start=False)
        self._moved = 0
        self._counting = threading.Lock()  # a pull's files arrive in threads

    def __enter__(self) -> Bar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, files: int, size: int) -> None:
        self._bar.update(self._task, total=files)
        self._bar.start_task(self._task)

    def bytes(self, amount: int) -> None:
        with self._counting:
            self._moved += amount
            moved = self._moved
        self._bar.update(self._task, moved=moved)

    def done(self, size: int, *, moved: bool) -> None:
        self._bar.advance(self._task, 1)
