"""Heartbeats, batched: every heartbeat a coordinator receives within `flush_s` is written
in one statement (workers marked alive, the leases of their runs extended), so a thousand
workers cost a few statements a second, not five hundred."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.sql import db, statements

log = logs.get("skiplock.leases")


@dataclass
class Beat:
    worker_id: str
    runs: list[tuple[uuid.UUID, uuid.UUID]]  # (run id, lease token)
    draining: bool
    done: asyncio.Future[set[str]] | None = None


async def heartbeats(conn: asyncpg.Connection | asyncpg.Pool, beats: list[Beat], now: datetime,
                     settings: CoordinatorSettings) -> dict[str, set[str]]:
    """Write heartbeats in one statement; returns, per worker, the reported runs it still
    holds (a run counts only for the worker it is assigned to, under its token)."""
    runs = [(run_id, token, b.worker_id) for b in beats for run_id, token in b.runs]
    rows = await statements.heartbeats(
        conn, worker_ids=[b.worker_id for b in beats], running=[len(b.runs) for b in beats],
        draining=[b.draining for b in beats], run_ids=[r[0] for r in runs], tokens=[r[1] for r in runs],
        run_workers=[r[2] for r in runs], now=now, lease_s=settings.leases.lease_s,
        coordinator_id=settings.coordinator_id)
    held: dict[str, set[str]] = {}
    for r in rows:
        held.setdefault(r["worker_id"], set()).add(str(r["id"]))
    return held


class LeaseKeeper:
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, metrics: CoordinatorMetrics,
                 clock: Callable[[], datetime] = timeutil.utcnow, flush_s: float = 0.05) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.flush_s = flush_s
        self._beats: dict[str, Beat] = {}
        self._arrived = asyncio.Event()

    async def beat(self, worker_id: str, runs: list[tuple[uuid.UUID, uuid.UUID]], draining: bool) -> set[str]:
        """Record a heartbeat; returns the reported runs the worker still holds. Raises a
        database error if the batch could not be written."""
        earlier = self._beats.pop(worker_id, None)
        if earlier is not None and earlier.done is not None:  # a newer heartbeat supersedes it
            earlier.done.cancel()
        done: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._beats[worker_id] = Beat(worker_id, runs, draining, done)
        self._arrived.set()
        return await done

    async def flush(self) -> None:
        beats, self._beats = list(self._beats.values()), {}
        if not beats:
            return
        try:
            held = await heartbeats(self.pool, beats, self.clock(), self.settings)
        except db.TRANSIENT_ERRORS as exc:
            for b in beats:
                if b.done is not None and not b.done.done():
                    b.done.set_exception(exc)
            return
        for b in beats:
            if b.done is not None and not b.done.done():
                b.done.set_result(held.get(b.worker_id, set()))

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            await asyncio.sleep(self.flush_s)  # let the heartbeats of other workers join
            self._arrived.clear()
            await self.flush()
