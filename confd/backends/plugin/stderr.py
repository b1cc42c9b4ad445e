"""Relaying a plugin's stderr lines into confd's log at the level each line carries.

hclog JSON (`@level`, `@message`, other keys as fields), `[WARN]`-style prefixes, else debug.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from confd.log import Logger

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "err": logging.ERROR,
}
_PREFIX = re.compile(r"^\[(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|ERR)\]\s*", re.IGNORECASE)


def classify(line: str) -> tuple[int, str]:
    """The logging level and message text of one stderr line."""
    text = line.rstrip("\r\n")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict) and "@message" in record:
            level = _LEVELS.get(str(record.get("@level", "")).lower(), logging.DEBUG)
            fields = " ".join(
                f"{key}={value}"
                for key, value in record.items()
                if not key.startswith("@") and key != "timestamp"
            )
            message = str(record["@message"])
            return level, f"{message} {fields}" if fields else message
    match = _PREFIX.match(text)
    if match:
        return _LEVELS[match.group(1).lower()], text[match.end() :]
    return logging.DEBUG, text


def relay(logger: Logger, plugin: str, line: str) -> None:
    """Log one stderr line of `plugin` at its level."""
    level, message = classify(line)
    if logger.isEnabledFor(level):
        logger.log(level, "plugin %s: %s", plugin, message)
