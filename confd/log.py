"""Logging in confd's own form: text lines like Go confd's, or JSON lines, on stderr.

Text: `2026-11-23T11:20:00Z host confd[123]: INFO message`. JSON: one object per line with
`time`, `level`, `msg` and any structured fields passed as `extra={"fields": {...}}`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

from confd.errors import ConfigError

__all__ = ["LEVELS", "FORMATS", "setup_logging", "get_logger"]

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")
_ROOT = "confd"
# The daemon's loggers and the built-in backends' (`builtin.etcd`, ...), which log under their
# module names since they import nothing of the daemon.
_LOGGERS = (_ROOT, "builtin")


def _timestamp(created: float) -> str:
    """RFC 3339 UTC timestamp with second precision, as confd prints it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))


class TextFormatter(logging.Formatter):
    """`<time> <host> confd[<pid>]: <LEVEL> <message>`."""

    def __init__(self) -> None:
        super().__init__()
        self._host = os.uname().nodename  # gethostname() without importing socket

    def format(self, record: logging.LogRecord) -> str:
        level = "WARNING" if record.levelno == logging.WARNING else record.levelname
        line = (
            f"{_timestamp(record.created)} {self._host} confd[{record.process or os.getpid()}]: "
            f"{level} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, msg, plus the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower().replace("warning", "warn"),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                plain = isinstance(value, int | float | bool)
                entry.setdefault(key, value if plain else str(value))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send the `confd` logger's records at `level` and above to `stream` (stderr) in `fmt`."""
    try:
        levelno = LEVELS[level.lower()]
    except KeyError:
        raise ConfigError(
            f"log level {level!r} is not one of debug, info, warn, error"
        ) from None
    if fmt not in FORMATS:
        raise ConfigError(f"log format {fmt!r} is not one of text, json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(levelno)
        logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    """The logger for a confd module (`confd.sync`, ...): all share the handler set up above."""
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")
