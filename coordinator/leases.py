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

from skiplock.common import db, logs, timeutil
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.sql import query

log = logs.get("skiplock.leases")


@dataclass
class Beat:
    worker_id: str
    runs: list[tuple[uuid.UUID, uuid.UUID]]  # (run id, lease token)
    draining: bool
    done: asyncio.Future[set[uuid.UUID]]


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

    async def beat(self, worker_id: str, runs: list[tuple[uuid.UUID, uuid.UUID]], draining: bool) -> set[uuid.UUID]:
        """Record a heartbeat; returns the reported runs the worker still holds. Raises a
        database error if the batch could not be written."""
        earlier = self._beats.pop(worker_id, None)
        if earlier is not None:  # a newer heartbeat of the same worker supersedes it
            earlier.done.cancel()
        b = Beat(worker_id, runs, draining, asyncio.get_running_loop().create_future())
        self._beats[worker_id] = b
        self._arrived.set()
        return await b.done

    async def flush(self) -> None:
        beats, self._beats = list(self._beats.values()), {}
        if not beats:
            return
        runs = [(run_id, token, b.worker_id) for b in beats for run_id, token in b.runs]
        try:
            rows = await self.pool.fetch(
                query("heartbeats"),
                [b.worker_id for b in beats], [len(b.runs) for b in beats], [b.draining for b in beats],
                [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs],
                self.clock(), self.settings.leases.lease_s, self.settings.coordinator_id)
        except db.TRANSIENT_ERRORS as exc:
            for b in beats:
                if not b.done.done():
                    b.done.set_exception(exc)
            return
        held = {(r["id"], r["worker_id"]) for r in rows}
        for b in beats:
            if not b.done.done():
                b.done.set_result({run_id for run_id, _ in b.runs if (run_id, b.worker_id) in held})

    async def run(self) -> None:
        while True:
            await self._arrived.wait()
            await asyncio.sleep(self.flush_s)  # let the heartbeats of other workers join
            self._arrived.clear()
            await self.flush()
