"""LISTEN on a dedicated connection: new due work wakes the dispatcher, cancellations reach
the worker holding the run. Reconnects (and re-LISTENs) after the database comes back, then
pokes the dispatcher, since notifications sent meanwhile are gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from skiplock.common import logs
from skiplock.sql import db

log = logs.get("skiplock.listen")

WAKE = "skiplock_wake"
CANCEL = "skiplock_cancel"
DRAIN = "skiplock_drain"
QUEUES = "skiplock_queues"  # a queue was paused or resumed


class Listener:
    def __init__(self, url: str, on_due: Callable[[float], None],
                 on_cancel: Callable[[str, str | None, str], object], on_reconnect: Callable[[], None],
                 on_drain: Callable[[str, bool], object] | None = None,
                 on_queues: Callable[[], None] | None = None) -> None:
        self.url = url
        self.on_due = on_due
        self.on_cancel = on_cancel
        self.on_reconnect = on_reconnect
        self.on_drain = on_drain
        self.on_queues = on_queues
        self.connected = asyncio.Event()

    def _wake(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.on_due(float(payload))
        except ValueError:
            self.on_reconnect()

    def _cancel(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            msg = json.loads(payload)
            self.on_cancel(str(msg["run_id"]), msg.get("worker_id"), msg.get("reason", "cancelled"))
        except (ValueError, KeyError, TypeError):
            log.warning("bad_cancel_notification", payload=payload[:200])

    def _queues(self, _c: Any, _pid: int, _channel: str, _payload: str) -> None:
        if self.on_queues is not None:
            self.on_queues()

    def _drain(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            msg = json.loads(payload)
            if self.on_drain is not None:
                self.on_drain(str(msg["worker_id"]), bool(msg["drain"]))
        except (ValueError, KeyError, TypeError):
            log.warning("bad_drain_notification", payload=payload[:200])

    async def run(self) -> None:
        backoff = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.url, timeout=db.CONNECT_TIMEOUT_S)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(WAKE, self._wake)
                await conn.add_listener(CANCEL, self._cancel)
                await conn.add_listener(DRAIN, self._drain)
                await conn.add_listener(QUEUES, self._queues)
                self.connected.set()
                self.on_reconnect()
                backoff = 0.1
                # Ping now and then: a half-open TCP connection never reports termination.
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(10):
                            await lost.wait()
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except (*db.TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("listen_reconnecting", error=str(exc) or type(exc).__name__,
                            retry_in_s=round(backoff, 2))
            self.connected.clear()
            if conn is not None and not conn.is_closed():
                conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
