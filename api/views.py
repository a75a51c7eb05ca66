"""How tasks and runs look on the wire: the README's "A task, as returned" and the OpenAPI Task and Run."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from skiplock.common import secrets, timeutil
from skiplock.common.states import TaskStatus, task_state

PREVIEW = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_view(r: Mapping[str, Any], waiting: dict[str, Any] | None = None) -> dict[str, Any]:
    started, finished = r["started_at"], r["finished_at"]
    duration = (
        round((finished - started).total_seconds() * 1000) if started and finished else None
    )
    due = r["due_at"]
    return {
        "id": str(r["id"]),
        "task_id": str(r["task_id"]),
        "attempt": r["attempt"],
        "state": r["state"],
        "type": r["type"],
        "queue": r["queue"],
        "reason": r["reason"],
        "scheduled_for": timeutil.iso(r["scheduled_for"]),
        "due_at": timeutil.iso(due) if due is not None and not _infinite(due) else None,
        "started_at": timeutil.iso(started),
        "finished_at": timeutil.iso(finished),
        "duration_ms": duration,
        "worker_id": r["worker_id"],
        "result": r["result"],
        "error": r["error"],
        "waiting": waiting,
    }


def _infinite(value: Any) -> bool:
    # asyncpg maps 'infinity' to datetime.max (naive or aware depending on version)
    return isinstance(value, datetime) and value.year == 9999


def task_view(t: Mapping[str, Any], last_run: Mapping[str, Any] | None,
              waiting: dict[str, Any] | None = None) -> dict[str, Any]:
    status = t["status"]
    next_due = t["next_due"] if status == TaskStatus.ACTIVE else None
    next_runs: list[str | None] = []
    if next_due is not None:
        next_runs = [timeutil.iso(next_due)]
        if t["cron"]:
            more = timeutil.cron_preview(t["cron"], t["timezone"], next_due, PREVIEW - 1)
            next_runs += [timeutil.iso(m) for m in more]
    return {
        "id": str(t["id"]),
        "name": t["name"],
        "type": t["type"],
        "payload": secrets.redact_headers(t["payload"]) if t["type"] == "http" else t["payload"],
        "queue": t["queue"],
        "priority": t["priority"],
        "run_at": timeutil.iso(t["run_at"]),
        "cron": t["cron"],
        "timezone": t["timezone"],
        "catch_up": t["catch_up"] if t["cron"] else None,
        "overlap": t["overlap"] if t["cron"] else None,
        "state": task_state(status, t["has_running"]).value,
        "next_run_at": timeutil.iso(next_due),
        "next_runs": next_runs,
        "max_attempts": t["max_attempts"],
        "timeout_s": t["timeout_s"],
        "retry_backoff_s": t["retry_backoff_s"],
        "retry_backoff_max_s": t["retry_backoff_max_s"],
        "retry_jitter": t["retry_jitter"],
        "idempotency_key": t["idempotency_key"],
        "concurrency": ({"key": t["concurrency_key"], "limit": t["concurrency_limit"]}
                        if t["concurrency_key"] is not None else None),
        "rate_limit": t["rate_limit"],
        "callbacks": t["callbacks"],
        "dedup": ({"key": t["dedup_key"], "while": t["dedup_while"], "on_duplicate": t["dedup_on_duplicate"]}
                  if t["dedup_key"] is not None else None),
        "quarantined": status == TaskStatus.QUARANTINED,
        "lost_runs": t["lost_runs"],
        "created_at": timeutil.iso(t["created_at"]),
        "updated_at": timeutil.iso(t["updated_at"]),
        "last_run": run_view(last_run) if last_run is not None else None,
        "waiting": waiting,
    }


# A cursor is a keyset position: (created_at in microseconds since the epoch, id). Every
# string of this shape is a position (a page after it may be empty), so a client can only get
# a 400 for a cursor that is not of the shape the spec states.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    micros = (created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{id_.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """ValueError when the cursor is not of the shape we issue."""
    if not _CURSOR.match(cursor):
        raise ValueError("not a cursor this API issued; pass next_cursor back unchanged")
    micros, _, ident = cursor.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=ident)
