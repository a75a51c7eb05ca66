"""pgqueuer's side of the comparison: a QueueManager with a no-op entrypoint, run by
pgqueuer's own CLI with its defaults (`pgq run bench.pgq_consumer:create`). It writes the
time its first job started to $SKIPLOCK_BENCH_STAMP, where the drain is measured from."""

from __future__ import annotations

import os
import time
from pathlib import Path

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager


async def create() -> QueueManager:
    conn = await asyncpg.connect(os.environ["PGDSN"])
    qm = QueueManager(AsyncpgDriver(conn))
    stamp = Path(os.environ["SKIPLOCK_BENCH_STAMP"])
    started: list[float] = []

    @qm.entrypoint("bench_noop")
    async def noop(job: Job) -> None:
        if not started:
            started.append(time.time())
            stamp.write_text(repr(started[0]))

    return qm
