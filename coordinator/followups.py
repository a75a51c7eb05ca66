"""What follows a run's end, for results and reaped runs alike: retries, a one-off task's
final state, and quarantine for tasks whose runs keep losing their workers."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from skiplock.common.timeutil import NEVER
from skiplock.coordinator import callbacks
from skiplock.coordinator.policy import final_task_status, retry_delay
from skiplock.sql import statements
from skiplock.sql.new_runs import NewRun, insert_runs
from skiplock.sql.statements import EndedRun


@dataclass(slots=True)  # made per result: a frozen __init__ costs three times as much
class ResultRow:
    """One result as a worker reported it."""

    run_id: uuid.UUID
    token: uuid.UUID
    worker_id: str
    state: str  # succeeded | failed | cancelled
    result: str | None  # JSON text
    error: str | None
    finished_at: datetime
    retryable: bool = True
    retry_after_s: float = 0.0
    released: bool = False  # handed back by a worker shutting down
    throttled: bool = False  # the target asked to slow down: pause the run's rate limit


@dataclass
class Applied:
    rows: list[EndedRun]
    retries: int
    quarantined: list[uuid.UUID]
    duplicates: set[uuid.UUID] = field(default_factory=set)


async def apply_followups(conn: asyncpg.Connection, rows: Sequence[EndedRun], now: datetime,
                          max_lost_runs: int) -> Applied:
    """In the caller's transaction: count lost runs (quarantining past the limit), insert
    retries, and finish one-off tasks whose last run ended."""
    lost = Counter(r["task_id"] for r in rows if r["lost"])
    quarantined: list[uuid.UUID] = []
    if lost:
        ids = list(lost)
        res = await statements.count_lost_runs(conn, task_ids=ids, counts=[lost[i] for i in ids],
                                            max_lost_runs=max_lost_runs, now=now)
        quarantined = [r["id"] for r in res if r["status"] == "quarantined"]
        if quarantined:
            await statements.hold_pending_runs(conn, task_ids=quarantined)
    parked = set(quarantined)
    retries: list[NewRun] = []
    retried: set[uuid.UUID] = set()
    for r in rows:
        if r["state"] != "failed" or r["task_status"] not in ("active", "paused") or r["task_id"] in parked:
            continue
        if r["released"]:
            delay = 0.0  # a shutdown is not the task's fault: run it again now, attempts or not
        elif r["retryable"] and r["attempt"] < r["max_attempts"]:
            delay = retry_delay(r["attempt"], r["retry_backoff_s"], r["retry_backoff_max_s"],
                                r["retry_jitter"], r["retry_after_s"])
        else:
            continue
        # A paused task's retry waits for resume, like its other pending runs.
        due = now + timedelta(seconds=delay) if r["task_status"] == "active" else NEVER
        retried.add(r["id"])
        retries.append(NewRun(task_id=r["task_id"], attempt=r["attempt"] + 1, type=r["type"],
                              queue=r["queue"], priority=r["priority"], scheduled_for=r["scheduled_for"],
                              due_at=due, reason="retry", concurrency_key=r["concurrency_key"],
                              concurrency_limit=r["concurrency_limit"], rate_limit=r["rate_limit"]))
    await insert_runs(conn, retries, now)
    finals: dict[str, list[uuid.UUID]] = {}
    for r in rows:
        if r["cron"] is None:
            finals.setdefault(final_task_status(r["state"]), []).append(r["task_id"])
    for status, task_ids in finals.items():
        await statements.finish_tasks(conn, task_ids=task_ids, status=status, now=now)
    final_of = {t: status for status, ids in finals.items() for t in ids}
    events = [callbacks.ended_event(kind, r) for r in rows if r["callbacks"]
              for kind in callbacks.ended_events(r, r["id"] in retried, final_of.get(r["task_id"]))]
    if events:
        await callbacks.deliver(conn, events, now)
    cron_tasks = list({r["task_id"] for r in rows if r["cron"] is not None})
    if cron_tasks:  # a slot queued behind this run (overlap=queue) may start now
        await statements.release_queued(conn, task_ids=cron_tasks, now=now)
    return Applied(list(rows), len(retries), quarantined)


async def apply_results(conn: asyncpg.Connection, results: Sequence[ResultRow], now: datetime,
                        max_lost_runs: int) -> Applied:
    """Write a batch of results (fenced by lease token and worker) and their follow-ups in
    one transaction. Rows missing from `Applied.rows` were re-sent duplicates
    (`Applied.duplicates`) or stale."""
    async with conn.transaction():
        rows = await statements.finish_runs(
            conn, run_ids=[r.run_id for r in results], tokens=[r.token for r in results],
            states=[r.state for r in results], results=[r.result for r in results],
            errors=[r.error for r in results], finished_at=[r.finished_at for r in results],
            retryable=[r.retryable for r in results], retry_after_s=[r.retry_after_s for r in results],
            released=[r.released for r in results], worker_ids=[r.worker_id for r in results])
        applied = await apply_followups(conn, rows, now, max_lost_runs)
        await _pause_throttled(conn, results, rows, now)
        if len(rows) < len(results):
            done = {r["id"] for r in rows}
            rest = [r for r in results if r.run_id not in done]
            dup = await statements.already_applied(conn, run_ids=[r.run_id for r in rest],
                                                  tokens=[r.token for r in rest])
            applied.duplicates = {d["id"] for d in dup}
        return applied


MAX_THROTTLE_S = 3600.0  # a Retry-After is honoured up to an hour


async def _pause_throttled(conn: asyncpg.Connection, results: Sequence[ResultRow], rows: Sequence[EndedRun],
                           now: datetime) -> None:
    """A target that answered 429/503 with Retry-After pauses the whole rate limit of the
    run's task until then, not only this run's retry."""
    throttled = {r.run_id: r.retry_after_s for r in results if r.throttled and r.retry_after_s > 0}
    until: dict[str, datetime] = {}
    for row in rows:
        if row["id"] in throttled and row["rate_limit"] is not None:
            at = now + timedelta(seconds=min(throttled[row["id"]], MAX_THROTTLE_S))
            until[row["rate_limit"]] = max(at, until.get(row["rate_limit"], at))
    if until:
        names = sorted(until)
        await statements.pause_rate_limits(conn, names=names, until=[until[n] for n in names], now=now)


async def reap(conn: asyncpg.Connection, now: datetime, max_lost_runs: int, limit: int = 1000) -> Applied:
    """Fail runs whose lease or deadline passed, with retries as for any failure."""
    async with conn.transaction():
        rows = await statements.reap_expired(conn, now=now, limit=limit)
        return await apply_followups(conn, rows, now, max_lost_runs)

