"""Retry policies: how often a failed task runs again, and how long it waits first."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from taskservice.core.model.errors import RaisedElsewhere


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Run a failed task again, up to max_attempts runs in all, with exponential backoff and jitter.

    Only failures whose exception is an instance of one of `retry_on` are retried; stops, time limits
    and results that are not JSON never are.
    """

    max_attempts: int = 3
    # Seconds before the second run; each later wait is `multiplier` times the one before, up to max_backoff.
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0
    # Each wait is moved by up to ±jitter of itself, so a burst of failures does not retry in lockstep.
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff < 0 or self.multiplier < 1 or self.max_backoff < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff and max_backoff must be >= 0, multiplier >= 1, jitter within 0..1")

    def should_retry(self, error: BaseException | None, attempt: int) -> bool:
        """Whether run number `attempt`, which failed with `error`, gets another run. A failure in a worker process
        matches by the qualified names of its exception's class and bases."""
        if error is None or attempt >= self.max_attempts:
            return False
        if isinstance(error, RaisedElsewhere):
            return any(f"{kind.__module__}.{kind.__qualname__}" in error.type_names for kind in self.retry_on)
        return isinstance(error, self.retry_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after run number `attempt` failed."""
        try:
            grown = self.backoff * self.multiplier ** (attempt - 1)
        except OverflowError:  # past about 1,024 doublings: far beyond any cap
            grown = math.inf
        base = min(self.max_backoff, grown)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))
