"""Go's fmt and time layouts, against tables Go 1.19 produced (tests/gotemplate_data).

Every printf verb with width, precision and flags on every kind of value Go templates print
(strings, ints, float64 from JSON, bools, nil, bytes, slices, maps, KV pairs), bad verbs,
missing and extra arguments, argument indexes; `print`'s spacing rules; and `time.Format`
with Go's reference layouts in four zones.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from confd.template.golang import fmt
from confd.template.golang.gotime import Duration, GoTime
from confd.template.golang.values import Uint8
from confd.template.store import KVPair

DATA = Path(__file__).parent / "gotemplate_data"


def _json_value(value: Any) -> Any:
    """A JSON value as Go decodes it into interface{}: numbers are float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return {k: _json_value(v) for k, v in value.items()}


_SPECIAL_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan, "-0": -0.0}
_DECODERS = {
    "s": str,
    "i": int,
    "f": lambda v: _SPECIAL_FLOATS[v] if isinstance(v, str) else float(v),
    "b": bool,
    "n": lambda v: None,
    "u8": Uint8,
    "ss": list,
    "is": lambda v: [int(x) for x in v],
    "m": _json_value,
    "a": _json_value,
    "kv": lambda v: KVPair(*v),
    "kvs": lambda v: [KVPair(*p) for p in v],
}


def _argument(tagged: dict[str, Any]) -> Any:
    ((tag, value),) = tagged.items()
    return _DECODERS[tag](value)


FMT_CASES = [json.loads(line) for line in (DATA / "fmt_go119.jsonl").read_text().splitlines()]


def _sprint(function: str, format_: str, args: list) -> str:
    if function == "printf":
        return fmt.sprintf(format_, *args)
    if function == "print":
        return fmt.sprint(*args)
    return fmt.sprintln(*args)


def test_fmt_matches_go() -> None:
    """All cases in one test (thousands of parametrized ones would cost seconds of overhead);
    a failure lists every case that differs."""
    wrong = []
    for function, format_, arguments, expected in FMT_CASES:
        got = _sprint(function, format_, [_argument(a) for a in arguments])
        if got != expected:
            wrong.append(f"{function}({format_!r}, {arguments}): Go {expected!r}, ours {got!r}")
    assert not wrong, "\n".join(wrong)


def test_fmt_table_covers_the_verbs_of_the_issue() -> None:
    formats = "".join(c[1] for c in FMT_CASES)
    verbs = ["%s", "%d", "%v", "%+v", "%q", "%x", "%X", "%o", "%b", "%e", "%E", "%f", "%F", "%g",
             "%G", "%t", "%c", "%U", "%%"]  # fmt: skip
    for verb in verbs:
        assert verb in formats


ZONES = {
    "UTC": UTC,
    "CET": timezone(timedelta(hours=1), "CET"),
    "-0700": timezone(timedelta(hours=-7)),  # a zone without a name: Go prints its offset
    "IST": timezone(timedelta(hours=5, minutes=30), "IST"),
}
MOMENTS = {
    "nanos": (datetime(2024, 3, 5, 7, 8, 9), 123456789),
    "pm": (datetime(1999, 12, 31, 23, 59, 58), 120000000),
    "whole": (datetime(2021, 1, 10), 0),
}
TIME_CASES = [json.loads(line) for line in (DATA / "time_go119.jsonl").read_text().splitlines()]


def test_time_format_matches_go() -> None:
    wrong = []
    for case in TIME_CASES:
        zone, moment = case["time"].split(" ")
        naive, nanos = MOMENTS[moment]
        t = GoTime(naive.replace(tzinfo=ZONES[zone]), nanos)
        got = (t.format(case["layout"]), t.unix(), t.year_day(), t.weekday().go_string(),
               t.month().go_string())  # fmt: skip
        want = (case["out"], case["unix"], case["yday"], case["weekday"], case["month"])
        if got != want:
            wrong.append(f"{case['time']} {case['layout']!r}: Go {want}, ours {got}")
    assert not wrong, "\n".join(wrong)


def test_time_prints_as_go_with_monotonic_reading() -> None:
    now = GoTime.now_from(datetime(2024, 3, 5, 7, 8, 9, 120000, tzinfo=UTC))
    text = fmt.to_text(now)
    assert text.startswith("2024-03-05 07:08:09.12 +0000 UTC m=+")
    assert fmt.to_text(now.utc()) == "2024-03-05 07:08:09.12 +0000 UTC"  # UTC() drops it


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (2_000_000, "2ms"), (1_500_000_000, "1.5s"),
     (3_723_000_000_000, "1h2m3s"), (-90_000_000_000, "-1m30s")],
)  # fmt: skip
def test_duration_prints_as_go(nanoseconds: int, text: str) -> None:
    assert fmt.to_text(Duration(nanoseconds)) == text


def test_time_arithmetic() -> None:
    t = GoTime(datetime(2024, 1, 31, 12, 0, tzinfo=UTC), 0)
    assert t.add_date(0, 1, 0).format("2006-01-02") == "2024-03-02"  # Go normalises Feb 31
    assert t.add(3_600_000_000_000).format("15:04") == "13:00"
    assert fmt.to_text(t.add(90_000_000_000).sub(t)) == "1m30s"
    assert t.truncate(3_600_000_000_000 * 24).format(time_layout := "2006-01-02 15:04") == (
        "2024-01-31 00:00"
    )
    assert t.before(t.add(1)) and t.after(t.add(-1)) and t.equal(t)
    assert t.format(time_layout) == "2024-01-31 12:00"
