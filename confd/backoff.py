"""Exponential backoff with jitter, capped: how long to wait before reconnecting.

Jitter spreads the retries of many confd instances so a recovering server is not hit in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays that double from `initial` up to `maximum`, each scaled by a random jitter factor.

    `next()` returns the delay before the next attempt; `reset()` after a success starts over.
    The jittered delay never exceeds `maximum`.
    """

    def __init__(
        self,
        initial: float = 0.2,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(
                f"bad backoff: initial={initial} maximum={maximum} factor={factor} jitter={jitter}"
            )
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return the delay before retrying."""
        base = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        spread = 1.0 + self.jitter * (2.0 * self._rand() - 1.0)
        return min(self.maximum, base * spread)

    def reset(self) -> None:
        """Forget past failures (call after a success)."""
        self.failures = 0
