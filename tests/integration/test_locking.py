"""Lock order between the API's task commands and a coordinator's claim, on real PostgreSQL.

The interleaving that deadlocked (a cancel holding the task row and waiting for a cron slot
the claim holds, while the claim inserts the next slot, whose foreign key needs the task
row) is forced here step by step rather than hoped for under load."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.api import store
from skiplock.coordinator import cron
from skiplock.sql import query
from tests.conftest import wait_until
from tests.integration.helpers import create

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _cancel_while_claim_holds_the_slot(pool: asyncpg.Pool, command: str) -> tuple[str, asyncpg.Record]:
    task = await create(pool, NOW - timedelta(minutes=5), cron="* * * * *")
    due = NOW + timedelta(seconds=1)
    async with pool.acquire() as claimer, claimer.transaction():
        [row] = await claimer.fetch(query("claim"), due, ["noop"], [], 1, ["w1"], "c1", 10.0, 5.0, due, [])
        # Unwrapped: the retry on deadlock would hide the very deadlock this test is about.
        fn = {"cancel": store.cancel_task, "pause": store.pause_task}[command].__wrapped__  # type: ignore[attr-defined]
        api = asyncio.create_task(fn(pool, uuid.UUID(task["id"]), due))
        # The command has the task row and now waits for the slot this claim holds.
        async def command_blocked() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND wait_event_type = 'Lock'"))

        await wait_until(command_blocked, 10, what=f"the {command} to wait for the claimed slot")
        # The next slot's foreign-key check must not wait for the command (that was the deadlock).
        async with asyncio.timeout(5):
            await cron.materialise_next(claimer, [row], due)
    view = await asyncio.wait_for(api, 10)
    return view["state"], row


async def test_cancel_during_a_cron_claim_does_not_deadlock(pool: asyncpg.Pool) -> None:
    state, _ = await _cancel_while_claim_holds_the_slot(pool, "cancel")
    assert state == "cancelled"


async def test_dispatcher_settles_runs_of_tasks_that_stopped_being_active(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry, WorkerConn
    from tests.integration.helpers import settings

    state, row = await _cancel_while_claim_holds_the_slot(pool, "cancel")
    assert state == "cancelled"
    paused_state, paused_row = await _cancel_while_claim_holds_the_slot(pool, "pause")
    assert paused_state == "paused"
    later = NOW + timedelta(minutes=2)
    registry = Registry()
    registry.add(WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=10))
    d = Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=lambda: later)
    await d.claim(("noop",), (), ["w1"] * 10)
    assert registry.workers["w1"].inflight == {}  # nothing of a cancelled or paused task went out
    late = await pool.fetch("SELECT task_id, state, due_at FROM skiplock_all_runs WHERE task_id = ANY($1) "
                            "AND scheduled_for > $2", [row["task_id"], paused_row["task_id"]], NOW)
    by_task = {r["task_id"]: r for r in late}
    assert by_task[row["task_id"]]["state"] == "cancelled"
    assert by_task[paused_row["task_id"]]["state"] == "pending"
    assert await pool.fetchval("SELECT due_at = 'infinity' FROM skiplock_all_runs WHERE task_id = $1 AND state = 'pending'",
                               paused_row["task_id"])


async def test_a_claim_filled_by_settled_runs_still_asks_for_another_round(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry, WorkerConn
    from tests.integration.helpers import settings

    await _cancel_while_claim_holds_the_slot(pool, "cancel")  # leaves a slot due at NOW + 1 min
    later = NOW + timedelta(minutes=2)
    other = await create(pool, NOW, run_at="2026-11-22T12:01:30Z")
    registry = Registry()
    registry.add(WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=1))
    d = Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=lambda: later)
    # The one free slot went to the cancelled task's slot, which was settled, not sent: the
    # claim was full, so another round is due at once (not at the next safety poll).
    assert await d.dispatch_once() is True
    assert registry.workers["w1"].inflight == {}
    await d.dispatch_once()
    assert list(registry.workers["w1"].inflight) == [
        str(await pool.fetchval("SELECT id FROM skiplock_all_runs WHERE task_id = $1::uuid", other["id"]))]
