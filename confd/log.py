"""Logging in confd's own form: text lines like Go confd's, or JSON lines, on stderr.

Text: `2026-11-23T11:20:00Z host confd[123]: INFO message`. JSON: one object per line with
`time`, `level`, `msg` and any structured fields passed as `extra={"fields": {...}}`.

confd's loggers (`get_logger`) write their lines themselves while nothing in the process has
imported the `logging` package: a `--onetime` start with the env backend then never imports it
(13.8 M instructions, 4.6 % of the start-up floor). From the moment anything has imported it
(a store client, a plugin host, a test), every record goes through `logging`, whose `confd`
logger gets the same handler, so both routes print the same lines and tools that collect
`logging` records (pytest's caplog) see confd's. A record with a traceback always takes that
route.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from confd.errors import ConfigError

if TYPE_CHECKING:
    import logging

__all__ = ["LEVELS", "FORMATS", "Logger", "setup_logging", "get_logger", "attach",
           "configured"]

LEVELS: dict[str, int] = {  # the values of logging.DEBUG ... logging.CRITICAL
    "debug": 10,
    "info": 20,
    "warn": 30,
    "warning": 30,
    "error": 40,
    "fatal": 50,  # Go confd's (logrus) levels above error
    "panic": 50,
}
FORMATS = ("text", "json")
_ROOT = "confd"
_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}

# What `setup_logging` asked for: (level, format, stream or None for stderr), None before.
_setup: tuple[int, str, IO[str] | None] | None = None
_applied = False  # whether `_setup` is installed on the logging package's `confd` logger
_lock = threading.Lock()  # one line at a time on the direct route


def _timestamp(created: float) -> str:
    """RFC 3339 UTC timestamp with second precision, as confd prints it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))


_HOST = os.uname().nodename  # gethostname() without importing socket


def _text_line(levelno: int, created: float, pid: int | None, message: str) -> str:
    """`<time> <host> confd[<pid>]: <LEVEL> <message>`."""
    return (f"{_timestamp(created)} {_HOST} confd[{pid or os.getpid()}]: "
            f"{_NAMES.get(levelno, f'Level {levelno}')} {message}")


def _json_line(levelno: int, created: float, message: str, fields: Any,
               error: str | None = None) -> str:
    """One JSON object: time, level, msg, the structured fields, and a traceback as error."""
    import json

    level = _NAMES.get(levelno, f"Level {levelno}").lower().replace("warning", "warn")
    entry: dict[str, Any] = {"time": _timestamp(created), "level": level, "msg": message}
    if isinstance(fields, dict):
        for key, value in fields.items():
            plain = isinstance(value, int | float | bool)
            entry.setdefault(key, value if plain else str(value))
    if error is not None:
        entry["error"] = error
    return json.dumps(entry, ensure_ascii=False)


class Logger:
    """The logger of a confd module (`confd.sync`, ...), with `logging.Logger`'s calls."""

    __slots__ = ("name", "_logger")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(10, msg, args, kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(20, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(30, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(40, msg, args, kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(40, msg, args, kwargs)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(level, msg, args, kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        setup = _setup
        if setup is None or "logging" in sys.modules:
            return self._stdlib().isEnabledFor(level)
        return level >= setup[0]

    def _log(self, level: int, msg: object, args: tuple[object, ...],
             kwargs: dict[str, Any]) -> None:
        logger = self._logger
        if logger is not None and _applied:  # through the package, set up: its level decides
            if logger.isEnabledFor(level):
                # stacklevel: the record names the caller of debug()/info()/..., not this module
                logger.log(level, msg, *args, stacklevel=3, **kwargs)
            return
        setup = _setup
        if setup is None or "logging" in sys.modules or kwargs.get("exc_info"):
            self._stdlib().log(level, msg, *args, stacklevel=3, **kwargs)
            return
        if level < setup[0]:
            return
        message = str(msg) % args if args else str(msg)
        if setup[1] == "json":
            fields = (kwargs.get("extra") or {}).get("fields")
            line = _json_line(level, time.time(), message, fields)
        else:
            line = _text_line(level, time.time(), None, message)
        stream = setup[2] if setup[2] is not None else sys.stderr
        with _lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stderr: there is nowhere left to say it

    def _stdlib(self) -> logging.Logger:
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self.name)
        if not _applied:
            attach()
        return logger


def get_logger(name: str) -> Logger:
    """The logger for a confd module (`confd.sync`, ...): all share the handler set up above."""
    return Logger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def setup_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send the `confd` logger's records at `level` and above to `stream` (stderr) in `fmt`."""
    global _setup, _applied
    try:
        levelno = LEVELS[level.lower()]
    except KeyError:
        raise ConfigError(
            f"log level {level!r} is not one of debug, info, warn, error, fatal, panic"
        ) from None
    if fmt not in FORMATS:
        raise ConfigError(f"log format {fmt!r} is not one of text, json")
    with _lock:
        _setup, _applied = (levelno, fmt, stream), False
    attach()


def attach() -> None:
    """Install what `setup_logging` asked for on the logging package's `confd` logger, once the
    package is loaded (a no-op before). Whoever loads modules that log through the package
    itself (a backend's `backend_logger`) calls this after, so their records find it."""
    global _applied
    if _applied or _setup is None or "logging" not in sys.modules:
        return
    import logging

    with _lock:  # read again under the lock: a `setup_logging` meanwhile wins, not undone
        if _applied or _setup is None:
            return
        levelno, fmt, stream = _setup
        logger = logging.getLogger(_ROOT)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(_formatter(fmt))
        logger.addHandler(handler)
        logger.setLevel(levelno)
        logger.propagate = False
        _applied = True


def configured() -> bool:
    """Whether confd's log output is set up (else errors go to stderr bare)."""
    if "logging" not in sys.modules:
        return _setup is not None
    attach()
    import logging

    return bool(logging.getLogger(_ROOT).handlers)


def _formatter(fmt: str) -> logging.Formatter:
    """A `logging.Formatter` printing records as the direct route prints them."""
    import logging

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            error = self.formatException(record.exc_info) if record.exc_info else None
            message = record.getMessage()
            if fmt == "json":
                return _json_line(record.levelno, record.created, message,
                                  getattr(record, "fields", None), error)
            line = _text_line(record.levelno, record.created, record.process, message)
            return f"{line}\n{error}" if error else line

    return Formatter()
