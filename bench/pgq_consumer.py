"""pgqueuer's side of the comparison: a PgQueuer with a no-op entrypoint, run by
pgqueuer's own CLI with its defaults (`pgq run bench.pgq_consumer:create`). It writes the
time its first job started to $SKIPLOCK_BENCH_STAMP, where the drain is measured from."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    conn = await asyncpg.connect(os.environ["PGDSN"])
    pgq = PgQueuer.from_asyncpg_connection(conn)
    stamp = Path(os.environ["SKIPLOCK_BENCH_STAMP"])
    started: list[float] = []

    @pgq.entrypoint("bench_noop")
    async def noop(job: Job) -> None:
        if not started:
            started.append(time.time())
            stamp.write_text(repr(started[0]))

    try:
        yield pgq
    finally:
        await conn.close()
