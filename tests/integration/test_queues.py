"""Queues: pause stops the claim (and the wake-up timer) for a queue's pending runs while the
rest flow; resume lets them go at once; GET /api/queues shows what each queue holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.api import store
from skiplock.sql import statements
from tests.integration.helpers import claim, create

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def test_a_paused_queue_is_not_claimed_and_resume_lets_it_go(pool: asyncpg.Pool) -> None:
    bulk = [await create(pool, NOW, queue="bulk") for _ in range(3)]
    other = await create(pool, NOW)
    view = await store.set_queue_paused(pool, "bulk", True, NOW, 10.0)
    assert view["paused"] is True and view["pending"] == 3 and view["due_backlog"] == 3
    rows = await claim(pool, NOW, 10)
    assert [str(r["task_id"]) for r in rows] == [other["id"]], "only the other queue's run is claimed"
    running = await store.get_task(pool, rows[0]["task_id"])
    assert running is not None and running["waiting"] is None
    bulk_view = await store.get_task(pool, uuid.UUID(bulk[0]["id"]))
    assert bulk_view is not None and bulk_view["waiting"]["reason"] == "queue_paused"
    # The wake-up timer skips it too (given the pauses the coordinator knows): a paused
    # queue's due run must not wake a coordinator over and over.
    later = await create(pool, NOW + timedelta(minutes=5), queue="bulk")
    paused = list(await statements.paused_queues(pool))
    assert later and paused == ["bulk"]
    assert (await statements.next_due(pool, after=NOW, now=NOW, types=["noop"], queues=[], paused=paused)).due_at is None
    resumed = await store.set_queue_paused(pool, "bulk", False, NOW, 10.0)
    assert resumed["paused"] is False and resumed["paused_at"] is None
    assert len(await claim(pool, NOW, 10)) == 3
    assert (await statements.next_due(pool, after=NOW, now=NOW, types=["noop"], queues=[])).due_at == NOW + timedelta(minutes=5)


async def test_queues_list_what_each_holds_and_an_unused_queue_may_be_paused(pool: asyncpg.Pool) -> None:
    await create(pool, NOW - timedelta(minutes=2), queue="reports")
    await create(pool, NOW - timedelta(minutes=1), queue="reports")
    await create(pool, NOW + timedelta(hours=1), queue="reports")
    await create(pool, NOW, queue="default")
    await claim(pool, NOW, 1, queues=("default",))
    view = await store.set_queue_paused(pool, "not-used-yet", True, NOW, 10.0)
    assert view == {"name": "not-used-yet", "paused": True, "paused_at": "2026-11-22T12:00:00Z", "pending": 0,
                    "running": 0, "due_backlog": 0, "oldest_due_at": None, "workers": 0}
    queues = {q["name"]: q for q in await store.list_queues(pool, NOW, 10.0)}
    assert set(queues) == {"default", "reports", "not-used-yet"}
    assert queues["reports"] | {"paused_at": None} == {
        "name": "reports", "paused": False, "paused_at": None, "pending": 3, "running": 0, "due_backlog": 2,
        "oldest_due_at": "2026-11-22T11:58:00Z", "workers": 0}
    assert queues["default"]["running"] == 1 and queues["default"]["pending"] == 0


async def test_a_queue_whose_runs_all_ended_is_still_listed(pool: asyncpg.Pool) -> None:
    from tests.integration.helpers import finish

    await create(pool, NOW, queue="nightly")
    [row] = await claim(pool, NOW, 1)
    await finish(pool, row, "succeeded")
    [q] = [q for q in await store.list_queues(pool, NOW, 10.0) if q["name"] == "nightly"]
    assert (q["pending"], q["running"], q["due_backlog"]) == (0, 0, 0)


async def test_the_dispatcher_hears_of_a_pause_and_claims_around_it(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry, WorkerConn
    from tests.integration.helpers import settings

    for q in ("bulk", "bulk", "default"):
        await create(pool, NOW, queue=q)
    registry = Registry()
    w = WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=10)
    registry.add(w)
    d = Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=lambda: NOW)
    await store.set_queue_paused(pool, "bulk", True, NOW, 10.0)
    d.queues_changed()  # what the NOTIFY does
    await d.dispatch_once()
    assert d.paused_queues == ("bulk",) and len(w.inflight) == 1
    await store.set_queue_paused(pool, "bulk", False, NOW, 10.0)
    await d.dispatch_once()  # not told yet: still skips it, and nothing is lost
    assert len(w.inflight) == 1
    d.queues_changed()
    await d.dispatch_once()
    assert d.paused_queues == () and len(w.inflight) == 3
