"""Cron policies on real PostgreSQL with time injected: overlap, catch-up, pause, and the
record each skipped slot leaves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from skiplock.api import store
from skiplock.coordinator.dispatcher import Dispatcher
from skiplock.coordinator.followups import ResultRow, apply_results
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry, WorkerConn
from tests.integration.helpers import create, settings

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - timedelta(seconds=30))


@pytest.fixture
def dispatcher(db_url: str, pool: asyncpg.Pool, clock: Clock) -> Dispatcher:
    registry = Registry()
    registry.add(WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=10))
    return Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=clock)


async def tick(d: Dispatcher, clock: Clock, at: datetime) -> list[asyncpg.Record]:
    clock.now = at
    return await d.claim(("noop",), (), ["w1"] * 5)


async def runs_of(pool: asyncpg.Pool, task: dict) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM skiplock_all_runs WHERE task_id = $1 ORDER BY scheduled_for, attempt",
                            uuid.UUID(task["id"]))


async def finish(pool: asyncpg.Pool, run: asyncpg.Record, at: datetime) -> None:
    async with pool.acquire() as conn:
        await apply_results(conn, [ResultRow(run["id"], run["lease_token"], "w1", "succeeded", None, None, at)], at, 3)


def dispatched(d: Dispatcher) -> list[str]:
    return list(d.registry.workers["w1"].inflight)


async def test_overlap_skip_records_the_skipped_slot(pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *")
    [first] = await tick(dispatcher, clock, T0)
    await tick(dispatcher, clock, T0 + MIN)  # the first run is still going
    runs = await runs_of(pool, task)
    assert [(r["scheduled_for"], r["state"]) for r in runs] == [
        (T0, "running"), (T0 + MIN, "skipped"), (T0 + 2 * MIN, "pending")]
    assert runs[1]["error"].startswith("overlap=skip")
    assert dispatched(dispatcher) == [str(first["id"])], "a skipped slot is never sent to a worker"
    # The API shows it, so "why didn't it run at 09:01?" has an answer.
    page = await store.list_runs(pool, state="skipped", type_=None, task_id=uuid.UUID(task["id"]),
                                 worker_id=None, limit=10, cursor=None)
    assert page.items[0]["scheduled_for"] == "2026-11-22T09:01:00Z" and "previous run" in page.items[0]["error"]


async def test_overlap_allow_runs_both(pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *", overlap="allow")
    await tick(dispatcher, clock, T0)
    await tick(dispatcher, clock, T0 + MIN)
    assert [r["state"] for r in await runs_of(pool, task)] == ["running", "running", "pending"]


async def test_overlap_queue_waits_for_the_current_run_at_most_one(pool: asyncpg.Pool, dispatcher: Dispatcher,
                                                                   clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *", overlap="queue")
    [first] = await tick(dispatcher, clock, T0)
    await tick(dispatcher, clock, T0 + MIN)
    await tick(dispatcher, clock, T0 + 2 * MIN)
    runs = await runs_of(pool, task)
    assert [(r["state"], r["reason"]) for r in runs] == [
        ("running", "schedule"), ("pending", "queued"), ("skipped", "schedule"), ("pending", "schedule")]
    assert runs[2]["error"].startswith("overlap=queue: a run was already waiting")
    end = T0 + 2 * MIN + timedelta(seconds=10)
    await finish(pool, first, end)
    queued = (await runs_of(pool, task))[1]
    assert queued["due_at"] == end, "the waiting slot is released when the current run ends"
    got = await tick(dispatcher, clock, end)
    assert [r["id"] for r in got] == [queued["id"]]
    assert str(queued["id"]) in dispatched(dispatcher)


async def test_catch_up_none_skips_missed_slots(pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *", catch_up="none")
    back = T0 + 5 * MIN + timedelta(seconds=20)  # nothing ran from 09:00 to 09:05:20
    assert await tick(dispatcher, clock, back)
    runs = await runs_of(pool, task)
    assert [(r["scheduled_for"], r["state"]) for r in runs] == [(T0, "skipped"), (T0 + 6 * MIN, "pending")]
    assert runs[0]["error"].startswith("catch_up=none") and "5 later" in runs[0]["error"]
    assert dispatched(dispatcher) == []


async def test_catch_up_latest_runs_once_then_back_on_schedule(pool: asyncpg.Pool, dispatcher: Dispatcher,
                                                               clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *")
    back = T0 + 5 * MIN + timedelta(seconds=20)
    [run] = await tick(dispatcher, clock, back)
    runs = await runs_of(pool, task)
    assert [(r["scheduled_for"], r["state"], r["reason"]) for r in runs] == [
        (T0, "running", "catch_up"), (T0 + 6 * MIN, "pending", "schedule")]
    assert dispatched(dispatcher) == [str(run["id"])]


@pytest.mark.parametrize("overlap", ["skip", "allow", "queue"])
async def test_catch_up_all_replays_each_missed_slot_in_order(pool: asyncpg.Pool, dispatcher: Dispatcher,
                                                              clock: Clock, overlap: str) -> None:
    task = await create(pool, clock.now, cron="* * * * *", catch_up="all", overlap=overlap)
    back = T0 + 3 * MIN + timedelta(seconds=20)  # nothing ran from 09:00 to 09:03:20
    now = back
    for i in range(4):  # 09:00, 09:01, 09:02, 09:03: each runs once the one before it ended
        [run] = await tick(dispatcher, clock, now)
        assert run["scheduled_for"] == T0 + i * MIN
        assert not await tick(dispatcher, clock, now), "the next replay waits for this one"
        now += timedelta(seconds=1)
        await finish(pool, run, now)
    runs = await runs_of(pool, task)
    assert [(r["scheduled_for"], r["state"]) for r in runs] == [
        *[(T0 + i * MIN, "succeeded") for i in range(4)], (T0 + 4 * MIN, "pending")]
    assert [r["reason"] for r in runs] == ["catch_up"] * 4 + ["schedule"], "back on schedule after the replays"
    assert all(r["error"] is None for r in runs), "nothing was skipped, so no skip reason was made up"


async def test_a_replay_waits_for_a_triggered_run_instead_of_being_skipped(pool: asyncpg.Pool, dispatcher: Dispatcher,
                                                                           clock: Clock) -> None:
    task = await create(pool, clock.now, cron="* * * * *", catch_up="all")
    back = T0 + 2 * MIN + timedelta(seconds=20)
    [first] = await tick(dispatcher, clock, back)
    trig = await store.trigger_task(pool, uuid.UUID(task["id"]), back)
    [triggered] = await tick(dispatcher, clock, back)
    assert str(triggered["id"]) == trig["id"]
    await finish(pool, first, back + timedelta(seconds=1))
    assert not await tick(dispatcher, clock, back + timedelta(seconds=1)), "the replay waits for the triggered run"
    await finish(pool, triggered, back + timedelta(seconds=2))
    [replay] = await tick(dispatcher, clock, back + timedelta(seconds=2))
    assert replay["scheduled_for"] == T0 + MIN and replay["reason"] == "catch_up"
    assert not [r for r in await runs_of(pool, task) if r["state"] == "skipped"]


async def test_paused_slot_is_recorded_and_resume_replans(pool: asyncpg.Pool, dispatcher: Dispatcher,
                                                          clock: Clock) -> None:
    task = await create(pool, clock.now, cron="0 9 * * *", timezone="Europe/Berlin")
    first = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET)
    assert task["next_run_at"] == "2026-11-23T08:00:00Z"
    await store.pause_task(pool, uuid.UUID(task["id"]), T0)
    assert not await tick(dispatcher, clock, first + timedelta(seconds=1)), "a paused task does not run"
    resumed = await store.resume_task(pool, uuid.UUID(task["id"]), first + timedelta(hours=2))
    assert resumed is not None and resumed["next_run_at"] == "2026-11-24T08:00:00Z"
    runs = await runs_of(pool, task)
    assert [(r["scheduled_for"], r["state"]) for r in runs] == [(first, "skipped"), (first + timedelta(days=1), "pending")]
    assert runs[0]["error"].startswith("paused")


async def test_catch_up_none_after_a_long_outage_counts_a_bounded_number_of_fire_times(
        pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock) -> None:
    import time

    task = await create(pool, clock.now, cron="* * * * * *", catch_up="none")  # every second
    back = T0 + timedelta(days=1)  # 86,400 fire times went by
    began = time.process_time()
    await tick(dispatcher, clock, back)
    spent = time.process_time() - began
    [skipped] = [r for r in await runs_of(pool, task) if r["state"] == "skipped"]
    assert "at least 1000 later" in skipped["error"]
    print(f"catch_up=none after a day of an every-second task: the claim took {spent * 1000:.0f} ms of CPU")
