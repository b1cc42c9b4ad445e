"""Durations as users write them (`2.5`, `500ms`, `1m30s`) and debounce windows (`--wait`).

Parsed once when settings and resources load; `confd.run.schedule` applies the windows.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from confd.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)?")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in `text`: a plain number of seconds (`2.5`) or Go style (`500ms`, `1m30s`)."""
    raw = text.strip()
    if not raw:
        raise ConfigError(f"{what}: empty duration")
    total, pos = 0.0, 0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if not match or (match.group(2) is None and (pos or match.end() != len(raw))):
            raise ConfigError(f"{what}: bad duration {raw!r} (use seconds, or e.g. 500ms, 2s, 1m)")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
        pos = match.end()
    return total


class Wait(NamedTuple):
    """A debounce window: render `min` s after the last change, at most `max` s after the first.

    A NamedTuple (no dataclass import on the start-up path); `parse_wait` checks the bounds.
    """

    min: float
    max: float


def parse_wait(text: str, what: str = "wait") -> Wait | None:
    """Parse `"min:max"` (or a single `"min"`, meaning max = 4 x min); empty or `"0"` means none."""
    raw = text.strip()
    if not raw:
        return None
    low, sep, high = raw.partition(":")
    minimum = parse_duration(low, what)
    maximum = parse_duration(high, what) if sep else minimum * 4
    if minimum == 0 and maximum == 0:
        return None
    if maximum < minimum:
        raise ConfigError(f"{what}: need min <= max, got {raw}")
    return Wait(minimum, maximum)
