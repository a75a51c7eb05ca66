"""Results are written in batches: whatever arrived in the last few milliseconds, up to
`result_batch`, in one transaction. A database outage holds them in memory and retries;
nothing reported is dropped while the process lives."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.common.backoff import Backoff
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator.followups import ResultRow, apply_results
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.sql import db

log = logs.get("skiplock.results")


class ResultWriter:
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 on_written: Callable[[], None], clock: Callable[[], datetime] = timeutil.utcnow) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.on_written = on_written
        self.clock = clock
        self._pending: list[ResultRow] = []
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def add(self, rows: list[ResultRow]) -> None:
        if rows:
            self._pending.extend(rows)
            self._idle.clear()
            self._arrived.set()

    async def run(self) -> None:
        backoff = Backoff(base=0.1, cap=5.0)
        while True:
            await self._arrived.wait()
            if len(self._pending) < self.settings.result_batch and not self._stopping:
                await asyncio.sleep(self.settings.result_flush_s)  # let a batch gather
            batch = self._pending[: self.settings.result_batch]
            try:
                await self._write(batch)
                backoff.reset()
            except db.TRANSIENT_ERRORS as exc:
                self.metrics.db_errors.labels("results").inc()
                delay = backoff.next()
                log.warning("results_write_retry", error=str(exc) or type(exc).__name__,
                            pending=len(self._pending), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            except asyncpg.PostgresError as exc:
                # Not an outage: something in this batch the database refuses. Write the
                # results one by one so one bad row cannot hold back the others.
                self.metrics.db_errors.labels("results").inc()
                log.error("results_batch_refused", error=repr(exc), size=len(batch))
                await self._write_singly(batch)
            del self._pending[: len(batch)]
            if not self._pending:
                self._arrived.clear()
                self._idle.set()
            self.on_written()

    async def _write_singly(self, batch: list[ResultRow]) -> None:
        for row in batch:
            for _ in range(3):
                try:
                    await self._write([row])
                    break
                except db.TRANSIENT_ERRORS:
                    await asyncio.sleep(0.1)
                except asyncpg.PostgresError as exc:
                    # Dropped: the run's lease runs out and the reaper retries it, as for a
                    # worker that never reported.
                    log.error("result_dropped", run_id=str(row.run_id), error=repr(exc))
                    break

    async def _write(self, batch: list[ResultRow]) -> None:
        async with self.pool.acquire() as conn:
            applied = await apply_results(conn, batch, self.clock(), self.settings.max_lost_runs)
        self.metrics.retries.inc(applied.retries)
        done = {e.id for e in applied.rows} | applied.duplicates
        for state, n in Counter(e.state for e in applied.rows).items():
            self.metrics.results.labels(state).inc(n)
        for r in batch:
            if r.run_id not in done:
                self.metrics.stale.inc()
                self.metrics.stale_count += 1
                log.warning("stale_result", run_id=str(r.run_id), state=r.state,
                            why="the run is no longer held under this lease token")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything received so far is written (used when draining)."""
        self._stopping = True
        if self._pending:
            self._arrived.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False
