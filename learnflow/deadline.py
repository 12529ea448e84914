"""Time budgets as values: create one ``Deadline`` and pass it down the call chain."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on the monotonic clock.

    >>> d = Deadline.after(5.0)
    >>> 0.0 < d.remaining() <= 5.0
    True
    """

    at: float
    budget: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(at=time.monotonic() + seconds, budget=seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def cap(self, seconds: float) -> float:
        """The smaller of ``seconds`` and what is left: a per-call timeout inside this budget."""
        return min(seconds, self.remaining())
