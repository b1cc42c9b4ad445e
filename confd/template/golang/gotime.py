"""A Go `time.Time` for Go templates: what confd's `datetime` returns, with Go's methods.

`{{ (datetime).Format "2006-01-02T15:04:05Z07:00" }}`, `.Unix`, `.UTC`, `.Year`, `.Month` (which
prints `March`), ... follow Go's layouts and printing, including `String()`'s
`2006-01-02 15:04:05.999999999 -0700 MST m=+0.001` form. It wraps an aware `datetime` (the shared
`datetime` function's result) plus nanoseconds, so the Jinja and Go front ends share one clock.
`GO_METHODS` on each class lists what a template may call (name -> method, Go parameter types).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import ClassVar

__all__ = ["Duration", "GoLocation", "GoTime", "Month", "Weekday", "format_layout"]

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PROCESS_START_NS = time.monotonic_ns()  # Go's monotonic readings count from process start
_NANOS_PER_SECOND = 1_000_000_000


class Month(int):
    """Go's `time.Month`: an int that prints as its English name."""

    def go_string(self) -> str:
        if 1 <= self <= 12:
            return _MONTHS[self - 1]
        return f"%!Month({int(self)})"


class Weekday(int):
    """Go's `time.Weekday` (Sunday = 0): an int that prints as its English name."""

    def go_string(self) -> str:
        if 0 <= self <= 6:
            return _DAYS[self]
        return f"%!Weekday({int(self)})"


def _frac(v: int, prec: int) -> tuple[str, int]:
    """The fraction digits of v / 10**prec, trailing zeros dropped, and the integer part."""
    digits = ""
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        v //= 10
    return ("." + digits if printed else ""), v


class Duration(int):
    """Go's `time.Duration` (nanoseconds), printing as `1h2m3.5s`, `1.5ms`, `0s`."""

    def go_string(self) -> str:
        u = abs(int(self))
        sign = "-" if self < 0 else ""
        if u < _NANOS_PER_SECOND:
            if u == 0:
                return "0s"
            if u < 1_000:
                return f"{sign}{u}ns"
            if u < 1_000_000:
                frac, whole = _frac(u, 3)
                return f"{sign}{whole}{frac}µs"
            frac, whole = _frac(u, 6)
            return f"{sign}{whole}{frac}ms"
        frac, secs = _frac(u, 9)
        out = f"{secs % 60}{frac}s"
        minutes = secs // 60
        if minutes:
            out = f"{minutes % 60}m{out}"
            hours = minutes // 60
            if hours:
                out = f"{hours}h{out}"
        return sign + out

    GO_METHODS: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "String": ("go_string", ()),
        "Hours": ("hours", ()),
        "Minutes": ("minutes", ()),
        "Seconds": ("seconds", ()),
        "Milliseconds": ("milliseconds", ()),
        "Nanoseconds": ("nanoseconds", ()),
    }

    def hours(self) -> float:
        return int(self) / 3_600_000_000_000

    def minutes(self) -> float:
        return int(self) / 60_000_000_000

    def seconds(self) -> float:
        return int(self) / 1e9

    def milliseconds(self) -> int:
        return int(int(self) / 1_000_000)

    def nanoseconds(self) -> int:
        return int(self)


class GoLocation:
    """Go's `*time.Location`, printing as its name (`UTC`, `Local`, ...)."""

    GO_METHODS: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {"String": ("go_string", ())}

    def __init__(self, name: str) -> None:
        self.name = name

    def go_string(self) -> str:
        return self.name


class GoTime:
    """Go's `time.Time`: an aware datetime, its nanosecond, and whether it is in `Local`."""

    __slots__ = ("_dt", "_nsec", "_local", "_mono")

    GO_METHODS: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {
        "Format": ("format", ("string",)),
        "String": ("go_string", ()),
        "Unix": ("unix", ()),
        "UnixMilli": ("unix_milli", ()),
        "UnixMicro": ("unix_micro", ()),
        "UnixNano": ("unix_nano", ()),
        "UTC": ("utc", ()),
        "Local": ("local", ()),
        "Location": ("location", ()),
        "Year": ("year", ()),
        "Month": ("month", ()),
        "Day": ("day", ()),
        "Hour": ("hour", ()),
        "Minute": ("minute", ()),
        "Second": ("second", ()),
        "Nanosecond": ("nanosecond", ()),
        "YearDay": ("year_day", ()),
        "Weekday": ("weekday", ()),
        "IsZero": ("is_zero", ()),
        "Add": ("add", ("time.Duration",)),
        "AddDate": ("add_date", ("int", "int", "int")),
        "Sub": ("sub", ("time.Time",)),
        "Before": ("before", ("time.Time",)),
        "After": ("after", ("time.Time",)),
        "Equal": ("equal", ("time.Time",)),
        "Truncate": ("truncate", ("time.Duration",)),
    }

    def __init__(
        self, dt: datetime, nsec: int | None = None, *, local: bool = False,
        mono: int | None = None,
    ) -> None:  # fmt: skip
        if dt.tzinfo is None:
            dt = dt.astimezone()
            local = True
        self._dt = dt.replace(microsecond=0)
        self._nsec = dt.microsecond * 1000 if nsec is None else nsec
        self._local = local
        self._mono = mono

    @classmethod
    def now_from(cls, dt: datetime) -> GoTime:
        """`time.Now()` from the shared clock's aware local datetime (with a monotonic reading)."""
        return cls(dt, local=True, mono=time.monotonic_ns() - _PROCESS_START_NS)

    # -- printing ----------------------------------------------------------------------------

    def format(self, layout: str) -> str:
        return format_layout(self._dt, self._nsec, layout, self._zone_name())

    def go_string(self) -> str:
        text = self.format("2006-01-02 15:04:05.999999999 -0700 MST")
        if self._mono is None:
            return text
        m = self._mono
        sign = "-" if m < 0 else "+"
        m = abs(m)
        secs, nanos = divmod(m, _NANOS_PER_SECOND)
        return f"{text} m={sign}{secs}.{nanos:09d}"

    def _zone_name(self) -> str:
        tz = self._dt.tzinfo
        if tz is UTC or (isinstance(tz, timezone) and tz == UTC and not self._local):
            return "UTC"
        name = self._dt.tzname() or ""
        if name.startswith(("UTC+", "UTC-")):  # a nameless fixed zone: Go prints -0700
            return ""
        return name

    # -- values ------------------------------------------------------------------------------

    def _seconds(self) -> int:
        return (self._dt - _EPOCH) // timedelta(seconds=1)

    def unix(self) -> int:
        return self._seconds()

    def unix_milli(self) -> int:
        return self._seconds() * 1000 + self._nsec // 1_000_000

    def unix_micro(self) -> int:
        return self._seconds() * 1_000_000 + self._nsec // 1000

    def unix_nano(self) -> int:
        return self._seconds() * _NANOS_PER_SECOND + self._nsec

    def utc(self) -> GoTime:
        return GoTime(self._dt.astimezone(UTC), self._nsec)

    def local(self) -> GoTime:
        return GoTime(self._dt.astimezone(), self._nsec, local=True)

    def location(self) -> GoLocation:
        return GoLocation("Local" if self._local else (self._zone_name() or "UTC"))

    def year(self) -> int:
        return self._dt.year

    def month(self) -> Month:
        return Month(self._dt.month)

    def day(self) -> int:
        return self._dt.day

    def hour(self) -> int:
        return self._dt.hour

    def minute(self) -> int:
        return self._dt.minute

    def second(self) -> int:
        return self._dt.second

    def nanosecond(self) -> int:
        return self._nsec

    def year_day(self) -> int:
        return self._dt.timetuple().tm_yday

    def weekday(self) -> Weekday:
        return Weekday((self._dt.weekday() + 1) % 7)

    def is_zero(self) -> bool:
        return self._dt.year == 1 and self._dt.month == 1 and self._dt.day == 1 and (
            self._dt.hour == self._dt.minute == self._dt.second == self._nsec == 0
        )

    def _with(self, dt: datetime, nsec: int, keep_mono_offset: int | None = None) -> GoTime:
        mono = None if keep_mono_offset is None or self._mono is None else (
            self._mono + keep_mono_offset
        )
        return GoTime(dt, nsec, local=self._local, mono=mono)

    def add(self, d: int) -> GoTime:
        total = self._nsec + int(d)
        secs, nsec = divmod(total, _NANOS_PER_SECOND)
        dt = self._dt + timedelta(seconds=secs)
        if self._local:
            dt = dt.astimezone()
        return self._with(dt, nsec, int(d))

    def add_date(self, years: int, months: int, days: int) -> GoTime:
        dt = self._dt
        month_index = dt.month - 1 + months
        year = dt.year + years + month_index // 12
        base = datetime(year, month_index % 12 + 1, 1, dt.hour, dt.minute, dt.second)
        naive = base + timedelta(days=dt.day - 1 + days)
        tz: tzinfo | None = None if self._local else dt.tzinfo
        aware = naive.astimezone() if tz is None else naive.replace(tzinfo=tz)
        return GoTime(aware, self._nsec, local=self._local)

    def sub(self, other: GoTime) -> Duration:
        return Duration(self.unix_nano() - other.unix_nano())

    def before(self, other: GoTime) -> bool:
        return self.unix_nano() < other.unix_nano()

    def after(self, other: GoTime) -> bool:
        return self.unix_nano() > other.unix_nano()

    def equal(self, other: GoTime) -> bool:
        return self.unix_nano() == other.unix_nano()

    def truncate(self, d: int) -> GoTime:
        """Rounded down to a multiple of `d` since Go's zero time (no monotonic reading)."""
        if d <= 0:
            return GoTime(self._dt, self._nsec, local=self._local)
        zero_offset = 62135596800 * _NANOS_PER_SECOND  # year 1 to 1970, in nanoseconds
        rem = (self.unix_nano() + zero_offset) % int(d)
        result = self.add(-rem)
        result._mono = None
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GoTime):
            return NotImplemented
        return (self._dt, self._nsec, self._local, self._mono) == (
            other._dt, other._nsec, other._local, other._mono
        )

    def __hash__(self) -> int:
        return hash((self._dt, self._nsec))

    def __repr__(self) -> str:
        return f"GoTime({self.go_string()!r})"


# -- layouts ----------------------------------------------------------------------------------


def _next_chunk(layout: str) -> tuple[str, str, str, int]:  # noqa: C901 - one case per element
    """(prefix, element, suffix, digits) for the first layout element in `layout`."""
    n = len(layout)
    for i, c in enumerate(layout):
        rest = layout[i:]
        if c == "J" and rest.startswith("Jan"):
            if rest.startswith("January"):
                return layout[:i], "January", layout[i + 7 :], 0
            if not "a" <= layout[i + 3 : i + 4] <= "z":
                return layout[:i], "Jan", layout[i + 3 :], 0
        elif c == "M":
            if rest.startswith("Mon"):
                if rest.startswith("Monday"):
                    return layout[:i], "Monday", layout[i + 6 :], 0
                if not "a" <= layout[i + 3 : i + 4] <= "z":
                    return layout[:i], "Mon", layout[i + 3 :], 0
            if rest.startswith("MST"):
                return layout[:i], "MST", layout[i + 3 :], 0
        elif c == "0":
            if i + 1 < n and "1" <= layout[i + 1] <= "6":
                return layout[:i], rest[:2], layout[i + 2 :], 0
            if rest.startswith("002"):
                return layout[:i], "002", layout[i + 3 :], 0
        elif c == "1":
            if rest.startswith("15"):
                return layout[:i], "15", layout[i + 2 :], 0
            return layout[:i], "1", layout[i + 1 :], 0
        elif c == "2":
            if rest.startswith("2006"):
                return layout[:i], "2006", layout[i + 4 :], 0
            return layout[:i], "2", layout[i + 1 :], 0
        elif c == "_":
            if rest.startswith("_2"):
                if rest.startswith("_2006"):
                    return layout[: i + 1], "2006", layout[i + 5 :], 0
                return layout[:i], "_2", layout[i + 2 :], 0
            if rest.startswith("__2"):
                return layout[:i], "__2", layout[i + 3 :], 0
        elif c in "345":
            return layout[:i], c, layout[i + 1 :], 0
        elif c == "P" and rest.startswith("PM"):
            return layout[:i], "PM", layout[i + 2 :], 0
        elif c == "p" and rest.startswith("pm"):
            return layout[:i], "pm", layout[i + 2 :], 0
        elif c in "-Z":
            for zone in ("070000", "07:00:00", "0700", "07:00", "07"):
                if rest.startswith(c + zone):
                    return layout[:i], c + zone, layout[i + 1 + len(zone) :], 0
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not (j < n and "0" <= layout[j] <= "9"):
                return layout[:i], c + ch, layout[j:], j - (i + 1)
    return layout, "", "", 0


def format_layout(dt: datetime, nsec: int, layout: str, zone_name: str) -> str:
    """`dt` (with nanosecond `nsec`) formatted by Go reference layout `layout`."""
    out: list[str] = []
    offset = dt.utcoffset()
    offset_seconds = int(offset.total_seconds()) if offset is not None else 0
    while layout:
        prefix, element, layout, digits = _next_chunk(layout)
        out.append(prefix)
        if not element:
            break
        out.append(_element(dt, nsec, element, digits, offset_seconds, zone_name))
    return "".join(out)


def _element(  # noqa: C901 - one case per layout element
    dt: datetime, nsec: int, element: str, digits: int, offset: int, zone_name: str
) -> str:
    if element == "2006":
        return f"{dt.year:04d}"
    if element == "06":
        return f"{dt.year % 100:02d}"
    if element == "January":
        return _MONTHS[dt.month - 1]
    if element == "Jan":
        return _MONTHS[dt.month - 1][:3]
    if element == "1":
        return str(dt.month)
    if element == "01":
        return f"{dt.month:02d}"
    weekday = _DAYS[(dt.weekday() + 1) % 7]
    if element == "Monday":
        return weekday
    if element == "Mon":
        return weekday[:3]
    if element == "2":
        return str(dt.day)
    if element == "_2":
        return f"{dt.day:2d}"
    if element == "02":
        return f"{dt.day:02d}"
    yday = dt.timetuple().tm_yday
    if element == "__2":
        return f"{yday:3d}"
    if element == "002":
        return f"{yday:03d}"
    if element == "15":
        return f"{dt.hour:02d}"
    hour12 = dt.hour % 12 or 12
    if element == "3":
        return str(hour12)
    if element == "03":
        return f"{hour12:02d}"
    if element == "4":
        return str(dt.minute)
    if element == "04":
        return f"{dt.minute:02d}"
    if element == "5":
        return str(dt.second)
    if element == "05":
        return f"{dt.second:02d}"
    if element == "PM":
        return "PM" if dt.hour >= 12 else "AM"
    if element == "pm":
        return "pm" if dt.hour >= 12 else "am"
    if element == "MST":
        if zone_name:
            return zone_name
        minutes = abs(offset) // 60
        return f"{'-' if offset < 0 else '+'}{minutes // 60:02d}{minutes % 60:02d}"
    if element[0] in "-Z":
        if element[0] == "Z" and offset == 0:
            return "Z"
        minutes = abs(offset) // 60
        text = ("-" if offset < 0 else "+") + f"{minutes // 60:02d}"
        colon = ":" if ":" in element else ""
        if element[1:] not in ("07",):
            text += colon + f"{minutes % 60:02d}"
        if element[1:] in ("070000", "07:00:00"):
            text += colon + f"{abs(offset) % 60:02d}"
        return text
    if element[0] in ".,":
        nanos = f"{nsec:09d}"[: min(digits, 9)]
        if element[1] == "9":
            nanos = nanos.rstrip("0")
            if not nanos:
                return ""
        return element[0] + nanos
    raise AssertionError(f"unknown layout element {element!r}")

