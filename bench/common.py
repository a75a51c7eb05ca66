"""What the bench's modes share: creating tasks through the API, waiting for runs to end."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

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


async def succeeded_since(pool: asyncpg.Pool, n: int, since: datetime, timeout: float) -> float:
    """When n no-op runs scheduled from `since` on had succeeded (ended runs are history)."""
    return await wait_count(pool, "SELECT count(*) FROM skiplock_run_history WHERE type = 'bench.noop' "
                                  "AND state = 'succeeded' AND scheduled_for >= $1", n, timeout, since)


async def wait_workers(pool: asyncpg.Pool) -> None:
    while not await pool.fetchval("SELECT count(*) FROM skiplock_workers WHERE disconnected_at IS NULL"):
        await asyncio.sleep(0.05)
