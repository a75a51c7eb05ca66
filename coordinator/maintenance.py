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

# Per-minute figures are for charts of hours and days, not an archive: a week is kept.
MINUTES_KEPT_DAYS = 7

log = logs.get("skiplock.reaper")


async def every(interval_s: float, step: Callable[[], Awaitable[object]], what: str,
                metrics: CoordinatorMetrics, at_once: bool = False) -> None:
    """Run `step` every `interval_s` (and first at once, with `at_once`). A failed round is
    logged and counted, never the end of the loop: maintenance must not take dispatch down
    with it."""
    first = at_once
    while True:
        if not first:
            await asyncio.sleep(interval_s)
        first = False
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
    """History maintenance: the history's daily partitions made ahead and dropped behind by
    class retention (each task's latest run kept), and workers long gone. Any number of
    coordinators run it; an advisory lock lets one pass run at a time."""

    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 clock: Callable[[], datetime] = timeutil.utcnow, batch: int = 10000,
                 interval_s: float = 60.0) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.batch = batch
        self.interval_s = interval_s

    async def run_once(self) -> statements.HistoryPass:
        now = self.clock()
        done = await statements.maintain_history(self.pool, now=now, keep_ok_s=self.settings.retention_s,
                                                 keep_failed_s=self.settings.retention_failed_s, batch=self.batch)
        await statements.delete_old_workers(self.pool, before=now - timedelta(days=1))
        await statements.delete_old_waiters(self.pool, before=now - timedelta(minutes=10))
        await statements.delete_old_minutes(self.pool, before=now - timedelta(days=MINUTES_KEPT_DAYS))
        if done.created or done.dropped or done.default_rows:
            log.info("history_maintained", partitions_created=done.created, partitions_dropped=done.dropped,
                     runs_dropped=done.runs_dropped, default_rows_pruned=done.default_rows)
        return done

    async def run(self) -> None:
        # At once on start: today's partitions exist before the first run ends in them.
        await every(self.interval_s, self.run_once, "retention", self.metrics, at_once=True)
