"""Concurrency keys: at most `limit` runs of a key are running at once, whatever the number of
claimers, and a slot is given back by every way a run stops running."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.api import store
from skiplock.coordinator.followups import reap
from skiplock.sql import db, statements
from tests.integration.helpers import claim, create, finish

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def running_with(pool: asyncpg.Pool | asyncpg.Connection, key: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM skiplock_runs WHERE state = 'running' AND concurrency_key = $1",
                               key)


async def slots(pool: asyncpg.Pool, key: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM skiplock_concurrency_slots WHERE key = $1", key)


async def test_a_claim_takes_at_most_the_limit_and_leaves_other_work_flowing(pool: asyncpg.Pool) -> None:
    keyed = [await create(pool, NOW - timedelta(seconds=10 - i), concurrency={"key": "c42", "limit": 2})
             for i in range(6)]
    free = [await create(pool, NOW) for _ in range(3)]
    rows = await claim(pool, NOW, 20)
    assert await running_with(pool, "c42") == 2 and await slots(pool, "c42") == 2
    assert {str(r["task_id"]) for r in rows} >= {t["id"] for t in free}, "runs without a key are not held back"
    assert [str(r["task_id"]) for r in rows if r["task_id"] != uuid.UUID(free[0]["id"])][:2] == [
        keyed[0]["id"], keyed[1]["id"]], "the earliest due first"
    assert await claim(pool, NOW, 20) == [], "the key is full: nothing more"
    view = await store.get_task(pool, uuid.UUID(keyed[2]["id"]))
    assert view is not None and view["concurrency"] == {"key": "c42", "limit": 2}
    assert view["waiting"] is not None  # no worker here; with one, the reason is concurrency (see below)
    # A result frees a slot: the next run of the key may start.
    first = next(r for r in rows if r["task_id"] == uuid.UUID(keyed[0]["id"]))
    await finish(pool, first, "succeeded")
    assert await slots(pool, "c42") == 1
    [nxt] = await claim(pool, NOW, 20)
    assert nxt["task_id"] == uuid.UUID(keyed[2]["id"]) and await running_with(pool, "c42") == 2


async def test_every_way_a_run_stops_running_gives_its_slot_back(pool: asyncpg.Pool) -> None:
    key = {"key": "k", "limit": 1}
    a = await create(pool, NOW, concurrency=key, max_attempts=2, retry_backoff_s=0, retry_jitter=False)
    [run] = await claim(pool, NOW, 5)
    # Unclaimed (its worker vanished before it was sent): back to pending, slot free.
    await statements.unclaim_runs(pool, run_ids=[run["id"]])
    assert await slots(pool, "k") == 0
    [run] = await claim(pool, NOW, 5)
    # Its lease runs out: the reaper fails it (a retry follows), the slot goes with it.
    async with pool.acquire() as conn, conn.transaction():
        await reap(conn, NOW + timedelta(minutes=1), 3)
    assert await slots(pool, "k") == 0
    [retry] = await claim(pool, NOW + timedelta(minutes=1), 5)
    assert retry["attempt"] == 2 and await slots(pool, "k") == 1
    # Cancelled while it runs: its worker stops it and reports; the slot goes with the run.
    await store.cancel_task(pool, uuid.UUID(a["id"]), NOW + timedelta(minutes=1))
    await finish(pool, retry, "cancelled", at=NOW + timedelta(minutes=1))
    assert await slots(pool, "k") == 0
    b = await create(pool, NOW, concurrency=key)
    [run] = await claim(pool, NOW + timedelta(minutes=2), 5)
    assert run["task_id"] == uuid.UUID(b["id"]), "the slot was free for the next task of the key"


async def test_many_claimers_at_once_never_pass_the_limit(db_url: str, pool: asyncpg.Pool) -> None:
    limit = 3
    for i in range(60):
        await create(pool, NOW - timedelta(milliseconds=i), concurrency={"key": "shared", "limit": limit})
    pools = [await db.create_pool(db_url, min_size=1, max_size=1) for _ in range(6)]
    seen: list[int] = []
    try:
        async def worker(p: asyncpg.Pool, name: str) -> int:
            done = 0
            for _ in range(40):
                rows = await claim(p, NOW, 5, worker=name)
                seen.append(await running_with(p, "shared"))
                for r in rows:
                    await finish(p, r, "succeeded")
                    done += 1
                if not rows:
                    await asyncio.sleep(0)
            return done

        totals = await asyncio.gather(*(worker(p, f"w{i}") for i, p in enumerate(pools)))
    finally:
        for p in pools:
            await p.close()
    assert max(seen) <= limit, "never more than the limit running at once"
    assert sum(totals) == 60 and await slots(pool, "shared") == 0, "all ran, and no slot leaked"
    ended = await pool.fetchval("SELECT count(*) FROM skiplock_run_history WHERE concurrency_key = 'shared'")
    assert ended == 60


async def test_patch_changes_the_key_of_pending_runs(pool: asyncpg.Pool) -> None:
    from skiplock.common.validation import validate_patch

    t = await create(pool, NOW + timedelta(hours=1), concurrency={"key": "old", "limit": 1})

    def validate(body: object, type_: str, cron: str | None) -> dict[str, object]:
        changes, errors = validate_patch(body, type_, cron)
        assert not errors, errors
        return changes

    view = await store.patch_task(pool, uuid.UUID(t["id"]), {"concurrency": {"key": "new", "limit": 4}}, NOW,
                                  validate)
    assert view["concurrency"] == {"key": "new", "limit": 4}
    assert await pool.fetchval("SELECT concurrency_key FROM skiplock_runs WHERE task_id = $1",
                               uuid.UUID(t["id"])) == "new"
    view = await store.patch_task(pool, uuid.UUID(t["id"]), {"concurrency": None}, NOW, validate)
    assert view["concurrency"] is None


def test_a_run_held_back_by_its_key_says_so_and_names_the_holders() -> None:
    from skiplock.api.waiting import Fleet, Taker, waiting

    fleet = Fleet((Taker(frozenset({"noop"}), frozenset(), 5),), holders={"c42": ("run-a", "run-b")})
    w = waiting(state="pending", due_at=NOW, reason="schedule", type_="noop", queue="default", task_status="active",
                fleet=fleet, now=NOW, concurrency_key="c42", concurrency_limit=2)
    assert w is not None and w["reason"] == "concurrency" and "run-a, run-b" in w["detail"]
    w = waiting(state="pending", due_at=NOW, reason="schedule", type_="noop", queue="default", task_status="active",
                fleet=fleet, now=NOW, concurrency_key="c42", concurrency_limit=3)
    assert w is not None and w["reason"] == "no_worker", "a free slot: being handed to a worker"


async def test_a_cron_tasks_next_slots_keep_its_key(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry, WorkerConn
    from tests.integration.helpers import settings

    t = await create(pool, NOW - timedelta(minutes=1), cron="* * * * *", concurrency={"key": "cron-k", "limit": 1})
    registry = Registry()
    registry.add(WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=10))
    d = Dispatcher(pool, settings(db_url), registry, CoordinatorMetrics(), clock=lambda: NOW)
    await d.dispatch_once()
    keys = await pool.fetch("SELECT state, concurrency_key FROM skiplock_runs WHERE task_id = $1 ORDER BY state",
                            uuid.UUID(t["id"]))
    assert [(r["state"], r["concurrency_key"]) for r in keys] == [("pending", "cron-k"), ("running", "cron-k")]
