"""`StopSignal`: the stop a daemon watch hands its backend, which wakes a backend's blocked wait
as it is set (instead of the backend waking several times a second to look)."""

from __future__ import annotations

import threading

from plugin_sdk.database import IDLE_WAIT, STOP_POLL, StopSignal, idle_wait, when_stopped


def test_a_callback_runs_when_the_signal_is_set_and_only_then() -> None:
    stop = StopSignal()
    calls: list[str] = []
    forget = when_stopped(stop, lambda: calls.append("woken"))
    assert forget is not None
    assert calls == []
    stop.set()
    assert calls == ["woken"]
    stop.set()  # setting again runs nothing twice
    assert calls == ["woken"]
    assert stop.is_set()


def test_a_callback_given_after_the_signal_was_set_runs_at_once() -> None:
    stop = StopSignal()
    stop.set()
    calls: list[str] = []
    assert when_stopped(stop, lambda: calls.append("woken")) is not None
    assert calls == ["woken"]


def test_a_forgotten_callback_does_not_run() -> None:
    stop = StopSignal()
    calls: list[str] = []
    forget = when_stopped(stop, lambda: calls.append("first"))
    when_stopped(stop, lambda: calls.append("second"))
    assert forget is not None
    forget()
    stop.set()
    assert calls == ["second"]


def test_a_plain_event_cannot_wake_anyone_and_says_so() -> None:
    calls: list[str] = []
    assert when_stopped(threading.Event(), lambda: calls.append("woken")) is None
    assert calls == []


def test_it_is_still_an_event_to_wait_on() -> None:
    stop = StopSignal()
    threading.Timer(0.05, stop.set).start()
    assert stop.wait(5)


def test_a_watch_may_wait_long_only_when_its_stop_can_wake_it() -> None:
    assert idle_wait(StopSignal()) == IDLE_WAIT
    assert idle_wait(threading.Event()) == STOP_POLL
    assert STOP_POLL * 5 <= 1.0 < IDLE_WAIT  # a plain Event is seen within the contract's second
