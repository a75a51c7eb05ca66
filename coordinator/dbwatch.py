"""A coordinator that cannot reach PostgreSQL cannot extend its workers' leases, so keeping
them would only let their leases run out while another coordinator's reaper re-runs their
work. The watch probes the database; past a short bound without an answer the coordinator
reports NOT_SERVING and sends its workers on (they take their runs with them, re-reported in
their hello to the next coordinator); when the database answers again it serves again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

from skiplock.common import logs
from skiplock.sql import db

log = logs.get("skiplock.dbwatch")


class DatabaseWatch:
    def __init__(self, pool: asyncpg.Pool, cutoff_s: float, on_lost: Callable[[], Awaitable[None]],
                 on_back: Callable[[], Awaitable[None]], interval_s: float = 0.5) -> None:
        self.pool = pool
        self.cutoff_s = cutoff_s
        self.interval_s = interval_s
        self.on_lost = on_lost
        self.on_back = on_back
        self.lost = False
        self._last_ok = time.monotonic()

    async def check_once(self) -> bool:
        try:
            await db.probe(self.pool, min(self.cutoff_s / 2, 2.0))
        except (*db.TRANSIENT_ERRORS, asyncpg.PostgresError, TimeoutError) as exc:
            silent = time.monotonic() - self._last_ok
            if not self.lost and silent >= self.cutoff_s:
                self.lost = True
                log.error("database_lost", silent_s=round(silent, 1), error=str(exc) or type(exc).__name__,
                          action="not serving; workers sent to other coordinators")
                await self.on_lost()
            return False
        self._last_ok = time.monotonic()
        if self.lost:
            self.lost = False
            log.info("database_back", action="serving again")
            await self.on_back()
        return True

    async def run(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval_s)
