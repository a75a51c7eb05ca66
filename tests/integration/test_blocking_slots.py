"""Shell commands and plain handlers take a process or a thread each: a worker's generous
default slots never start more of them at once than its blocking slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.coordinator.dispatcher import Dispatcher, interleave
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry, WorkerConn
from tests.integration.helpers import create, settings

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def worker(**kw: object) -> WorkerConn:
    base: dict[str, object] = {"id": "w1", "name": "w1", "host": "h", "types": ("noop", "shell"), "queues": (),
                               "slots": 10, "blocking_types": ("shell",), "blocking_slots": 2}
    return WorkerConn(**{**base, **kw})  # type: ignore[arg-type]


def test_blocking_free_counts_only_blocking_runs_still_in_flight() -> None:
    w = worker()
    assert (w.free, w.blocking_free) == (10, 2)
    w.inflight.update({"a": "t", "b": "t", "c": "t"})
    w.blocking_inflight.update({"a", "gone"})  # "gone" was reported already
    assert (w.free, w.blocking_free) == (7, 1)
    w.inflight.update({str(i): "t" for i in range(6)})
    assert w.blocking_free == 1 and w.free == 1
    w.inflight["x"] = "t"
    assert w.free == 0 and w.blocking_free == 0, "blocking slots are within the slots"
    assert interleave([w], blocking=True) == [] and interleave([worker()], blocking=True) == ["w1", "w1"]
    assert worker(blocking_types=()).blocking_free == 0


async def test_a_claim_takes_at_most_the_blocking_slots_of_blocking_types(db_url: str, pool: asyncpg.Pool) -> None:
    for _ in range(5):
        await create(pool, NOW - timedelta(seconds=1), type="shell", payload={"command": ["true"]})
        await create(pool, NOW - timedelta(seconds=1))
    registry = Registry()
    w = worker()
    registry.add(w)
    d = Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=lambda: NOW)
    await d.dispatch_once()
    types = await pool.fetch("SELECT type, count(*) AS n FROM skiplock_runs WHERE state = 'running' GROUP BY 1")
    assert {r["type"]: r["n"] for r in types} == {"shell": 2, "noop": 5}
    assert len(w.inflight) == 7 and len(w.blocking_inflight) == 2
    await d.dispatch_once()  # nothing more fits: the blocking slots are taken
    assert len(w.inflight) == 7
    # One shell run ends: one more may start.
    done = next(iter(w.blocking_inflight))
    w.inflight.pop(done)
    await d.dispatch_once()
    assert len(w.blocking_inflight & w.inflight.keys()) == 2 and len(w.inflight) == 7
