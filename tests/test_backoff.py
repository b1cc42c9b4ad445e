"""Backoff: doubling, capped, jittered within bounds, reset after success."""

from __future__ import annotations

import pytest

from confd.backoff import Backoff


@pytest.mark.parametrize(
    ("rand", "expected"),
    [
        (lambda: 0.5, [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]),  # no jitter: doubles, then capped
        (lambda: 0.0, [0.16, 0.32, 0.64, 1.28, 2.56, 4.0, 4.0]),  # lowest jitter
        (lambda: 0.999999, [0.24, 0.48, 0.96, 1.92, 3.84, 5.0, 5.0]),  # highest, still capped
    ],
)
def test_delays_double_and_stay_under_the_cap(rand, expected):
    backoff = Backoff(initial=0.2, maximum=5.0, jitter=0.2, rand=rand)
    delays = [backoff.next() for _ in expected]
    assert delays == pytest.approx(expected, rel=1e-4)


def test_real_jitter_spreads_delays_within_bounds():
    delays = set()
    for _ in range(50):
        backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.5)
        backoff.next()
        delay = backoff.next()
        assert 1.0 <= delay <= 3.0
        delays.add(round(delay, 6))
    assert len(delays) > 10


def test_reset_starts_over():
    backoff = Backoff(initial=0.5, maximum=8.0, jitter=0.0)
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 0.5
    assert backoff.failures == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.0}],
)
def test_bad_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError, match="bad backoff"):
        Backoff(**kwargs)
