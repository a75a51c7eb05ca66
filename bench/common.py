"""What the bench's modes share: creating tasks through the API, waiting for runs to end."""

from __future__ import annotations

import asyncio
import time

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
