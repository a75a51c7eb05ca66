from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from skiplock.api import store
from skiplock.common.config import CoordinatorSettings, LeaseSettings
from skiplock.common.validation import validate_create
from skiplock.coordinator.followups import Applied, ResultRow, apply_results
from skiplock.sql.new_runs import NewRun, insert_runs


async def create(pool: asyncpg.Pool, now: datetime, **body: Any) -> dict[str, Any]:
    body.setdefault("type", "noop")
    spec, errors = validate_create(body)
    assert spec is not None, errors
    [(task, _)] = await store.create_tasks(pool, [spec], now)
    return task


def settings(db_url: str, **kw: Any) -> CoordinatorSettings:
    return CoordinatorSettings(database_url=db_url, coordinator_id=kw.pop("coordinator_id", "c-test"),
                               leases=LeaseSettings(lease_s=kw.pop("lease_s", 10.0), heartbeat_s=kw.pop("heartbeat_s", 2.0)),
                               **kw)


async def claim(pool: asyncpg.Pool, now: datetime, n: int, worker: str = "w1", types: tuple[str, ...] = ("noop",),
                queues: tuple[str, ...] = (), coordinator: str = "c-test", lease_s: float = 10.0) -> list[asyncpg.Record]:
    from skiplock.sql import query

    return await pool.fetch(query("claim"), now, list(types), list(queues), n, [worker] * n, coordinator, lease_s, 5.0,
                            now, [])


async def add_runs(pool: asyncpg.Pool, task_id: str, now: datetime, count: int) -> None:
    await insert_runs(pool, [NewRun(task_id=uuid.UUID(task_id), attempt=1, type="noop", queue="default", priority=0,
                                    scheduled_for=now.replace(microsecond=i), due_at=now) for i in range(1, count + 1)], now)


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def finish_applied(pool: asyncpg.Pool, row: asyncpg.Record, state: str, *, token: uuid.UUID | None = None,
                         retryable: bool = True, released: bool = False, worker: str | None = None,
                         at: datetime = NOW) -> Applied:
    async with pool.acquire() as conn:
        return await apply_results(conn, [ResultRow(
            run_id=row["id"], token=token or row["lease_token"], worker_id=worker or row["worker_id"], state=state,
            result='{"ok": true}', error=None if state == "succeeded" else "boom", finished_at=at,
            retryable=retryable, released=released)], at, 3)


async def finish(pool: asyncpg.Pool, row: asyncpg.Record, state: str, **kw: object) -> list[asyncpg.Record]:
    return (await finish_applied(pool, row, state, **kw)).rows  # type: ignore[arg-type]


async def assert_counts_exact(pool: asyncpg.Pool | asyncpg.Connection) -> None:
    """The kept counters equal count(*) over every run and every task."""
    kept = {(r["queue"], r["state"]): r["n"] for r in await pool.fetch(
        "SELECT queue, state, sum(n) AS n FROM skiplock_run_counts GROUP BY 1, 2 HAVING sum(n) <> 0")}
    counted = {(r["queue"], r["state"]): r["n"] for r in await pool.fetch(
        "SELECT queue, state, count(*) AS n FROM skiplock_all_runs GROUP BY 1, 2")}
    assert kept == counted
    kept_tasks = {r["status"]: r["n"] for r in await pool.fetch(
        "SELECT status, sum(n) AS n FROM skiplock_task_counts GROUP BY 1 HAVING sum(n) <> 0")}
    counted_tasks = {r["status"]: r["n"] for r in await pool.fetch(
        "SELECT status, count(*) AS n FROM skiplock_tasks GROUP BY 1")}
    assert kept_tasks == counted_tasks
