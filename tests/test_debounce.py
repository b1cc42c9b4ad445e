"""Debounce windows and the render schedule: bursts collapse, max bounds the delay."""

from __future__ import annotations

import threading
import time

import pytest

from confd.config.durations import Wait, parse_duration, parse_wait
from confd.errors import ConfigError
from confd.run.schedule import Schedule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("500ms", 0.5), ("2s", 2.0), ("1m30s", 90.0), ("1h", 3600.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "2x", "1s2", "-1s"])
def test_parse_duration_rejects_garbage(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text, "resource web.toml: wait")


@pytest.mark.parametrize(
    ("text", "wait"),
    [
        ("1s:5s", Wait(1.0, 5.0)),
        ("200ms:2s", Wait(0.2, 2.0)),
        ("1", Wait(1.0, 4.0)),
        ("", None),
        ("0:0", None),
    ],
)
def test_parse_wait(text, wait):
    assert parse_wait(text) == wait


def test_wait_max_below_min_is_an_error():
    with pytest.raises(ConfigError, match="min <= max"):
        parse_wait("5s:1s")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _due(schedule: Schedule) -> list:
    """Entries due now, without blocking (the schedule is closed after)."""
    result: list = []
    done = threading.Event()

    def take() -> None:
        result.extend(schedule.take())
        done.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    done.wait(0.2)
    if not done.is_set():
        schedule.close()
        thread.join()
    return result


def test_request_without_wait_is_due_at_once():
    schedule = Schedule(FakeClock())
    schedule.request("web")
    assert _due(schedule) == ["web"]


def test_burst_is_pushed_out_by_min_but_bounded_by_max():
    clock = FakeClock()
    schedule = Schedule(clock)
    wait = Wait(1.0, 3.0)
    for _ in range(10):  # a burst: a request every 0.5 s for 5 s
        schedule.request("web", wait)
        clock.now += 0.5
        if clock.now < 103.0:
            assert schedule._pending["web"].due == pytest.approx(clock.now + 0.5)
    assert schedule._pending["web"].due == pytest.approx(103.0)  # first + max
    assert _due(schedule) == ["web"]
    assert schedule.pending() == 0


def test_not_before_throttles():
    clock = FakeClock()
    schedule = Schedule(clock)
    schedule.request("web", None, not_before=clock.now + 10)
    assert schedule._pending["web"].due == pytest.approx(110.0)
    assert _due(schedule) == []
    clock.now = 110.0
    schedule._closed = False
    assert _due(schedule) == ["web"]


def test_take_wakes_when_a_debounced_entry_comes_due():
    schedule = Schedule()
    start = time.monotonic()
    schedule.request("web", Wait(0.15, 1.0))
    assert schedule.take() == ["web"]
    assert 0.14 <= time.monotonic() - start < 0.6


def test_close_wakes_a_blocked_take():
    schedule = Schedule()
    got: list = [None]
    thread = threading.Thread(target=lambda: got.__setitem__(0, schedule.take()))
    thread.start()
    time.sleep(0.05)
    schedule.close()
    thread.join(2)
    assert got[0] == []
