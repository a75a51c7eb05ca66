"""Every named statement of sql/queries.sql as one thin keyword-only function: the `$n` order
of a statement lives here, next to its name, and nowhere else (a test keeps `query(...)` out
of every other module). Rows that code reads many fields of come back typed (ClaimedRun,
EndedRun); tests check their fields against the statements' RETURNING lists."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg

from skiplock.sql import query

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
RecordT = TypeVar("RecordT", bound=asyncpg.Record)


class Row:
    """Typed rows still answer row["field"], as the records they replace did."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _typed_record(cls: type[RecordT]) -> type[RecordT]:
    """A Record subclass whose annotated fields, in order, are the statement's RETURNING
    list (a test holds them equal): each becomes a property reading that column. asyncpg
    makes rows of the class itself (record_class=), so a typed row costs nothing to make,
    where filling a frozen dataclass per row was a sixth of a coordinator's CPU in a drain."""
    for i, name in enumerate(cls.__annotations__):
        setattr(cls, name, property(operator.itemgetter(i)))
    return cls


def fields(cls: type[asyncpg.Record]) -> list[str]:
    """A typed record's fields, in order."""
    return list(cls.__annotations__)


@_typed_record
class ClaimedRun(asyncpg.Record):  # type: ignore[misc]  # asyncpg has no type for Record
    """A run the claim moved to `running`, with what its worker and the cron policies need."""

    id: uuid.UUID
    lease_token: uuid.UUID
    task_id: uuid.UUID
    task_name: str
    concurrency_key: str | None
    concurrency_limit: int | None
    rate_limit: str | None
    type: str
    payload: str  # JSON text, passed through to the worker as is
    due_at: datetime
    attempt: int
    max_attempts: int
    timeout_s: float
    scheduled_for: datetime
    queue: str
    priority: int
    worker_id: str
    reason: str
    cron: str | None
    timezone: str
    catch_up: str
    overlap: str
    task_status: str
    callbacks: list[dict[str, Any]] | None
    picked: int  # how many runs the claim locked (the same in every row)


@_typed_record
class EndedRun(asyncpg.Record):  # type: ignore[misc]
    """A run that ended (a worker's result, or the reaper), with what its follow-ups need."""

    id: uuid.UUID
    task_id: uuid.UUID
    state: str
    attempt: int
    scheduled_for: datetime
    type: str
    queue: str
    priority: int
    retryable: bool
    retry_after_s: float
    released: bool
    lost: bool
    max_attempts: int
    cron: str | None
    task_status: str
    retry_backoff_s: float
    retry_backoff_max_s: float
    retry_jitter: bool
    concurrency_key: str | None
    concurrency_limit: int | None
    rate_limit: str | None
    # What callbacks need (result and error are NULL for tasks without callbacks).
    callbacks: list[dict[str, Any]] | None
    task_name: str
    result: str | None
    error: str | None
    finished_at: datetime
    previous_state: str | None  # the task's ended run before this one


async def claim(conn: Conn, *, now: datetime, horizon: datetime, types: Sequence[str], queues: Sequence[str],
                slots: Sequence[str], coordinator_id: str, lease_s: float, timeout_grace_s: float,
                paused: Sequence[str] = ()) -> list[ClaimedRun]:
    """Claim up to len(slots) runs due by `horizon`, one per slot (a worker id each), none
    of a paused queue (`paused`: those this coordinator knows of; the statement checks too)."""
    return await conn.fetch(query("claim"), now, list(types), list(queues), len(slots), list(slots),
                            coordinator_id, lease_s, timeout_grace_s, horizon, list(paused), record_class=ClaimedRun)


async def finish_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID], tokens: Sequence[uuid.UUID],
                      states: Sequence[str], results: Sequence[str | None], errors: Sequence[str | None],
                      finished_at: Sequence[datetime], retryable: Sequence[bool], retry_after_s: Sequence[float],
                      released: Sequence[bool], worker_ids: Sequence[str]) -> list[EndedRun]:
    """Apply results, fenced by lease token and worker; those that do not apply are absent."""
    return await conn.fetch(query("finish_runs"), list(run_ids), list(tokens), list(states),
                            list(results), list(errors), list(finished_at), list(retryable), list(retry_after_s),
                            list(released), list(worker_ids), record_class=EndedRun)


async def reap_expired(conn: Conn, *, now: datetime, limit: int) -> list[EndedRun]:
    """Fail running runs whose lease or deadline passed."""
    return await conn.fetch(query("reap_expired"), now, limit, record_class=EndedRun)


async def heartbeats(conn: Conn, *, worker_ids: Sequence[str], running: Sequence[int], draining: Sequence[bool],
                     run_ids: Sequence[uuid.UUID], tokens: Sequence[uuid.UUID], run_workers: Sequence[str],
                     now: datetime, lease_s: float, coordinator_id: str) -> list[asyncpg.Record]:
    """Mark workers alive and extend the leases they report; returns (id, worker_id) held."""
    return await conn.fetch(query("heartbeats"), list(worker_ids), list(running), list(draining), list(run_ids),
                            list(tokens), list(run_workers), now, lease_s, coordinator_id)


@dataclass(frozen=True)
class NextDue(Row):
    due_at: datetime | None  # the earliest finite due time after `after`
    token_at: datetime | None  # the earliest time after `now` a bucket holding back a due run refills


async def next_due(conn: Conn, *, after: datetime, now: datetime, types: Sequence[str], queues: Sequence[str],
                   paused: Sequence[str] = ()) -> NextDue:
    """When these workers' next run could start: its due time, or a bucket's next token."""
    row = await conn.fetchrow(query("next_due"), after, list(types), list(queues), list(paused), now)
    return NextDue(row["due_at"], row["token_at"])


async def settle_inactive_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID], now: datetime) -> None:
    await conn.execute(query("settle_inactive_runs"), list(run_ids), now)


async def unclaim_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(query("unclaim_runs"), list(run_ids))


async def count_lost_runs(conn: Conn, *, task_ids: Sequence[uuid.UUID], counts: Sequence[int], max_lost_runs: int,
                          now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(query("count_lost_runs"), list(task_ids), list(counts), max_lost_runs, now)


@dataclass(frozen=True)
class HistoryPass(Row):
    """What one pass of history maintenance did (all zero when another coordinator held it)."""

    created: int
    dropped: int
    runs_dropped: int
    default_rows: int


async def maintain_history(conn: Conn, *, now: datetime, keep_ok_s: float, keep_failed_s: float,
                           batch: int) -> HistoryPass:
    """Partitions made ahead and dropped behind, per class retention (succeeded and skipped
    runs: `keep_ok_s`; failed and cancelled: `keep_failed_s`)."""
    row = await conn.fetchrow(query("maintain_history"), now, keep_ok_s, keep_failed_s, batch)
    return HistoryPass(row["created"], row["dropped"], row["runs_dropped"], row["default_rows"])


async def delete_old_workers(conn: Conn, *, before: datetime) -> None:
    await conn.execute(query("delete_old_workers"), before)



# --- runs: insert, cron slots, follow-ups ---------------------------------------------------

async def insert_runs(conn: Conn, *, ids: Sequence[uuid.UUID], task_ids: Sequence[uuid.UUID],
                      attempts: Sequence[int], types: Sequence[str], queues: Sequence[str],
                      priorities: Sequence[int], scheduled_for: Sequence[datetime], due_at: Sequence[datetime],
                      reasons: Sequence[str], now: datetime, check_history: bool = False,
                      concurrency_keys: Sequence[str | None] | None = None,
                      concurrency_limits: Sequence[int | None] | None = None,
                      rate_limits: Sequence[str | None] | None = None) -> int:
    """Insert pending runs (a slot already taken is skipped, and with `check_history` one that
    already ended too); returns how many were inserted."""
    n = await conn.fetchval(query("insert_runs"), list(ids), list(task_ids), list(attempts), list(types),
                            list(queues), list(priorities), list(scheduled_for), list(due_at), list(reasons), now,
                            check_history, list(concurrency_keys or [None] * len(ids)),
                            list(concurrency_limits or [None] * len(ids)), list(rate_limits or [None] * len(ids)))
    return int(n or 0)


async def cron_busy(conn: Conn, *, task_ids: Sequence[uuid.UUID], claimed: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Per cron task: does it have a run running (besides `claimed`), or one queued behind it."""
    return await conn.fetch(query("cron_busy"), list(task_ids), list(claimed))


async def skip_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID], reasons: Sequence[str], now: datetime) -> None:
    await conn.execute(query("skip_runs"), list(run_ids), list(reasons), now)


async def queue_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(query("queue_runs"), list(run_ids))


async def mark_catch_up(conn: Conn, *, run_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(query("mark_catch_up"), list(run_ids))


async def hold_pending_runs(conn: Conn, *, task_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(query("hold_pending_runs"), list(task_ids))


async def finish_tasks(conn: Conn, *, task_ids: Sequence[uuid.UUID], status: str, now: datetime) -> None:
    await conn.execute(query("finish_tasks"), list(task_ids), status, now)


async def release_queued(conn: Conn, *, task_ids: Sequence[uuid.UUID], now: datetime) -> None:
    await conn.fetch(query("release_queued"), list(task_ids), now)


async def already_applied(conn: Conn, *, run_ids: Sequence[uuid.UUID],
                          tokens: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(query("already_applied"), list(run_ids), list(tokens))


# --- workers ---------------------------------------------------------------------------------

async def upsert_worker(conn: Conn, *, worker_id: str, name: str, host: str, types: Sequence[str],
                        queues: Sequence[str], slots: int, coordinator_id: str, now: datetime) -> None:
    await conn.execute(query("upsert_worker"), worker_id, name, host, list(types), list(queues), slots,
                       coordinator_id, now)


async def worker_disconnected(conn: Conn, *, worker_id: str, coordinator_id: str, now: datetime) -> None:
    await conn.execute(query("worker_disconnected"), worker_id, coordinator_id, now)


async def list_workers(conn: Conn, *, alive_since: datetime) -> list[asyncpg.Record]:
    """Workers whose last heartbeat is after `alive_since`."""
    return await conn.fetch(query("list_workers"), alive_since)


async def drain_worker(conn: Conn, *, worker_id: str, drain: bool, alive_since: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(query("drain_worker"), worker_id, drain, alive_since)


# --- cluster figures -------------------------------------------------------------------------

async def runs_by_state(conn: Conn) -> dict[str, int]:
    return {r["state"]: r["count"] for r in await conn.fetch(query("runs_by_state"))}


async def due_backlog(conn: Conn, *, now: datetime) -> int:
    return int(await conn.fetchval(query("due_backlog"), now))


async def connected_worker_count(conn: Conn, *, alive_since: datetime) -> int:
    return int(await conn.fetchval(query("connected_worker_count"), alive_since))


async def counts(conn: Conn, *, now: datetime) -> asyncpg.Record:
    """Kept counts: runs by queue and state, tasks by status, running tasks, due backlog."""
    return await conn.fetchrow(query("counts"), now)


# --- tasks (the API) -------------------------------------------------------------------------

async def insert_tasks(conn: Conn, *, records: Sequence[dict[str, Any]], now: datetime) -> set[uuid.UUID]:
    """Insert tasks and their first runs from their JSON records (new_runs.task_record, with
    first_run); returns the ids inserted (an idempotency key already taken leaves its record
    out, and its run)."""
    return {r["id"] for r in await conn.fetch(query("insert_tasks"), list(records), now)}


async def tasks_by_idempotency_key(conn: Conn, *, keys: Sequence[str]) -> list[asyncpg.Record]:
    return await conn.fetch(query("tasks_by_idempotency_key"), list(keys))


async def get_tasks(conn: Conn, *, ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(query("get_tasks"), list(ids))


async def last_runs(conn: Conn, *, tasks: Sequence[asyncpg.Record]) -> list[asyncpg.Record]:
    """Each task's latest run: a live one, else the ended run the task row names."""
    ended = [t for t in tasks if t["last_run_id"] is not None]
    return await conn.fetch(query("last_runs"), [t["id"] for t in tasks], [t["last_run_id"] for t in ended],
                            [t["last_run_finished_at"] for t in ended], [t["last_run_state"] for t in ended])


async def list_tasks(conn: Conn, *, after_created: datetime | None, after_id: uuid.UUID | None,
                     type_: str | None, queue: str | None, name_prefix: str | None,
                     statuses: Sequence[str] | None, running: bool | None, limit: int,
                     created_after: datetime | None = None,
                     created_before: datetime | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(query("list_tasks"), after_created, after_id, type_, queue, name_prefix,
                            None if statuses is None else list(statuses), running, limit, created_after,
                            created_before)


async def list_runs(conn: Conn, *, after_created: datetime | None, after_id: uuid.UUID | None, state: str | None,
                    type_: str | None, task_id: uuid.UUID | None, worker_id: str | None,
                    limit: int, created_after: datetime | None = None,
                    created_before: datetime | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(query("list_runs"), after_created, after_id, state, type_, task_id, worker_id, limit,
                            created_after, created_before)


async def get_run(conn: Conn, *, run_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(query("get_run"), run_id)


async def lock_task(conn: Conn, *, task_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(query("lock_task"), task_id)


async def cancel_task(conn: Conn, *, task_id: uuid.UUID, now: datetime) -> None:
    await conn.fetch(query("cancel_task"), task_id, now)


async def pause_task(conn: Conn, *, task_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(query("pause_task"), task_id, now)


async def resume_task(conn: Conn, *, task_id: uuid.UUID, now: datetime) -> None:
    await conn.fetch(query("resume_task"), task_id, now)


async def skip_paused_slot(conn: Conn, *, task_id: uuid.UUID, now: datetime, reason: str) -> None:
    await conn.fetch(query("skip_paused_slot"), task_id, now, reason)


async def drop_pending_slots(conn: Conn, *, task_id: uuid.UUID) -> None:
    await conn.execute(query("drop_pending_slots"), task_id)


async def patch_task(conn: Conn, *, task_id: uuid.UUID, changes: dict[str, Any], now: datetime) -> asyncpg.Record:
    return await conn.fetchrow(query("patch_task"), task_id, changes, now)


async def repoint_pending_runs(conn: Conn, *, task_id: uuid.UUID) -> None:
    await conn.execute(query("repoint_pending_runs"), task_id)


async def move_pending_run(conn: Conn, *, task_id: uuid.UUID, run_at: datetime, now: datetime) -> None:
    await conn.fetch(query("move_pending_run"), task_id, run_at, now)


# --- queues ----------------------------------------------------------------------------------

async def pause_queue(conn: Conn, *, queue: str, now: datetime) -> None:
    await conn.fetch(query("pause_queue"), queue, now)


async def resume_queue(conn: Conn, *, queue: str, now: datetime) -> None:
    await conn.fetch(query("resume_queue"), queue, now)


async def paused_queues(conn: Conn) -> dict[str, datetime]:
    return {r["queue"]: r["paused_at"] for r in await conn.fetch(query("paused_queues"))}


async def queue_backlogs(conn: Conn, *, now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(query("queue_backlogs"), now)


async def concurrency_holders(conn: Conn, *, keys: Sequence[str]) -> dict[str, list[uuid.UUID]]:
    """The runs holding each key's slots."""
    return {r["key"]: list(r["runs"]) for r in await conn.fetch(query("concurrency_holders"), list(keys))}


async def fleet(conn: Conn, *, alive_since: datetime) -> asyncpg.Record:
    """Connected workers (types, queues, free slots, as JSON) and the paused queues."""
    return await conn.fetchrow(query("fleet"), alive_since)


# --- rate limits and dedup ---------------------------------------------------------------------

async def put_rate_limit(conn: Conn, *, name: str, per_second: float, burst: int, now: datetime) -> asyncpg.Record:
    return await conn.fetchrow(query("put_rate_limit"), name, per_second, burst, now)


async def rate_limits(conn: Conn, *, names: Sequence[str] | None = None) -> list[asyncpg.Record]:
    """Every rate limit (`names` None), or those named."""
    return await conn.fetch(query("rate_limits"), None if names is None else list(names))


async def lock_rate_limits(conn: Conn, *, names: Sequence[str]) -> set[str]:
    """The named rate limits that exist, held against DELETE until commit."""
    return {r["name"] for r in await conn.fetch(query("lock_rate_limits"), list(names))}


async def delete_rate_limit(conn: Conn, *, name: str) -> asyncpg.Record:
    """`found`, `deleted`, and `users`: tasks not finished that name it (then not deleted)."""
    return await conn.fetchrow(query("delete_rate_limit"), name)


async def pause_rate_limits(conn: Conn, *, names: Sequence[str], until: Sequence[datetime], now: datetime) -> None:
    await conn.execute(query("pause_rate_limits"), list(names), list(until), now)


async def dedup_lock(conn: Conn, *, keys: Sequence[str]) -> None:
    await conn.fetchval(query("dedup_lock"), list(keys))


async def dedup_matches(conn: Conn, *, keys: Sequence[str], active_keys: Sequence[str]) -> dict[str, uuid.UUID]:
    """Dedup key → the task whose window for it is open (pending run; running too for `active_keys`)."""
    rows = await conn.fetch(query("dedup_matches"), list(keys), list(active_keys))
    return {r["dedup_key"]: r["id"] for r in rows}


async def dedup_replace(conn: Conn, *, task_id: uuid.UUID, payload: Any, now: datetime) -> None:
    await conn.execute(query("dedup_replace"), task_id, payload, now)


# --- dashboard figures and long-polls -------------------------------------------------------------

async def add_waiter(conn: Conn, *, waiter: uuid.UUID, id_: uuid.UUID, now: datetime) -> None:
    await conn.execute(query("add_waiter"), waiter, id_, now)


async def remove_waiter(conn: Conn, *, waiter: uuid.UUID) -> None:
    await conn.execute(query("remove_waiter"), waiter)


async def delete_old_waiters(conn: Conn, *, before: datetime) -> None:
    await conn.execute(query("delete_old_waiters"), before)


async def run_minutes(conn: Conn, *, since: datetime, queue: str | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(query("run_minutes"), since, queue)


async def delete_old_minutes(conn: Conn, *, before: datetime) -> None:
    await conn.execute(query("delete_old_minutes"), before)
