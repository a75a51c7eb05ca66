"""Making tasks and runs: shared by the API (tasks, first runs, triggers) and coordinators
(retries, cron slots, callback deliveries)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from skiplock.common import timeutil
from skiplock.common.ids import new_id
from skiplock.common.validation import TaskSpec
from skiplock.sql import statements


@dataclass(slots=True)  # made per run: a frozen __init__ costs three times as much
class NewRun:
    task_id: uuid.UUID
    attempt: int
    type: str
    queue: str
    priority: int
    scheduled_for: datetime
    due_at: datetime
    reason: str = "schedule"
    id: uuid.UUID = field(default_factory=new_id)
    concurrency_key: str | None = None  # the task's, copied as type and queue are
    concurrency_limit: int | None = None
    rate_limit: str | None = None


async def insert_runs(conn: asyncpg.Connection | asyncpg.Pool, runs: list[NewRun], now: datetime,
                      cron_slots: bool = False) -> int:
    """Insert pending runs (a slot already taken is skipped) and NOTIFY coordinators, in the
    caller's transaction. Returns how many were inserted. `cron_slots`: the runs are slots
    that a claim materialises, which a claim made again (after an unclaim) could repeat
    once the first copy has ended; the history is checked for them too."""
    if not runs:
        return 0
    return await statements.insert_runs(
        conn, ids=[r.id for r in runs], task_ids=[r.task_id for r in runs], attempts=[r.attempt for r in runs],
        types=[r.type for r in runs], queues=[r.queue for r in runs], priorities=[r.priority for r in runs],
        scheduled_for=[r.scheduled_for for r in runs], due_at=[r.due_at for r in runs],
        reasons=[r.reason for r in runs], now=now, check_history=cron_slots,
        concurrency_keys=[r.concurrency_key for r in runs], concurrency_limits=[r.concurrency_limit for r in runs],
        rate_limits=[r.rate_limit for r in runs])


def task_record(spec: TaskSpec, task_id: uuid.UUID) -> dict[str, Any]:
    """A task as insert_tasks takes it (one JSON record per task)."""
    return {
        "id": str(task_id), "name": spec.name, "type": spec.type, "payload": spec.payload,
        "queue": spec.queue, "priority": spec.priority,
        "run_at": timeutil.iso(spec.run_at), "cron": spec.cron, "timezone": spec.timezone,
        "catch_up": spec.catch_up, "overlap": spec.overlap, "max_attempts": spec.max_attempts,
        "timeout_s": spec.timeout_s, "retry_backoff_s": spec.retry_backoff_s,
        "retry_backoff_max_s": spec.retry_backoff_max_s, "retry_jitter": spec.retry_jitter,
        "idempotency_key": spec.idempotency_key,
        "request_hash": spec.request_hash() if spec.idempotency_key is not None else None,
        "concurrency_key": spec.concurrency_key, "concurrency_limit": spec.concurrency_limit,
        "rate_limit": spec.rate_limit, "dedup_key": spec.dedup_key, "dedup_while": spec.dedup_while,
        "dedup_on_duplicate": spec.dedup_on_duplicate, "callbacks": spec.callbacks,
    }


def first_run(record: dict[str, Any], fire: datetime, now: datetime) -> dict[str, Any]:
    """A task record with its first run (insert_tasks makes both): due at its fire time, or
    now if that has passed."""
    record["run_id"] = str(new_id())
    record["scheduled_for"] = timeutil.iso(fire)
    record["due_at"] = timeutil.iso(max(fire, now))
    return record
