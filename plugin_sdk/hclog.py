"""hclog-style JSON logging to stderr, the form a go-plugin host relays at each line's level."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class HclogFormatter(logging.Formatter):
    """Formats a record as one hclog JSON line: `@level`, `@message`, `@timestamp`, `@module`.

    Extra attributes passed with `extra=` become structured fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelno)
        if level is None:
            level = "trace" if record.levelno < logging.DEBUG else "error"
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "@level": level,
            "@message": record.getMessage(),
            "@module": record.name,
            "@timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, int | float | bool) else str(value)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: int = logging.DEBUG, stream: IO[str] | None = None) -> None:
    """Send every record to `stream` (the real stderr) as hclog JSON lines.

    Backends log under `confd.backends.NAME` (`backend_logger`); a built-in served out of
    process may have had confd's own text handler installed there, which is dropped so its
    records reach the host as hclog too.
    """
    handler = logging.StreamHandler(stream or sys.__stderr__)
    handler.setFormatter(HclogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    confd = logging.getLogger("confd")
    confd.handlers[:] = []
    confd.propagate = True
    confd.setLevel(logging.NOTSET)
