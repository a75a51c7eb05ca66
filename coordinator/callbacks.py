"""Callbacks: a task's `callbacks` ([{"url", "events", "headers"}]) hear of its runs.

Events: `succeeded` (a run succeeded), `failed` (a one-off task failed for good: out of
attempts or not retryable), `retrying` (a run failed and another attempt follows), `skipped`
(a cron slot did not run), `recovered` (a success right after a failure). Each delivery is
an ordinary `http` task, made in the same transaction as the result that caused it: it is
retried, obeys the workers' network guard, is signed when workers have
SKIPLOCK_WEBHOOK_SECRET, and appears in the history like any other task. Delivery is at
least once; its `webhook-id` (the Idempotency-Key of its run) is the same for every attempt.
An idempotency key per (run, event, callback) makes each delivery once however often the
code that makes it runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.common.ids import new_id
from skiplock.common.validation import validate_create
from skiplock.sql import statements
from skiplock.sql.new_runs import first_run, task_record

log = logs.get("skiplock.callbacks")
DELIVERY_ATTEMPTS = 8  # 1 s, 2 s, 4 s … up to 5 min apart: a receiver may be down a while


@dataclass(frozen=True)
class Event:
    kind: str  # succeeded | failed | retrying | skipped | recovered
    callbacks: list[dict[str, Any]]
    task: dict[str, Any]
    run: dict[str, Any]
    run_id: uuid.UUID
    queue: str


def event_body(e: Event, now: datetime) -> dict[str, Any]:
    return {"type": f"skiplock.task.{e.kind}", "timestamp": timeutil.iso(now), "task": e.task, "run": e.run}


def ended_events(row: Any, retried: bool, final_status: str | None) -> list[str]:
    """The events one ended run (a result or a reaped run) raises."""
    if row["state"] == "succeeded":
        return ["succeeded", *(["recovered"] if row["previous_state"] == "failed" else [])]
    if row["state"] == "failed":
        if retried:
            return ["retrying"]
        if row["cron"] is None and final_status == "failed":
            return ["failed"]
    return []


def _event(kind: str, row: Any, state: str, finished_at: datetime | None, result: Any, error: str | None) -> Event:
    task = {"id": str(row["task_id"]), "name": row["task_name"], "type": row["type"], "queue": row["queue"]}
    run = {"id": str(row["id"]), "attempt": row["attempt"], "state": state,
           "scheduled_for": timeutil.iso(row["scheduled_for"]), "finished_at": timeutil.iso(finished_at),
           "result": result, "error": error}
    return Event(kind, row["callbacks"], task, run, row["id"], row["queue"])


def ended_event(kind: str, row: Any) -> Event:
    result = row["result"]
    return _event(kind, row, row["state"], row["finished_at"],
                  json.loads(result) if isinstance(result, str) else result, row["error"])


def skipped_event(row: Any, why: str, now: datetime) -> Event:
    return _event("skipped", row, "skipped", now, None, why)


async def deliver(conn: asyncpg.Connection, events: Iterable[Event], now: datetime) -> int:
    """Make the delivery tasks for `events`, in the caller's transaction; returns how many."""
    records: list[dict[str, Any]] = []
    for e in events:
        body = event_body(e, now)
        for i, cb in enumerate(e.callbacks):
            if e.kind not in cb.get("events", ()):
                continue
            spec, errors = validate_create({
                "type": "http", "name": f"callback {e.kind}: {e.task['name']}"[:200], "queue": e.queue,
                "payload": {"url": cb["url"], "method": "POST", "headers": cb.get("headers") or {}, "json": body},
                "max_attempts": DELIVERY_ATTEMPTS, "timeout_s": 30,
                "idempotency_key": f"skiplock.callback:{e.run_id}:{e.kind}:{i}"})
            if spec is None:  # checked when the task was made; a rule changed since
                log.warning("callback_refused", task_id=e.task["id"], errors=[x.message for x in errors])
                continue
            records.append(first_run(task_record(spec, new_id()), now, now))
    if not records:
        return 0
    return len(await statements.insert_tasks(conn, records=records, now=now))
