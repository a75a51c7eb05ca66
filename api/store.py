"""The API's reads and writes. Every write that a coordinator must hear about NOTIFYs in
the same transaction (see sql/queries.sql)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from skiplock.api import waiting
from skiplock.api.views import decode_cursor, encode_cursor, run_view, task_view
from skiplock.common import timeutil
from skiplock.common.errors import SkiplockError
from skiplock.common.ids import new_id
from skiplock.common.states import RunState, TaskState, TaskStatus
from skiplock.common.validation import TaskSpec
from skiplock.sql import statements
from skiplock.sql.db import retry_conflicts
from skiplock.sql.new_runs import NewRun, first_run, insert_runs, task_record


class Conflict(SkiplockError):
    """The task's state does not allow this (→ 409)."""


class NotFound(SkiplockError):
    """No task with that id (→ 404)."""

    def __init__(self, what: str = "task with that id") -> None:
        super().__init__(f"no {what}")
        self.what = what


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class Invalid(SkiplockError):
    """A field that is well-formed but names something that does not exist (→ 400)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


@retry_conflicts
async def create_tasks(pool: asyncpg.Pool, specs: list[TaskSpec], now: datetime,
                       lease_s: float = 10.0, batch: bool = False) -> list[tuple[dict[str, Any], bool]]:
    """Create tasks and their first runs, all or nothing. Returns (task, created) in order;
    `created` is False where an idempotency key matched an existing task, or a dedup key a
    task whose window is open (its view then says `"deduplicated": true`). `batch`: field
    names in errors are `tasks[i].…`."""
    ids: list[uuid.UUID] = []
    first_by_key: dict[str, uuid.UUID] = {}
    records: dict[uuid.UUID, dict[str, Any]] = {}
    fires: dict[uuid.UUID, datetime] = {}
    by_id: dict[uuid.UUID, TaskSpec] = {}  # each new task's own spec (the first with its key)
    for spec in specs:
        key = spec.idempotency_key
        if key is not None and key in first_by_key:  # the same key twice in one batch
            if by_id[first_by_key[key]].request_hash() != spec.request_hash():
                raise Conflict(f"idempotency key {key!r} is used twice in this batch for different requests")
            ids.append(first_by_key[key])
            continue
        tid = new_id()
        if key is not None:
            first_by_key[key] = tid
        ids.append(tid)
        by_id[tid] = spec
        records[tid] = task_record(spec, tid)
        fires[tid] = spec.first_fire(now)
    deduped: dict[int, uuid.UUID] = {}  # position → the task whose dedup window took it
    async with pool.acquire() as conn, conn.transaction():
        await _check_rate_limits(conn, specs, batch)
        await _dedup(conn, specs, ids, records, fires, by_id, deduped, now)
        inserted = await statements.insert_tasks(
            conn, records=[first_run(r, fires[tid], now) for tid, r in records.items()], now=now)
        existing: dict[str, uuid.UUID] = {}
        lost_keys = [r["idempotency_key"] for tid, r in records.items() if tid not in inserted]
        if lost_keys:
            rows = await statements.tasks_by_idempotency_key(conn, keys=lost_keys)
            existing = {r["idempotency_key"]: r["id"] for r in rows}
            asked = {r["idempotency_key"]: r["request_hash"] for r in records.values()}
            for r in rows:
                if r["request_hash"] is not None and r["request_hash"] != asked[r["idempotency_key"]]:
                    raise Conflict(f"idempotency key {r['idempotency_key']!r} was used for a different request "
                                   f"(task {r['id']}); send the same request to get that task, or use a new key")
        # A record not inserted: its idempotency key belongs to a task created earlier.
        earlier_of = {tid: existing[r["idempotency_key"]] for tid, r in records.items() if tid not in inserted}
    fleet = await waiting.fleet(pool, now, lease_s)
    others = [*earlier_of.values(), *deduped.values()]
    earlier = await get_tasks(pool, others, lease_s=lease_s, fleet=fleet) if others else {}
    warnings = waiting.create_warnings((by_id[t].type for t in inserted), fleet)
    out: list[tuple[dict[str, Any], bool]] = []
    seen: set[uuid.UUID] = set()
    for i, (tid, spec) in enumerate(zip(ids, specs, strict=True)):
        if i in deduped:
            out.append(({**earlier[deduped[i]], "deduplicated": True}, False))
        elif tid in inserted:
            view = _fresh_view(records[tid], by_id[tid], now, max(fires[tid], now), fleet)
            view["warnings"] = warnings.get(spec.type, [])
            out.append(({**view, "deduplicated": tid in seen and spec.dedup_key is not None}, tid not in seen))
            seen.add(tid)
        else:
            out.append(({**earlier[earlier_of[tid]], "deduplicated": False}, False))
    return out


async def _check_rate_limits(conn: asyncpg.Connection, specs: list[TaskSpec], batch: bool) -> None:
    """Every rate limit named must exist; held (KEY SHARE) until commit so none is deleted
    under a task being made."""
    names = sorted({s.rate_limit for s in specs if s.rate_limit is not None})
    if not names:
        return
    found = await statements.lock_rate_limits(conn, names=names)
    errors = [(f"{f'tasks[{i}].' if batch else ''}rate_limit",
               f"no rate limit named {s.rate_limit!r}; create it first with PUT /api/rate-limits/{s.rate_limit}")
              for i, s in enumerate(specs) if s.rate_limit is not None and s.rate_limit not in found]
    if errors:
        raise Invalid(errors)


async def _dedup(conn: asyncpg.Connection, specs: list[TaskSpec], ids: list[uuid.UUID],
                 records: dict[uuid.UUID, dict[str, Any]], fires: dict[uuid.UUID, datetime],
                 by_id: dict[uuid.UUID, TaskSpec], deduped: dict[int, uuid.UUID], now: datetime) -> None:
    """Dedup windows, in the create's transaction. Creates with a key serialise on it; one
    whose key a task already holds with an open window becomes that task (with `replace`,
    the task takes the new payload, and run_at when given) and is not inserted; a key twice
    in one batch is one task, the first."""
    keys = sorted({s.dedup_key for s in specs if s.dedup_key is not None})
    if not keys:
        return
    await statements.dedup_lock(conn, keys=keys)
    active = sorted({s.dedup_key for s in specs if s.dedup_key is not None and s.dedup_while == "active"})
    holders = await statements.dedup_matches(conn, keys=keys, active_keys=active)
    first: dict[str, uuid.UUID] = {}
    for i, (tid, spec) in enumerate(zip(ids, specs, strict=True)):
        key = spec.dedup_key
        if key is None or by_id.get(tid) is not spec:  # no key, or a repeat of an idempotency key
            continue
        if key in holders:  # an existing task's window is open
            deduped[i] = holders[key]
            del records[tid]
            if spec.dedup_on_duplicate == "replace":
                await statements.dedup_replace(conn, task_id=holders[key], payload=spec.payload, now=now)
                if spec.run_at is not None and spec.cron is None:
                    await statements.move_pending_run(conn, task_id=holders[key], run_at=spec.run_at, now=now)
        elif key in first:  # the same key earlier in this batch
            ids[i] = first[key]
            del records[tid]
            if spec.dedup_on_duplicate == "replace":
                kept = first[key]
                moved = spec.run_at is not None and spec.cron is None
                by_id[kept] = dataclasses.replace(by_id[kept], payload=spec.payload,
                                                  run_at=spec.run_at if moved else by_id[kept].run_at)
                records[kept]["payload"] = spec.payload
                if moved:
                    records[kept]["run_at"] = timeutil.iso(spec.run_at)
                    fires[kept] = spec.run_at  # type: ignore[assignment]
        else:
            first[key] = tid


def _fresh_view(record: dict[str, Any], spec: TaskSpec, now: datetime, due: datetime,
                fleet: waiting.Fleet) -> dict[str, Any]:
    """A task just inserted, viewed from its record (no read back)."""
    row = {
        **record, "status": TaskStatus.ACTIVE.value, "has_running": False, "next_due": due,
        "lost_runs": 0, "created_at": now, "updated_at": now, "pending_due": due, "pending_reason": "schedule",
    }
    row["run_at"] = spec.run_at
    return task_view(row, None, waiting.task_waiting(row, fleet, now))


async def _with_last_runs(conn: asyncpg.Connection | asyncpg.Pool, rows: list[asyncpg.Record],
                          lease_s: float, fleet: waiting.Fleet | None = None) -> list[dict[str, Any]]:
    if not rows:
        return []
    last = {r["task_id"]: r for r in await statements.last_runs(conn, tasks=rows)}
    now = timeutil.utcnow()
    keys = {r["concurrency_key"] for r in rows if r["concurrency_key"] is not None}
    limits = {r["rate_limit"] for r in rows if r["rate_limit"] is not None}
    if fleet is None or (keys - fleet.holders.keys()) or (limits - fleet.buckets.keys()):
        fleet = await waiting.fleet(conn, now, lease_s, keys=keys, rate_limits=limits)
    return [task_view(r, last.get(r["id"]), waiting.task_waiting(r, fleet, now)) for r in rows]


async def get_tasks(pool: asyncpg.Pool | asyncpg.Connection, ids: list[uuid.UUID], lease_s: float = 10.0,
                    fleet: waiting.Fleet | None = None) -> dict[uuid.UUID, dict[str, Any]]:
    """Task views by id, in three queries whatever the number (two with a `fleet` at hand)."""
    rows = await statements.get_tasks(pool, ids=ids)
    return {r["id"]: v for r, v in zip(rows, await _with_last_runs(pool, rows, lease_s, fleet), strict=True)}


async def get_task(pool: asyncpg.Pool | asyncpg.Connection, task_id: uuid.UUID,
                   lease_s: float = 10.0) -> dict[str, Any] | None:
    return (await get_tasks(pool, [task_id], lease_s)).get(task_id)


STATE_FILTERS: dict[str, tuple[list[str], bool | None]] = {
    "scheduled": (["active"], False),
    "running": (["active"], True),
    "paused": (["paused", "quarantined"], None),
    "succeeded": (["succeeded"], None),
    "failed": (["failed"], None),
    "cancelled": (["cancelled"], None),
}


async def list_tasks(pool: asyncpg.Pool, *, state: str | None, type_: str | None, queue: str | None,
                     name: str | None, limit: int, cursor: str | None, lease_s: float = 10.0,
                     created_after: datetime | None = None, created_before: datetime | None = None) -> Page:
    after = decode_cursor(cursor) if cursor else (None, None)
    statuses, running = STATE_FILTERS[state] if state else (None, None)
    rows = await statements.list_tasks(pool, after_created=after[0], after_id=after[1], type_=type_, queue=queue,
                                       name_prefix=name, statuses=statuses, running=running, limit=limit + 1,
                                       created_after=created_after, created_before=created_before)
    more = len(rows) > limit
    rows = rows[:limit]
    items = await _with_last_runs(pool, rows, lease_s)
    nxt = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return Page(items, nxt)


async def list_runs(pool: asyncpg.Pool, *, state: str | None, type_: str | None,
                    task_id: uuid.UUID | None, worker_id: str | None, limit: int,
                    cursor: str | None, lease_s: float = 10.0, created_after: datetime | None = None,
                    created_before: datetime | None = None) -> Page:
    after = decode_cursor(cursor) if cursor else (None, None)
    rows = await statements.list_runs(pool, after_created=after[0], after_id=after[1], state=state, type_=type_,
                                      task_id=task_id, worker_id=worker_id, limit=limit + 1,
                                      created_after=created_after, created_before=created_before)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return Page(await _run_views(pool, rows, lease_s), nxt)


async def _run_views(pool: asyncpg.Pool | asyncpg.Connection, rows: list[asyncpg.Record],
                     lease_s: float) -> list[dict[str, Any]]:
    now = timeutil.utcnow()
    pending = [r for r in rows if r["state"] == "pending"]
    keys = {r["concurrency_key"] for r in pending if r["concurrency_key"] is not None}
    limits = {r["rate_limit"] for r in pending if r["rate_limit"] is not None}
    fleet = await waiting.fleet(pool, now, lease_s, keys=keys, rate_limits=limits) if pending else None
    return [run_view(r, waiting.run_waiting(r, r["task_status"], fleet, now) if fleet else None) for r in rows]


async def get_run(pool: asyncpg.Pool, run_id: uuid.UUID, lease_s: float = 10.0) -> dict[str, Any] | None:
    row = await statements.get_run(pool, run_id=run_id)
    return (await _run_views(pool, [row], lease_s))[0] if row is not None else None


LIVE = (TaskStatus.ACTIVE, TaskStatus.PAUSED, TaskStatus.QUARANTINED)


@asynccontextmanager
async def _locked(pool: asyncpg.Pool, task_id: uuid.UUID, allowed: tuple[str, ...] | None = None,
                  refusal: str = "") -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Record]]:
    """A transaction holding the task's row lock; NotFound / Conflict when it can't be had."""
    async with pool.acquire() as conn, conn.transaction():
        task = await statements.lock_task(conn, task_id=task_id)
        if task is None:
            raise NotFound
        if allowed is not None and task["status"] not in allowed:
            raise Conflict(f"task is {task['status']}; {refusal}")
        yield conn, task


async def _view(pool: asyncpg.Pool, task_id: uuid.UUID) -> dict[str, Any]:
    view = await get_task(pool, task_id)
    if view is None:
        raise NotFound
    return view


def _cron_slot(task: asyncpg.Record, now: datetime, due: datetime | None = None) -> NewRun:
    fire = timeutil.cron_next(task["cron"], task["timezone"], now)
    return NewRun(task_id=task["id"], attempt=1, type=task["type"], queue=task["queue"], priority=task["priority"],
                  scheduled_for=fire, due_at=due or fire, concurrency_key=task["concurrency_key"],
                  concurrency_limit=task["concurrency_limit"], rate_limit=task["rate_limit"])


@retry_conflicts
async def cancel_task(pool: asyncpg.Pool, task_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    async with _locked(pool, task_id) as (conn, _):
        await statements.cancel_task(conn, task_id=task_id, now=now)
    return await _view(pool, task_id)


@retry_conflicts
async def pause_task(pool: asyncpg.Pool, task_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    async with _locked(pool, task_id, LIVE, "only a scheduled or running task can be paused") as (conn, _):
        await statements.pause_task(conn, task_id=task_id, now=now)
    return await _view(pool, task_id)


@retry_conflicts
async def resume_task(pool: asyncpg.Pool, task_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    paused = (TaskStatus.PAUSED, TaskStatus.QUARANTINED)
    async with _locked(pool, task_id, paused, "only a paused task can be resumed") as (conn, task):
        await statements.resume_task(conn, task_id=task_id, now=now)
        if task["cron"]:
            # Slots missed while paused are skipped: the one that came due is recorded as
            # such (so "why didn't it run at 09:00?" has an answer); next is the next fire.
            await statements.skip_paused_slot(
                conn, task_id=task_id, now=now,
                reason=f"paused: the task was paused at this fire time (resumed at {timeutil.iso(now)}); "
                             "fire times while paused are skipped")
            await statements.drop_pending_slots(conn, task_id=task_id)
            await insert_runs(conn, [_cron_slot(task, now)], now)
    return await _view(pool, task_id)


@retry_conflicts
async def trigger_task(pool: asyncpg.Pool, task_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    refusal = "only a scheduled or running task can be triggered"
    async with _locked(pool, task_id, (TaskStatus.ACTIVE,), refusal) as (conn, task):
        run = NewRun(task_id=task_id, attempt=1, type=task["type"], queue=task["queue"],
                     priority=task["priority"], scheduled_for=now, due_at=now, reason="trigger",
                     concurrency_key=task["concurrency_key"], concurrency_limit=task["concurrency_limit"],
                     rate_limit=task["rate_limit"])
        if not await insert_runs(conn, [run], now):
            raise Conflict("a trigger for this instant already exists; try again")
        row = await statements.get_run(conn, run_id=run.id)
        [view] = await _run_views(conn, [row], 10.0)
    return view


@retry_conflicts
async def patch_task(pool: asyncpg.Pool, task_id: uuid.UUID, body: Any, now: datetime,
                     validate: Callable[[Any, str, str | None], dict[str, Any]]) -> dict[str, Any]:
    async with _locked(pool, task_id, LIVE, "a finished task cannot be changed") as (conn, task):
        changes = validate(body, task["type"], task["cron"])
        if changes.get("rate_limit") is not None and not await statements.lock_rate_limits(
                conn, names=[changes["rate_limit"]]):
            raise Invalid([("rate_limit", f"no rate limit named {changes['rate_limit']!r}; create it first with "
                                          f"PUT /api/rate-limits/{changes['rate_limit']}")])
        encoded = {k: (timeutil.iso(v) if isinstance(v, datetime) else v) for k, v in changes.items()}
        new = await statements.patch_task(conn, task_id=task_id, changes=encoded, now=now)
        if {"queue", "priority", "concurrency", "rate_limit"} & changes.keys():
            await statements.repoint_pending_runs(conn, task_id=task_id)
        if new["cron"] and {"cron", "timezone"} & changes.keys():
            await statements.drop_pending_slots(conn, task_id=task_id)
            paused = new["status"] != TaskStatus.ACTIVE
            await insert_runs(conn, [_cron_slot(new, now, timeutil.NEVER if paused else None)], now)
        if changes.get("run_at") is not None:
            await statements.move_pending_run(conn, task_id=task_id, run_at=changes["run_at"], now=now)
    return await _view(pool, task_id)


async def stats(pool: asyncpg.Pool, now: datetime, lease_s: float) -> dict[str, Any]:
    """Runs by state and queue, tasks by state, the due backlog and connected workers: read
    from the kept counters and the live runs, never counted over history."""
    row = await statements.counts(pool, now=now)
    runs = {s.value: 0 for s in RunState}
    queues: dict[str, dict[str, int]] = {}
    for r in row["runs"]:
        runs[r["state"]] = runs.get(r["state"], 0) + int(r["n"])
        queues.setdefault(r["queue"], {s.value: 0 for s in RunState})[r["state"]] = int(r["n"])
    stored = {k: int(v) for k, v in row["tasks"].items()}
    running = int(row["running_tasks"])
    tasks = {s.value: 0 for s in TaskState}
    tasks.update(running=running, scheduled=max(0, stored.get("active", 0) - running),
                 paused=stored.get("paused", 0) + stored.get("quarantined", 0))
    for s in ("succeeded", "failed", "cancelled"):
        tasks[s] = stored.get(s, 0)
    workers = await statements.connected_worker_count(pool, alive_since=now - timedelta(seconds=lease_s))
    return {"runs": runs, "tasks": tasks, "queues": [{"name": q, "runs": c} for q, c in sorted(queues.items())],
            "due_backlog": int(row["due_backlog"]), "workers": workers, "at": timeutil.iso(now)}


async def list_queues(pool: asyncpg.Pool, now: datetime, lease_s: float,
                      only: str | None = None) -> list[dict[str, Any]]:
    """Every queue that has runs (live or in the history) or is paused: its pause, live runs
    (kept counts), due backlog and oldest due time (the due runs), and the connected workers
    that take it."""
    counts = (await statements.counts(pool, now=now))["runs"]
    paused = await statements.paused_queues(pool)
    backlogs = {r["queue"]: r for r in await statements.queue_backlogs(pool, now=now)}
    workers = await statements.list_workers(pool, alive_since=now - timedelta(seconds=lease_s))
    live: dict[str, dict[str, int]] = {}
    for r in counts:  # every queue with runs, live or in the retained history
        states = live.setdefault(r["queue"], {})
        if r["state"] in (RunState.PENDING, RunState.RUNNING):
            states[r["state"]] = int(r["n"])
    names = sorted({*live, *paused, *backlogs} if only is None else {only})
    out = []
    for name in names:
        b = backlogs.get(name)
        out.append({
            "name": name, "paused": name in paused, "paused_at": timeutil.iso(paused.get(name)),
            "pending": live.get(name, {}).get(RunState.PENDING, 0),
            "running": live.get(name, {}).get(RunState.RUNNING, 0),
            "due_backlog": int(b["due_backlog"]) if b else 0,
            "oldest_due_at": timeutil.iso(b["oldest_due_at"]) if b else None,
            "workers": sum(1 for w in workers if not w["queues"] or name in w["queues"]),
        })
    return out


async def set_queue_paused(pool: asyncpg.Pool, name: str, paused: bool, now: datetime,
                           lease_s: float) -> dict[str, Any]:
    """Pause (or resume) a queue: the claim skips its pending runs; running runs finish."""
    if paused:
        await statements.pause_queue(pool, queue=name, now=now)
    else:
        await statements.resume_queue(pool, queue=name, now=now)
    [view] = await list_queues(pool, now, lease_s, only=name)
    return view


MAX_MINUTES = 1440
# Upper bounds (ms) of the lateness buckets 1..16 in skiplock_run_minutes (0010_dashboard.sql).
LATE_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, None)


def _quantile(hist: dict[int, int], q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile (None: no run started)."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= q * total:
            bound = LATE_BOUNDS_MS[bucket - 1]
            return float(bound if bound is not None else LATE_BOUNDS_MS[-2] or 0)
    return None


async def minutes(pool: asyncpg.Pool, now: datetime, count: int, queue: str | None = None) -> dict[str, Any]:
    """The last `count` minutes (the current one included), each with the runs that ended in
    it by state, start lateness p50/p99 (the bound of its histogram bucket) and mean run time."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=count - 1)
    rows = await statements.run_minutes(pool, since=start, queue=queue)
    per: dict[datetime, list[asyncpg.Record]] = {}
    for r in rows:
        per.setdefault(r["minute"], []).append(r)
    out = []
    for i in range(count):
        at = start + timedelta(minutes=i)
        got = per.get(at, [])
        states = {s.value: 0 for s in RunState if s.final}
        hist: dict[int, int] = {}
        run_ms = started = 0.0
        for r in got:
            states[r["state"]] = states.get(r["state"], 0) + int(r["n"])
            if r["late_bucket"] > 0:
                hist[r["late_bucket"]] = hist.get(r["late_bucket"], 0) + int(r["n"])
                run_ms += float(r["run_ms"])
                started += int(r["n"])
        out.append({"at": timeutil.iso(at), **states, "lateness_p50_ms": _quantile(hist, 0.5),
                    "lateness_p99_ms": _quantile(hist, 0.99),
                    "run_ms_mean": round(run_ms / started, 1) if started else None})
    return {"minutes": out, "queue": queue, "bucket_s": 60}


def rate_limit_view(r: asyncpg.Record | dict[str, Any], now: datetime) -> dict[str, Any]:
    """A rate limit, with its tokens as of `now` (what the claim would see)."""
    elapsed = max(0.0, (now - r["refilled_at"]).total_seconds())
    return {
        "name": r["name"], "per_second": r["per_second"], "burst": r["burst"],
        "tokens": round(min(float(r["burst"]), r["tokens"] + elapsed * r["per_second"]), 3),
        "paused_until": timeutil.iso(r["paused_until"]) if r["paused_until"] and r["paused_until"] > now else None,
        "created_at": timeutil.iso(r["created_at"]), "updated_at": timeutil.iso(r["updated_at"]),
    }


async def put_rate_limit(pool: asyncpg.Pool, name: str, per_second: float, burst: int,
                         now: datetime) -> dict[str, Any]:
    row = await statements.put_rate_limit(pool, name=name, per_second=per_second, burst=burst, now=now)
    return rate_limit_view(row, now)


async def list_rate_limits(pool: asyncpg.Pool, now: datetime, name: str | None = None) -> list[dict[str, Any]]:
    rows = await statements.rate_limits(pool, names=None if name is None else [name])
    return [rate_limit_view(r, now) for r in rows]


async def delete_rate_limit(pool: asyncpg.Pool, name: str) -> None:
    row = await statements.delete_rate_limit(pool, name=name)
    if not row["found"]:
        raise NotFound("rate limit with that name")
    if not row["deleted"]:
        users = ", ".join(str(u) for u in row["users"])
        raise Conflict(f"rate limit {name!r} is used by tasks that are not finished (e.g. {users}); "
                       "cancel them or PATCH their rate_limit to null first")


def _worker_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"], "name": r["name"], "host": r["host"], "types": list(r["types"]),
        "queues": list(r["queues"]), "slots": r["slots"], "running": r["running"],
        "coordinator": r["coordinator_id"], "draining": r["draining"],
        "connected_at": timeutil.iso(r["connected_at"]),
        "last_heartbeat_at": timeutil.iso(r["last_heartbeat_at"]),
    }


async def list_workers(pool: asyncpg.Pool, now: datetime, lease_s: float) -> list[dict[str, Any]]:
    rows = await statements.list_workers(pool, alive_since=now - timedelta(seconds=lease_s))
    return [_worker_view(r) for r in rows]


async def drain_worker(pool: asyncpg.Pool, worker_id: str, drain: bool, now: datetime,
                       lease_s: float) -> dict[str, Any]:
    """Drain (or undrain) a connected worker: its coordinator hears it by NOTIFY."""
    row = await statements.drain_worker(pool, worker_id=worker_id, drain=drain,
                                        alive_since=now - timedelta(seconds=lease_s))
    if row is None:
        raise NotFound("connected worker with that id")
    return _worker_view(row)
