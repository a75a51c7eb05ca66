"""Exponential backoff with jitter, the one used by every retry loop of skiplock."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """`next()` gives the delay before the next try: base · 2^n, capped at `cap`, with
    equal jitter (uniform in [d/2, 3d/2)) so a fleet that failed together does not retry
    together. `reset()` after a success."""

    base: float = 0.1
    cap: float = 5.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    _current: float = field(default=0.0, init=False, repr=False)

    def next(self) -> float:
        self._current = self.base if self._current == 0 else min(self._current * 2, self.cap)
        return self._current * (0.5 + self.rand())

    def reset(self) -> None:
        self._current = 0.0

    @property
    def current(self) -> float:
        """The undithered delay of the last `next()` (0 after a reset)."""
        return self._current
