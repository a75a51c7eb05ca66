"""The queue on real PostgreSQL: claim, results with fencing, retries, the reaper."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.coordinator.followups import reap
from skiplock.sql import db, query
from tests.integration.helpers import add_runs, claim, create, finish, finish_applied

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def state_of(pool: asyncpg.Pool, run_id: uuid.UUID) -> str:
    return await pool.fetchval("SELECT state FROM skiplock_all_runs WHERE id = $1", run_id)


async def test_two_concurrent_claimers_never_get_the_same_run(db_url: str, pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW)
    await add_runs(pool, task["id"], NOW, 999)  # 1,000 runs with the first one
    pools = [await db.create_pool(db_url, min_size=4, max_size=4) for _ in range(2)]
    try:
        async def claimer(p: asyncpg.Pool, name: str) -> list[uuid.UUID]:
            got: list[uuid.UUID] = []
            while True:
                rows = await claim(p, NOW + timedelta(seconds=1), 37, worker=name)
                if not rows:
                    return got
                got += [r["id"] for r in rows]

        results = await asyncio.gather(*(claimer(pools[i % 2], f"w{i}") for i in range(8)))
    finally:
        for p in pools:
            await p.close()
    claimed = [r for rs in results for r in rs]
    assert len(claimed) == 1000
    assert len(set(claimed)) == 1000, "a run was claimed twice"
    assert sum(1 for rs in results if rs) > 1, "the claimers did not actually compete"


async def test_claim_honours_due_time_type_queue_and_priority(pool: asyncpg.Pool) -> None:
    later = await create(pool, NOW, run_at="2026-11-22T12:10:00Z")
    low = await create(pool, NOW, priority=0)
    high = await create(pool, NOW, priority=10)
    other_type = await create(pool, NOW, type="email")
    other_queue = await create(pool, NOW, queue="reports")
    rows = await claim(pool, NOW, 10, queues=("default",))
    assert [str(r["task_id"]) for r in rows] == [high["id"], low["id"]]
    assert rows[0]["lease_token"] is not None and rows[0]["payload"] == "{}"
    assert not await claim(pool, NOW, 10, types=("noop",), queues=("default",))
    assert [str(r["task_id"]) for r in await claim(pool, NOW, 10, types=("email",))] == [other_type["id"]]
    assert [str(r["task_id"]) for r in await claim(pool, NOW, 10)] == [other_queue["id"]]
    assert [str(r["task_id"]) for r in await claim(pool, NOW + timedelta(minutes=10), 10)] == [later["id"]]


async def test_claim_uses_the_partial_index(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW)
    other = await create(pool, NOW, type="shell", payload={"command": "true"})
    await add_runs(pool, task["id"], NOW, 200)
    # History that must not be scanned, and a backlog of a type nobody handles.
    await pool.execute("UPDATE skiplock_runs SET state = 'succeeded' WHERE ctid IN (SELECT ctid FROM skiplock_runs LIMIT 150)")
    await pool.execute("""INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at)
                          SELECT gen_random_uuid(), $1, 1, 'shell', 'default', 0, $2::timestamptz + make_interval(secs => i), $2
                          FROM generate_series(1, 20000) AS i""", uuid.UUID(other["id"]), NOW)
    await pool.execute("ANALYZE skiplock_runs")
    plan = "\n".join(r[0] for r in await pool.fetch(
        "EXPLAIN " + query("claim"), NOW, ["noop"], [], 10, ["w"] * 10, "c", 10.0, 5.0, NOW, []))
    assert "skiplock_runs_claim" in plan, plan
    assert "Tid Scan" in plan, plan


async def test_result_is_fenced_by_the_lease_token(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW)
    [row] = await claim(pool, NOW, 1)
    assert await finish(pool, row, "succeeded", token=uuid.uuid4()) == []
    assert await state_of(pool, row["id"]) == "running"
    assert len(await finish(pool, row, "succeeded")) == 1
    assert await state_of(pool, row["id"]) == "succeeded"
    assert await finish(pool, row, "failed") == [], "a second result must not overwrite the first"
    t = await pool.fetchrow("SELECT status FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"]))
    assert t["status"] == "succeeded"


async def test_result_from_another_worker_is_not_applied_even_with_the_token(pool: asyncpg.Pool) -> None:
    await create(pool, NOW)
    [row] = await claim(pool, NOW, 1, worker="w1")
    forged = await finish_applied(pool, row, "failed", worker="w2")
    assert forged.rows == [] and forged.duplicates == set(), "a forged result is stale, not a duplicate"
    assert await state_of(pool, row["id"]) == "running"


async def test_a_re_sent_result_is_a_duplicate_a_late_one_is_stale(pool: asyncpg.Pool) -> None:
    await create(pool, NOW)
    await create(pool, NOW)
    a, b = await claim(pool, NOW, 2, lease_s=10)
    assert len((await finish_applied(pool, a, "succeeded")).rows) == 1
    again = await finish_applied(pool, a, "succeeded")
    assert again.rows == [] and again.duplicates == {a["id"]}
    async with pool.acquire() as conn:
        await reap(conn, NOW + timedelta(seconds=11), 3)
    late = await finish_applied(pool, b, "succeeded")
    assert late.rows == [] and late.duplicates == set(), "a result after the reaper took the run is stale"


async def test_released_run_is_rerun_now_even_with_no_attempts_left(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=1, retry_backoff_s=60)
    [row] = await claim(pool, NOW, 1)
    await finish(pool, row, "failed", released=True)
    runs = await pool.fetch("SELECT attempt, state, due_at FROM skiplock_all_runs WHERE task_id = $1 ORDER BY attempt",
                            uuid.UUID(task["id"]))
    assert [(r["attempt"], r["state"], r["due_at"]) for r in runs] == [(1, "failed", NOW), (2, "pending", NOW)]
    assert await pool.fetchval("SELECT status FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"])) == "active"


async def test_failure_retries_with_next_attempt_until_attempts_run_out(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=2, retry_backoff_s=4, retry_jitter=False)
    [first] = await claim(pool, NOW, 1)
    await finish(pool, first, "failed")
    retry = await pool.fetchrow("SELECT * FROM skiplock_all_runs WHERE task_id = $1 AND attempt = 2", uuid.UUID(task["id"]))
    assert retry["state"] == "pending" and retry["reason"] == "retry"
    assert retry["due_at"] == NOW + timedelta(seconds=4)
    assert retry["scheduled_for"] == first["scheduled_for"]
    assert not await claim(pool, NOW + timedelta(seconds=3), 1), "a retry must wait for its backoff"
    [second] = await claim(pool, NOW + timedelta(seconds=4), 1)
    await finish(pool, second, "failed", at=NOW + timedelta(seconds=5))
    count = await pool.fetchval("SELECT count(*) FROM skiplock_all_runs WHERE task_id = $1", uuid.UUID(task["id"]))
    assert count == 2
    assert await pool.fetchval("SELECT status FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"])) == "failed"


async def test_non_retryable_failure_ends_the_task(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=5)
    [row] = await claim(pool, NOW, 1)
    await finish(pool, row, "failed", retryable=False)
    assert await pool.fetchval("SELECT count(*) FROM skiplock_all_runs WHERE task_id = $1", uuid.UUID(task["id"])) == 1
    assert await pool.fetchval("SELECT status FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"])) == "failed"


async def test_reaper_fails_expired_leases_and_retries(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=3)
    [row] = await claim(pool, NOW, 1, lease_s=10)
    async with pool.acquire() as conn:
        assert (await reap(conn, NOW + timedelta(seconds=9), 3)).rows == []
        applied = await reap(conn, NOW + timedelta(seconds=11), 3)
    assert [r["id"] for r in applied.rows] == [row["id"]] and applied.retries == 1
    reaped = await pool.fetchrow("SELECT * FROM skiplock_all_runs WHERE id = $1", row["id"])
    assert reaped["state"] == "failed" and reaped["error"].startswith("worker lost")
    assert await finish(pool, row, "succeeded") == [], "the lost worker's late result is stale"
    assert await pool.fetchval("SELECT lost_runs FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"])) == 1


async def test_reaper_enforces_the_deadline_even_with_heartbeats(pool: asyncpg.Pool) -> None:
    await create(pool, NOW, timeout_s=30)
    [row] = await claim(pool, NOW, 1, lease_s=10)
    # Heartbeats keep the lease fresh, but timeout_s + grace (5 s) has passed.
    await pool.execute("UPDATE skiplock_runs SET lease_expires_at = $2 WHERE id = $1", row["id"], NOW + timedelta(hours=1))
    async with pool.acquire() as conn:
        applied = await reap(conn, NOW + timedelta(seconds=36), 3)
    assert [r["id"] for r in applied.rows] == [row["id"]]
    assert (await pool.fetchval("SELECT error FROM skiplock_all_runs WHERE id = $1", row["id"])).startswith("timed out")


async def test_task_whose_runs_keep_losing_workers_is_quarantined(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, max_attempts=10, retry_jitter=False, retry_backoff_s=0)
    t = NOW
    for _ in range(3):
        [_row] = await claim(pool, t, 1, lease_s=1)
        t += timedelta(seconds=2)
        async with pool.acquire() as conn:
            applied = await reap(conn, t, 3)
    assert applied.quarantined == [uuid.UUID(task["id"])]
    assert await pool.fetchval("SELECT status FROM skiplock_tasks WHERE id = $1", uuid.UUID(task["id"])) == "quarantined"
    assert not await claim(pool, t + timedelta(hours=1), 1), "a quarantined task gets no more retries"


async def test_heartbeat_extends_only_runs_held_under_their_token(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.leases import Beat, heartbeats
    from tests.integration.helpers import settings

    await create(pool, NOW)
    await create(pool, NOW)
    a, b = await claim(pool, NOW, 2, lease_s=10)
    await pool.execute(query("upsert_worker"), "w1", "w1", "h", ["noop"], [], 2, "c-test", NOW)
    held = await heartbeats(pool, [Beat("w1", [(a["id"], a["lease_token"]), (b["id"], uuid.uuid4())], False)],
                            NOW + timedelta(seconds=5), settings(db_url))
    assert held == {"w1": {str(a["id"])}}
    lease = await pool.fetchval("SELECT lease_expires_at FROM skiplock_all_runs WHERE id = $1", a["id"])
    assert lease == NOW + timedelta(seconds=15)


async def test_migrations_race_on_an_empty_database(pg_admin_url: str) -> None:
    from tests.conftest import with_database

    name = f"skiplock_race_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(pg_admin_url, name)
        results = await asyncio.gather(*(asyncio.to_thread(db.apply_migrations, url) for _ in range(4)))
        from skiplock.sql import migrations_dir

        count = len(list(migrations_dir().glob("*.sql")))
        assert sorted(map(len, results)) == [0, 0, 0, count], "exactly one starter applies the migrations"
        assert await db.migrate(url) == []
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_cron_slot_is_materialised_once_across_coordinators(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator import cron
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry, WorkerConn
    from tests.integration.helpers import settings

    task = await create(pool, NOW, cron="* * * * *")
    first = NOW + timedelta(minutes=1)
    assert task["next_run_at"] == "2026-11-22T12:01:00Z"
    assert task["next_runs"][:3] == ["2026-11-22T12:01:00Z", "2026-11-22T12:02:00Z", "2026-11-22T12:03:00Z"]
    at = first + timedelta(milliseconds=3)
    def registry() -> Registry:
        r = Registry()
        r.add(WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=1))
        return r

    coords = [Dispatcher(pool, settings(db_url, coordinator_id=f"c{i}"), registry(), CoordinatorMetrics(),
                         clock=lambda: at) for i in range(2)]
    got = await asyncio.gather(*(c.claim(("noop",), (), ["w1"]) for c in coords))
    assert sorted(len(g) for g in got) == [0, 1]
    # Both coordinators now try to make the 12:02 slot; the unique key lets one row exist.
    [row] = [g[0] for g in got if g]
    async with pool.acquire() as conn, conn.transaction():
        for _ in coords:
            await cron.materialise_next(conn, [row], at)
    slots = await pool.fetch("SELECT scheduled_for, state FROM skiplock_all_runs WHERE task_id = $1 ORDER BY scheduled_for",
                             uuid.UUID(task["id"]))
    assert [(s["scheduled_for"], s["state"]) for s in slots] == [(first, "running"), (first + timedelta(minutes=1), "pending")]


async def test_one_off_paused_while_running_still_ends(pool: asyncpg.Pool) -> None:
    from skiplock.api import store

    done_task = await create(pool, NOW)
    failing = await create(pool, NOW, max_attempts=2, retry_jitter=False)
    rows = {str(r["task_id"]): r for r in await claim(pool, NOW, 5)}
    for t in (done_task, failing):
        await store.pause_task(pool, uuid.UUID(t["id"]), NOW)
    await finish(pool, rows[done_task["id"]], "succeeded")
    await finish(pool, rows[failing["id"]], "failed")
    assert (await store.get_task(pool, uuid.UUID(done_task["id"])))["state"] == "succeeded"
    held = await store.get_task(pool, uuid.UUID(failing["id"]))
    assert held["state"] == "paused" and held["next_run_at"] is None, "the retry waits for resume"
    assert not await claim(pool, NOW + timedelta(hours=1), 5)
    resumed = await store.resume_task(pool, uuid.UUID(failing["id"]), NOW + timedelta(hours=1))
    assert resumed["state"] == "scheduled" and resumed["next_run_at"] is not None
    [retry] = await claim(pool, NOW + timedelta(hours=1), 5)
    assert retry["attempt"] == 2


async def test_quarantine_holds_a_cron_tasks_next_slot(pool: asyncpg.Pool) -> None:
    task = await create(pool, NOW, cron="* * * * * *")  # every second
    t = NOW
    for _ in range(3):
        rows = await claim(pool, t + timedelta(seconds=1), 5, lease_s=1)
        assert rows
        t += timedelta(seconds=1)
        await pool.execute("INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at)"
                           " SELECT gen_random_uuid(), $1, 1, 'noop', 'default', 0, $2, $2 ON CONFLICT DO NOTHING",
                           uuid.UUID(task["id"]), t + timedelta(seconds=1))
        async with pool.acquire() as conn:
            applied = await reap(conn, t + timedelta(seconds=3), 3)
    assert applied.quarantined == [uuid.UUID(task["id"])]
    assert not await claim(pool, t + timedelta(minutes=5), 5), "a quarantined cron task's slots wait"


async def test_runs_claimed_for_a_vanished_worker_go_back_to_pending(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.coordinator.dispatcher import Dispatcher
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from skiplock.coordinator.registry import Registry
    from tests.integration.helpers import settings

    task = await create(pool, NOW)
    d = Dispatcher(pool, settings(db_url), Registry(), CoordinatorMetrics(), clock=lambda: NOW)
    assert len(await d.claim(("noop",), (), ["ghost"])) == 1  # the worker left before the send
    run = await pool.fetchrow("SELECT * FROM skiplock_all_runs WHERE task_id = $1", uuid.UUID(task["id"]))
    assert (run["state"], run["attempt"], run["worker_id"], run["lease_token"]) == ("pending", 1, None, None)
    assert len(await claim(pool, NOW, 1)) == 1, "it can be claimed again at once"


async def test_heartbeats_of_many_workers_are_one_statement_fenced_by_worker(db_url: str, pool: asyncpg.Pool) -> None:
    import asyncio

    from skiplock.coordinator.leases import LeaseKeeper
    from skiplock.coordinator.metrics import CoordinatorMetrics
    from tests.integration.helpers import settings

    for _ in range(3):
        await create(pool, NOW)
    a1, a2 = await claim(pool, NOW, 2, worker="wa", lease_s=10)
    [b1] = await claim(pool, NOW, 1, worker="wb", lease_s=10)
    for w in ("wa", "wb"):
        await pool.execute(query("upsert_worker"), w, w, "h", ["noop"], [], 2, "c-test", NOW)
    later = NOW + timedelta(seconds=5)
    keeper = LeaseKeeper(pool, settings(db_url), CoordinatorMetrics(), clock=lambda: later)
    beats = [asyncio.ensure_future(keeper.beat("wa", [(a1["id"], a1["lease_token"]), (b1["id"], b1["lease_token"])], False)),
             asyncio.ensure_future(keeper.beat("wb", [(b1["id"], b1["lease_token"]), (a2["id"], uuid.uuid4())], True))]
    await asyncio.sleep(0)
    await keeper.flush()
    held_a, held_b = await asyncio.gather(*beats)
    assert held_a == {str(a1["id"])}, "wa may not extend wb's run, even with its token"
    assert held_b == {str(b1["id"])}, "a wrong token extends nothing"
    leases = {r["id"]: r["lease_expires_at"] for r in await pool.fetch("SELECT id, lease_expires_at FROM skiplock_all_runs")}
    assert leases[a1["id"]] == leases[b1["id"]] == later + timedelta(seconds=10)
    assert leases[a2["id"]] == NOW + timedelta(seconds=10)
    workers = {r["id"]: (r["running"], r["draining"], r["last_heartbeat_at"])
               for r in await pool.fetch("SELECT * FROM skiplock_workers")}
    assert workers == {"wa": (2, False, later), "wb": (2, True, later)}


async def test_skiplock_migrate_command(pg_admin_url: str) -> None:
    import subprocess
    import sys

    from skiplock.sql import migrations_dir
    from tests.conftest import with_database

    name = f"skiplock_cli_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        def run() -> str:
            out = subprocess.run([sys.executable, "-m", "skiplock", "migrate", "--database-url",
                                  with_database(pg_admin_url, name)], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return out.stdout

        count = len(list(migrations_dir().glob("*.sql")))
        assert (await asyncio.to_thread(run)).startswith(f"applied {count} migration(s): 0001_initial")
        assert "up to date" in await asyncio.to_thread(run)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
