"""Logging: one handler on the root logger, text or JSON lines, each tagged with its request id.

Configured by `create_app` (so once per process in production). Only the handler this module
adds is ever replaced, so pytest's caplog handler, or any other, keeps working beside it.

`LOG_LEVEL` applies to the service's own loggers (`app.*`) and uvicorn's; libraries log at
WARNING and above whatever it says, so that DEBUG never dumps database commands or HTTP
exchanges (with the data and headers in them) into the log.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

HANDLER_NAME = "image-storage"
# The id of the request being served, set by the access-log middleware for everything the
# request logs, wherever in the code that happens.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Everything a LogRecord carries by itself; any other attribute came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in _STANDARD and value is not None}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before any traceback
        return f"{first} [request_id={request_id}]{newline}{rest}"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time: test runners swap it between tests."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(*, level: str, format: Literal["text", "json"]) -> None:
    handler = _StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for previous in [existing for existing in root.handlers if existing.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("app").setLevel(level)
    # Uvicorn set up its own handler before it loaded the app; its lines ("Started server
    # process", "Waiting for connections to close") go through ours instead, in one format.
    server = logging.getLogger("uvicorn")
    server.setLevel(level)
    server.handlers.clear()
    server.propagate = True
