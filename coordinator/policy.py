"""Pure decisions: when a retry runs, and where a cron task's next slot is."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

from skiplock.common import timeutil
from skiplock.common.states import TaskStatus

# catch_up=all replays at most this many missed slots, then jumps to the present.
CATCH_UP_ALL_LIMIT = 100


def retry_delay(attempt: int, base_s: float, cap_s: float, jitter: bool,
                retry_after_s: float = 0.0, rand: Callable[[], float] = random.random) -> float:
    """Seconds before attempt `attempt + 1`: base · 2^(attempt-1), capped, with full jitter
    (uniform in [0, delay]) unless disabled; never less than the server's Retry-After."""
    delay = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    if jitter:
        delay = rand() * delay
    return max(delay, retry_after_s)


def next_slot(cron: str, tz: str, catch_up: str, after: datetime, now: datetime) -> tuple[datetime, str]:
    """The slot to materialise after the slot `after` was claimed at `now`.

    - On time: the next fire time.
    - Behind (fire times between `after` and `now` were missed while nothing ran):
      `latest` — the claimed run stands for the whole missed window; next is the first fire
      after now. `none` — same, missed fires are not run. `all` — every missed fire runs, in
      order, when there are at most CATCH_UP_ALL_LIMIT of them (else it jumps to the present).
    """
    nxt = timeutil.cron_next(cron, tz, after)
    if nxt > now:
        return nxt, "schedule"
    if catch_up == "all":
        _, missed = timeutil.cron_latest_at_or_before(cron, tz, after, now, limit=CATCH_UP_ALL_LIMIT + 1)
        if missed <= CATCH_UP_ALL_LIMIT:
            return nxt, "catch_up"
    return timeutil.cron_next(cron, tz, now), "schedule"


def final_task_status(run_state: str) -> str:
    """A one-off task ends as its last run did (the names are the same by design)."""
    status = TaskStatus(run_state)
    if status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise ValueError(f"{run_state!r} is not a final run state")
    return status.value
