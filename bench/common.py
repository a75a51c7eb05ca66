"""What the bench's modes share: creating tasks through the API, waiting for runs to end."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def create(session: aiohttp.ClientSession, base: str, tasks: list[dict]) -> None:
    async with session.post(f"{base}/api/tasks/batch", json={"tasks": tasks}) as r:
        if r.status != 201:
            raise SystemExit(f"batch create failed: {r.status} {await r.text()}")


TABLES = ("skiplock_tasks, skiplock_runs, skiplock_run_history, skiplock_run_latest, skiplock_workers, "
          "skiplock_run_counts, skiplock_task_counts")


async def reset(pool: asyncpg.Pool) -> None:
    await pool.execute(f"TRUNCATE {TABLES} CASCADE")


async def wait_count(pool: asyncpg.Pool, sql: str, n: int, timeout: float, *args: object) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await pool.fetchval(sql, *args) >= n:
            return time.time()
        await asyncio.sleep(0.02)
    raise SystemExit(f"timed out waiting for {n}: {sql}")


SUCCEEDED = ("SELECT coalesce(sum(n), 0) FROM skiplock_run_counts "
             "WHERE queue = 'default' AND state = 'succeeded'")


async def succeeded(pool: asyncpg.Pool) -> int:
    """Runs succeeded in the default queue, from the kept counts: polling count(*) over a
    history of millions would cost the bench more than the cluster it measures."""
    return int(await pool.fetchval(SUCCEEDED))


async def wait_succeeded(pool: asyncpg.Pool, target: int, timeout: float) -> float:
    """When the default queue's succeeded runs reached `target`."""
    return await wait_count(pool, SUCCEEDED, target, timeout)


async def wait_workers(pool: asyncpg.Pool) -> None:
    while not await pool.fetchval("SELECT count(*) FROM skiplock_workers WHERE disconnected_at IS NULL"):
        await asyncio.sleep(0.05)


async def drain(session: aiohttp.ClientSession, pool: asyncpg.Pool, base: str, n: int,
                creates_per_s: float = 3000.0) -> float:
    """n no-op tasks all due at one instant (created through the REST batch API before it),
    drained by the cluster: runs/s from the due time to the last result written."""
    lead = max(3.0, n / creates_per_s * 1.5 + 1.0)
    t_due = datetime.now(UTC) + timedelta(seconds=lead)
    before = await succeeded(pool)
    for i in range(0, n, 1000):
        await create(session, base, [{"type": "bench.noop", "run_at": t_due.isoformat()}
                                     for _ in range(min(1000, n - i))])
    finished = await wait_succeeded(pool, before + n, timeout=lead + 600)
    return n / (finished - t_due.timestamp())


async def lateness(session: aiohttp.ClientSession, pool: asyncpg.Pool, base: str, n: int) -> list[float]:
    """n no-op tasks spread over 10 s on an otherwise idle cluster: each run's start lateness
    in ms. finished_at is the worker's clock when the no-op returned, so the run really started
    then (the claim itself happens up to claim_ahead_s early, and records the due time)."""
    start = datetime.now(UTC) + timedelta(seconds=2)
    before = await succeeded(pool)
    await create(session, base, [{"type": "bench.noop", "run_at": (start + timedelta(seconds=10 * i / n)).isoformat()}
                                 for i in range(n)])
    await wait_succeeded(pool, before + n, timeout=60)
    rows = await pool.fetch("SELECT extract(epoch FROM finished_at - scheduled_for) * 1000 AS ms "
                            "FROM skiplock_run_history WHERE type = 'bench.noop' AND scheduled_for >= $1 "
                            "AND finished_at >= $1", start)
    return [float(r["ms"]) for r in rows]
