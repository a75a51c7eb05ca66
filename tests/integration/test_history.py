"""History apart from the queue: ended runs move to the partitioned history, partitions are
made ahead and dropped behind per state class, each task's latest run survives, and the kept
counters equal count(*) through everything that moves runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from skiplock.api import store
from skiplock.coordinator.followups import reap
from skiplock.sql import statements
from skiplock.testing import wait_until
from tests.integration.helpers import add_runs, assert_counts_exact, claim, create, finish

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK_S = 7 * 86400.0
MONTH_S = 30 * 86400.0


async def maintain(pool: asyncpg.Pool, at: datetime, keep_ok_s: float = WEEK_S, keep_failed_s: float = MONTH_S,
                   batch: int = 10000) -> statements.HistoryPass:
    return await statements.maintain_history(pool, now=at, keep_ok_s=keep_ok_s, keep_failed_s=keep_failed_s,
                                             batch=batch)


async def partitions(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch("""
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent IN ('skiplock_run_history_ok'::regclass, 'skiplock_run_history_failed'::regclass)""")
    return {r["relname"] for r in rows}


async def where(pool: asyncpg.Pool, run_id: uuid.UUID) -> str:
    """The table that holds a run."""
    return await pool.fetchval("""
        SELECT tableoid::regclass::text FROM (
            SELECT tableoid, id FROM skiplock_runs UNION ALL SELECT tableoid, id FROM skiplock_run_history
            UNION ALL SELECT tableoid, id FROM skiplock_run_latest) x WHERE id = $1""", run_id)


async def test_an_ended_run_leaves_the_hot_table_and_stays_readable(pool: asyncpg.Pool) -> None:
    await maintain(pool, NOW)
    task = await create(pool, NOW)
    [row] = await claim(pool, NOW, 1)
    assert await where(pool, row["id"]) == "skiplock_runs"
    await finish(pool, row, "succeeded", at=NOW)
    assert await where(pool, row["id"]) == "skiplock_run_history_ok_20261122"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_runs") == 0, "the queue holds live runs only"
    view = await store.get_task(pool, uuid.UUID(task["id"]))
    assert view is not None and view["state"] == "succeeded" and view["last_run"]["id"] == str(row["id"])
    assert view["last_run"]["result"] == {"ok": True}
    run = await store.get_run(pool, row["id"])
    assert run is not None and run["state"] == "succeeded"
    page = await store.list_runs(pool, state="succeeded", type_=None, task_id=None, worker_id=None, limit=10,
                                 cursor=None)
    assert [r["id"] for r in page.items] == [str(row["id"])]


async def test_a_live_run_is_the_tasks_last_run_until_it_ends(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=2, retry_jitter=False, retry_backoff_s=0)
    [first] = await claim(pool, NOW, 1)
    await finish(pool, first, "failed", at=NOW + timedelta(seconds=1))
    view = await store.get_task(pool, uuid.UUID(task["id"]))
    assert view is not None and view["last_run"]["attempt"] == 2 and view["last_run"]["state"] == "pending"
    [second] = await claim(pool, NOW + timedelta(seconds=1), 1)
    await finish(pool, second, "succeeded", at=NOW + timedelta(seconds=2))
    view = await store.get_task(pool, uuid.UUID(task["id"]))
    assert view is not None and view["last_run"]["attempt"] == 2 and view["last_run"]["state"] == "succeeded"
    runs = await store.list_runs(pool, state=None, type_=None, task_id=uuid.UUID(task["id"]), worker_id=None,
                                 limit=10, cursor=None)
    assert [(r["attempt"], r["state"]) for r in runs.items] == [(2, "succeeded"), (1, "failed")]


async def test_partitions_are_made_ahead_and_the_pass_is_idempotent(pool: asyncpg.Pool) -> None:
    first = await maintain(pool, NOW)
    names = await partitions(pool)
    for cls in ("ok", "failed"):
        assert {f"skiplock_run_history_{cls}_{d}" for d in ("20261121", "20261122", "20261123", "20261124")} <= names
    assert first.created == 8
    again = await maintain(pool, NOW)
    assert again.created == 0 and await partitions(pool) == names


async def test_a_run_ending_exactly_at_midnight_belongs_to_the_new_day(pool: asyncpg.Pool) -> None:
    midnight = datetime(2026, 11, 23, tzinfo=UTC)
    await maintain(pool, NOW)
    await create(pool, NOW)
    [row] = await claim(pool, NOW, 1)
    await finish(pool, row, "succeeded", at=midnight)
    assert await where(pool, row["id"]) == "skiplock_run_history_ok_20261123"
    await create(pool, NOW)
    [row] = await claim(pool, NOW, 1)
    await finish(pool, row, "failed", at=midnight - timedelta(microseconds=1), retryable=False)
    assert await where(pool, row["id"]) == "skiplock_run_history_failed_20261122"


async def test_retention_drops_partitions_per_state_class_and_keeps_each_tasks_latest(pool: asyncpg.Pool) -> None:
    await maintain(pool, NOW)
    # A task with three runs that day (two old ones and its latest), a one-off whose only run
    # succeeded, and a failure.
    cron = await create(pool, NOW, cron="0 0 1 1 *")  # its runs here are triggered ones
    ids: dict[str, Any] = {}
    for i in range(3):
        await store.trigger_task(pool, uuid.UUID(cron["id"]), NOW + timedelta(hours=i + 1))
        [row] = await claim(pool, NOW + timedelta(hours=i + 1), 1)
        await finish(pool, row, "succeeded", at=NOW + timedelta(hours=i + 1, minutes=1))
        ids[f"cron{i}"] = row["id"]
    lonely = await create(pool, NOW + timedelta(hours=5), type="other")
    [only] = await claim(pool, NOW + timedelta(hours=5), 1, types=("other",))
    await finish(pool, only, "succeeded", at=NOW + timedelta(hours=5))
    failing = await create(pool, NOW + timedelta(hours=6), type="bad", max_attempts=1)
    [bad] = await claim(pool, NOW + timedelta(hours=6), 1, types=("bad",))
    await finish(pool, bad, "failed", at=NOW + timedelta(hours=6))
    await assert_counts_exact(pool)

    # Eight days on: the succeeded partition of the 22nd goes, the failed one stays (30 days).
    later = NOW + 8 * DAY
    done = await maintain(pool, later)
    assert done.dropped >= 1 and done.runs_dropped == 2, done
    assert "skiplock_run_history_ok_20261122" not in await partitions(pool)
    assert "skiplock_run_history_failed_20261122" in await partitions(pool)
    assert await where(pool, ids["cron0"]) is None and await where(pool, ids["cron1"]) is None
    assert await where(pool, ids["cron2"]) == "skiplock_run_latest", "a task's latest run is kept"
    assert await where(pool, only["id"]) == "skiplock_run_latest"
    assert await where(pool, bad["id"]) == "skiplock_run_history_failed_20261122"
    for task, run in ((cron, ids["cron2"]), (lonely, only["id"])):
        view = await store.get_task(pool, uuid.UUID(task["id"]))
        assert view is not None and view["last_run"] is not None and view["last_run"]["id"] == str(run)
        page = await store.list_runs(pool, state=None, type_=None, task_id=uuid.UUID(task["id"]), worker_id=None,
                                     limit=10, cursor=None)
        assert str(run) in [r["id"] for r in page.items]
    await assert_counts_exact(pool)
    assert (await store.get_task(pool, uuid.UUID(failing["id"])))["last_run"]["state"] == "failed"  # type: ignore[index]

    # A newer run of the cron task ends: its kept run is no longer its latest and goes.
    await store.trigger_task(pool, uuid.UUID(cron["id"]), later)
    [row] = await claim(pool, later, 1)
    await finish(pool, row, "succeeded", at=later)
    await maintain(pool, later)
    assert await where(pool, ids["cron2"]) is None
    await assert_counts_exact(pool)

    # Thirty-one days on the failure's partition goes too, but it is its task's latest run.
    await maintain(pool, NOW + 31 * DAY)
    assert "skiplock_run_history_failed_20261122" not in await partitions(pool)
    assert await where(pool, bad["id"]) == "skiplock_run_latest"
    await assert_counts_exact(pool)


async def test_two_coordinators_maintaining_at_once_do_it_once(db_url: str, pool: asyncpg.Pool) -> None:
    pools = [await asyncpg.create_pool(db_url, min_size=1, max_size=1) for _ in range(3)]
    try:
        passes = await asyncio.gather(*(maintain(p, NOW + 40 * DAY) for p in pools))
    finally:
        for p in pools:
            await p.close()
    assert sum(p.created for p in passes) == 8, "one pass made them all, the others waited for nothing"
    names = await partitions(pool)
    assert {f"skiplock_run_history_ok_{d}" for d in ("20270101", "20270102", "20270103")} <= names
    again = await maintain(pool, NOW + 40 * DAY)
    assert again.created == 0


async def test_rows_in_the_default_partition_move_into_a_new_day_and_old_ones_are_pruned(pool: asyncpg.Pool) -> None:
    # No partitions for December yet: runs ending then land in the DEFAULT partition.
    future = datetime(2026, 12, 20, 8, tzinfo=UTC)
    t1 = await create(pool, NOW)
    t2 = await create(pool, NOW)
    rows = await claim(pool, NOW, 2)
    for r in rows:
        await finish(pool, r, "succeeded", at=future)
    assert {await where(pool, r["id"]) for r in rows} == {"skiplock_run_history_ok_default"}
    await maintain(pool, future)
    assert {await where(pool, r["id"]) for r in rows} == {"skiplock_run_history_ok_20261220"}
    await assert_counts_exact(pool)
    # A run whose finish time lies far behind every partition (a skewed clock): default, then
    # pruned row by row once past retention, and kept when it is its task's latest.
    t3 = await create(pool, NOW)
    [old] = await claim(pool, NOW, 1)
    await finish(pool, old, "succeeded", at=datetime(2020, 1, 1, tzinfo=UTC))
    assert await where(pool, old["id"]) == "skiplock_run_history_ok_default"
    done = await maintain(pool, future)
    assert done.default_rows == 1 and await where(pool, old["id"]) == "skiplock_run_latest"
    await assert_counts_exact(pool)
    for t in (t1, t2, t3):
        assert (await store.get_task(pool, uuid.UUID(t["id"])))["last_run"] is not None  # type: ignore[index]


async def test_counts_stay_exact_through_every_way_runs_move(pool: asyncpg.Pool) -> None:
    await maintain(pool, NOW)
    at = NOW
    tasks = [await create(pool, at, max_attempts=2, retry_jitter=False, retry_backoff_s=0) for _ in range(6)]
    cron = await create(pool, at, cron="* * * * *", overlap="skip", queue="crons")
    paused = await create(pool, at + timedelta(hours=1))
    doomed = await create(pool, at + timedelta(hours=1))
    await assert_counts_exact(pool)
    rows = await claim(pool, at, 10)
    [slot] = await claim(pool, at + timedelta(minutes=1), 10)  # the cron task's 12:01
    by_task = {str(r["task_id"]): r for r in rows}
    await finish(pool, by_task[tasks[0]["id"]], "succeeded")
    await finish(pool, by_task[tasks[1]["id"]], "failed")  # a retry follows
    await finish(pool, by_task[tasks[2]["id"]], "failed", retryable=False)
    await finish(pool, by_task[tasks[3]["id"]], "succeeded", released=True)
    await store.cancel_task(pool, uuid.UUID(tasks[4]["id"]), at)  # a running run: stays until its worker stops
    await store.cancel_task(pool, uuid.UUID(doomed["id"]), at)  # a pending run: cancelled
    await store.pause_task(pool, uuid.UUID(paused["id"]), at)
    await assert_counts_exact(pool)
    # A claimed cron slot that must not run (overlap, catch-up) is recorded skipped.
    assert slot["task_id"] == uuid.UUID(cron["id"])
    await statements.skip_runs(pool, run_ids=[slot["id"]], reasons=["overlap=skip: test"], now=at)
    # Leases run out: the reaper fails what is still running, and retries follow.
    async with pool.acquire() as conn, conn.transaction():
        await reap(conn, at + timedelta(minutes=5), 3)
    await store.resume_task(pool, uuid.UUID(paused["id"]), at + timedelta(hours=2))
    await store.patch_task(pool, uuid.UUID(cron["id"]), {"queue": "elsewhere"}, at + timedelta(hours=2),
                           lambda body, _t, _c: body)
    await store.cancel_task(pool, uuid.UUID(cron["id"]), at + timedelta(hours=2))
    await store.trigger_task(pool, uuid.UUID(tasks[5]["id"]), at + timedelta(hours=2))
    await assert_counts_exact(pool)
    states = {r["state"] for r in await pool.fetch("SELECT DISTINCT state FROM skiplock_all_runs")}
    assert {"succeeded", "failed", "cancelled", "skipped", "pending"} <= states
    await maintain(pool, at + 60 * DAY)  # every partition of these goes
    await assert_counts_exact(pool)
    counts = await statements.counts(pool, now=at + 60 * DAY)
    assert counts["tasks"] == {r["status"]: r["n"] for r in await pool.fetch(
        "SELECT status, count(*) AS n FROM skiplock_tasks GROUP BY 1")}


async def test_counter_rows_of_gone_backends_are_folded(db_url: str, pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW)
    other = await asyncpg.connect(db_url)
    try:
        await add_runs(other, task["id"], NOW, 3)  # type: ignore[arg-type]
        pid = other.get_server_pid()
        assert await pool.fetchval("SELECT sum(n) FROM skiplock_run_counts WHERE shard = $1", pid) == 3
    finally:
        await other.close()

    async def gone() -> bool:  # a backend exits a moment after its client; live ones are not folded
        return not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

    await wait_until(gone, 10, what="the backend to exit")
    await maintain(pool, NOW)
    assert not await pool.fetchval("SELECT count(*) FROM skiplock_run_counts WHERE shard = $1", pid)
    await assert_counts_exact(pool)


async def test_the_migration_keeps_existing_tasks_and_history(pg_admin_url: str) -> None:
    """A database made before 0006: its ended runs move into the history (recent days into
    their partitions), each task names its latest run, and the counts start exact."""
    from yoyo import get_backend, read_migrations

    from skiplock.sql import db, migrations_dir
    from tests.conftest import with_database

    name = f"skiplock_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(pg_admin_url, name)
    try:
        def migrate_to_0005() -> None:
            backend = get_backend(db.yoyo_url(url))
            try:
                older = read_migrations(str(migrations_dir())).filter(lambda m: m.id < "0006")
                backend.apply_migrations(backend.to_apply(older))
            finally:
                backend.connection.close()

        await asyncio.to_thread(migrate_to_0005)
        conn = await asyncpg.connect(url)
        try:
            recent = datetime.now(UTC) - timedelta(days=2)
            await conn.execute("""
                INSERT INTO skiplock_tasks (id, name, type, max_attempts, timeout_s, status, created_at)
                SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 't' || i, 'noop', 3, 60,
                       CASE WHEN i <= 2 THEN 'succeeded' ELSE 'active' END, $1
                FROM generate_series(1, 3) i""", recent)
            await conn.execute("""
                INSERT INTO skiplock_runs (id, task_id, attempt, state, type, queue, priority, scheduled_for, due_at,
                                           started_at, finished_at, created_at)
                VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 1, 'failed', 'noop', 'default', 0,
                        $1, $1, $1, $1, $1),
                       (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 2, 'succeeded', 'noop', 'default',
                        0, $1, $1, $1, $1 + interval '1 minute', $1),
                       (gen_random_uuid(), '00000000-0000-0000-0000-000000000002', 1, 'succeeded', 'noop', 'default',
                        0, $2, $2, $2, $2, $2),
                       (gen_random_uuid(), '00000000-0000-0000-0000-000000000003', 1, 'pending', 'noop', 'default',
                        0, $1, $1, NULL, NULL, $1)""", recent, datetime(2024, 1, 1, tzinfo=UTC))
        finally:
            await conn.close()
        assert (await db.migrate(url))[0] == "0006_history"
        conn = await asyncpg.connect(url)
        try:
            day = recent.strftime("%Y%m%d")
            placed = {(r["state"], r["attempt"]): r["t"] for r in await conn.fetch("""
                SELECT state, attempt, tableoid::regclass::text AS t FROM skiplock_run_history""")}
            assert placed[("failed", 1)] == f"skiplock_run_history_failed_{day}"
            assert placed[("succeeded", 2)] == f"skiplock_run_history_ok_{day}"
            assert placed[("succeeded", 1)] == "skiplock_run_history_ok_default", "older than 30 days"
            assert await conn.fetchval("SELECT count(*) FROM skiplock_runs") == 1, "the pending run stays"
            latest = await conn.fetchrow("""
                SELECT h.attempt, h.state FROM skiplock_task_last_run t JOIN skiplock_run_history h ON h.id = t.run_id
                WHERE t.task_id = '00000000-0000-0000-0000-000000000001'""")
            assert (latest["attempt"], latest["state"]) == (2, "succeeded")
            assert await conn.fetchval("SELECT sum(n) FROM skiplock_run_counts") == 4
            assert await conn.fetchval("SELECT sum(n) FROM skiplock_task_counts WHERE status = 'succeeded'") == 2
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
