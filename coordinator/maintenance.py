"""The reaper: runs whose lease ran out (worker lost) or whose deadline passed end `failed`
and are retried if attempts remain. SKIP LOCKED makes it safe on every coordinator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator.followups import Applied, reap
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.sql import db, statements

log = logs.get("skiplock.reaper")


async def every(interval_s: float, step: Callable[[], Awaitable[object]], what: str,
                metrics: CoordinatorMetrics) -> None:
    """Run `step` every `interval_s`. A failed round is logged and counted, never the end of
    the loop: maintenance must not take dispatch down with it."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except db.TRANSIENT_ERRORS as exc:
            metrics.db_errors.labels(what).inc()
            log.warning(f"{what}_skipped", error=str(exc) or type(exc).__name__)
        except Exception:
            metrics.db_errors.labels(what).inc()
            log.exception(f"{what}_failed")


class Reaper:
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 on_reaped: Callable[[], None], clock: Callable[[], datetime] = timeutil.utcnow) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.on_reaped = on_reaped
        self.clock = clock

    @property
    def interval_s(self) -> float:
        return min(2.0, max(0.2, self.settings.leases.lease_s / 5))

    async def run_once(self) -> Applied:
        async with self.pool.acquire() as conn:
            applied = await reap(conn, self.clock(), self.settings.max_lost_runs)
        for r in applied.rows:
            why = "worker_lost" if r["lost"] else "deadline"
            self.metrics.reaped.labels(why).inc()
            log.warning("run_reaped", run_id=str(r["id"]), task_id=str(r["task_id"]),
                        attempt=r["attempt"], why=why)
        for task_id in applied.quarantined:
            log.error("task_quarantined", task_id=str(task_id),
                      why=f"{self.settings.max_lost_runs} runs lost their worker; resume it to try again")
        self.metrics.retries.inc(applied.retries)
        if applied.retries:
            self.on_reaped()
        return applied

    async def run(self) -> None:
        await every(self.interval_s, self.run_once, "reaper", self.metrics)


class Retention:
    """Deletes finished runs older than `retention_s` (keeping each task's latest run) and
    workers long gone, in batches of `batch`, pausing between them."""

    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 clock: Callable[[], datetime] = timeutil.utcnow, batch: int = 500,
                 interval_s: float = 60.0) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.batch = batch
        self.interval_s = interval_s

    async def run_once(self, max_batches: int = 20) -> int:
        cutoff = self.clock() - timedelta(seconds=self.settings.retention_s)
        deleted = 0
        for _ in range(max_batches):
            n = await statements.delete_old_runs(self.pool, before=cutoff, batch=self.batch)
            deleted += n
            if n < self.batch:
                break
            await asyncio.sleep(0.05)  # let dispatch have the database between batches
        await statements.delete_old_workers(self.pool, before=self.clock() - timedelta(days=1))
        if deleted:
            log.info("history_pruned", runs=deleted, older_than=timeutil.iso(cutoff))
        return deleted

    async def run(self) -> None:
        await every(self.interval_s, self.run_once, "retention", self.metrics)
