"""Long-polls: GET /api/tasks/{id}?wait_s=N and GET /api/runs/{id}?wait_s=N answer as soon as
the task (run) is final, or after N seconds.

One LISTEN connection per API process (opened on the first wait) hears `skiplock_ended`,
which the history's trigger sends only for ids registered in skiplock_waiters (see
0010_dashboard.sql); each wait registers its id for its duration. Nothing polls the tables
in a loop: a wait reads the state when it starts, when a NOTIFY names its id, and once in a
while as a safety net (a NOTIFY lost with the LISTEN connection).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.sql import statements

log = logs.get("skiplock.api.longpoll")
CHANNEL = "skiplock_ended"
RECHECK_S = 5.0  # the safety net


class Waits:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def _listen(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = await asyncpg.connect(self.database_url, server_settings={
                "application_name": "skiplock-api-listen"})
            await self._conn.add_listener(CHANNEL, self._heard)

    def _heard(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for key in payload.split(","):
            for event in self._events.get(key, ()):
                event.set()

    async def until(self, pool: asyncpg.Pool, id_: uuid.UUID, wait_s: float,
                    done: Callable[[], Awaitable[Any]]) -> Any:
        """`done()` returns a value when the wait is over (else None); call it until it does
        or `wait_s` passed, then return its last answer (or the fallback read)."""
        first = await done()
        if first is not None or wait_s <= 0:
            return first
        try:
            await self._listen()
        except (OSError, asyncpg.PostgresError) as exc:  # no LISTEN: the safety net alone
            log.warning("longpoll_listen_failed", error=str(exc))
        key = str(id_)
        event = asyncio.Event()
        self._events[key].add(event)
        waiter = uuid.uuid4()
        await statements.add_waiter(pool, waiter=waiter, id_=id_, now=timeutil.utcnow())
        try:
            deadline = time.monotonic() + wait_s
            # Read again once registered: an end between the first read and the
            # registration sent no NOTIFY for this wait.
            while (got := await done()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    async with asyncio.timeout(min(left, RECHECK_S)):
                        await event.wait()
                except TimeoutError:
                    pass
                event.clear()
            return got
        finally:
            self._events[key].discard(event)
            if not self._events[key]:
                del self._events[key]
            await statements.remove_waiter(pool, waiter=waiter)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
