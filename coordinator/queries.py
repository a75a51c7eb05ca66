"""The coordinator's statements, one thin keyword-only function each: the `$n` order of a
statement lives here, next to its name, and nowhere else. Rows that code reads many fields
of come back typed (ClaimedRun, EndedRun); tests check their fields against the statements'
RETURNING lists."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg

from skiplock.sql import query

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool
R = TypeVar("R")


class Row:
    """Typed rows still answer row["field"], as the records they replace did."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def _typed(cls: type[R], records: Sequence[asyncpg.Record]) -> list[R]:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return [cls(**{n: r[n] for n in names}) for r in records]


@dataclass(frozen=True)
class ClaimedRun(Row):
    """A run the claim moved to `running`, with what its worker and the cron policies need."""

    id: uuid.UUID
    lease_token: uuid.UUID
    task_id: uuid.UUID
    task_name: str
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


@dataclass(frozen=True)
class EndedRun(Row):
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


async def claim(conn: Conn, *, now: datetime, horizon: datetime, types: Sequence[str], queues: Sequence[str],
                slots: Sequence[str], coordinator_id: str, lease_s: float, timeout_grace_s: float) -> list[ClaimedRun]:
    """Claim up to len(slots) runs due by `horizon`, one per slot (a worker id each)."""
    rows = await conn.fetch(query("claim"), now, list(types), list(queues), len(slots), list(slots), coordinator_id,
                            lease_s, timeout_grace_s, horizon)
    return _typed(ClaimedRun, rows)


async def finish_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID], tokens: Sequence[uuid.UUID],
                      states: Sequence[str], results: Sequence[str | None], errors: Sequence[str | None],
                      finished_at: Sequence[datetime], retryable: Sequence[bool], retry_after_s: Sequence[float],
                      released: Sequence[bool], worker_ids: Sequence[str]) -> list[EndedRun]:
    """Apply results, fenced by lease token and worker; those that do not apply are absent."""
    rows = await conn.fetch(query("finish_runs"), list(run_ids), list(tokens), list(states), list(results),
                            list(errors), list(finished_at), list(retryable), list(retry_after_s), list(released),
                            list(worker_ids))
    return _typed(EndedRun, rows)


async def reap_expired(conn: Conn, *, now: datetime, limit: int) -> list[EndedRun]:
    """Fail running runs whose lease or deadline passed."""
    return _typed(EndedRun, await conn.fetch(query("reap_expired"), now, limit))


async def heartbeats(conn: Conn, *, worker_ids: Sequence[str], running: Sequence[int], draining: Sequence[bool],
                     run_ids: Sequence[uuid.UUID], tokens: Sequence[uuid.UUID], run_workers: Sequence[str],
                     now: datetime, lease_s: float, coordinator_id: str) -> list[asyncpg.Record]:
    """Mark workers alive and extend the leases they report; returns (id, worker_id) held."""
    return await conn.fetch(query("heartbeats"), list(worker_ids), list(running), list(draining), list(run_ids),
                            list(tokens), list(run_workers), now, lease_s, coordinator_id)


async def next_due(conn: Conn, *, after: datetime, types: Sequence[str], queues: Sequence[str]) -> datetime | None:
    """The earliest finite due time after `after` that these workers could take."""
    return await conn.fetchval(query("next_due"), after, list(types), list(queues))


async def settle_inactive_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID], now: datetime) -> None:
    await conn.execute(query("settle_inactive_runs"), list(run_ids), now)


async def unclaim_runs(conn: Conn, *, run_ids: Sequence[uuid.UUID]) -> None:
    await conn.execute(query("unclaim_runs"), list(run_ids))


async def count_lost_runs(conn: Conn, *, task_ids: Sequence[uuid.UUID], counts: Sequence[int], max_lost_runs: int,
                          now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(query("count_lost_runs"), list(task_ids), list(counts), max_lost_runs, now)


async def delete_old_runs(conn: Conn, *, before: datetime, batch: int) -> int:
    status = await conn.execute(query("delete_old_runs"), before, batch)
    return int(status.split()[-1])


async def delete_old_workers(conn: Conn, *, before: datetime) -> None:
    await conn.execute(query("delete_old_workers"), before)

