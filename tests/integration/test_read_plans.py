"""Every list/filter read and the counts stay on indexes with a large history (EXPLAIN in
JSON, pgqueuer's plan regression model). The tables hold enough rows, with statistics, that
the planner would choose a sequential scan if no index served the query."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from skiplock.api.store import STATE_FILTERS
from skiplock.sql import query, statements

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BIG = ("skiplock_tasks", "skiplock_runs", "skiplock_run_history", "skiplock_run_latest")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def seq_scans(pool: asyncpg.Pool, sql: str, *args: Any) -> list[str]:
    """Sequential scans of our tables that hold enough rows for one to matter (an empty
    partition is always read that way, and costs nothing)."""
    raw = await pool.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    doc = json.loads(raw) if isinstance(raw, str) else raw
    big = {r["relname"] for r in await pool.fetch("SELECT relname FROM pg_class WHERE reltuples >= 1000")}
    return [n["Relation Name"] for n in _nodes(doc[0]["Plan"])
            if n["Node Type"] == "Seq Scan" and n.get("Relation Name", "").startswith(BIG)
            and n["Relation Name"] in big]


@pytest.fixture(scope="module")
async def filled(module_db_url: str) -> dict[str, Any]:
    """30,000 tasks (a mix of states, types, queues and names), 20,000 pending runs and
    60,000 ended runs over three days of partitions."""
    conn = await asyncpg.connect(module_db_url)
    try:
        await statements.maintain_history(conn, now=NOW, keep_ok_s=30 * 86400.0, keep_failed_s=30 * 86400.0,
                                          batch=10000)
        for d in (1, 2):
            await statements.maintain_history(conn, now=NOW - timedelta(days=d), keep_ok_s=30 * 86400.0,
                                              keep_failed_s=30 * 86400.0, batch=10000)
        await conn.execute("""
            INSERT INTO skiplock_tasks (id, name, type, queue, max_attempts, timeout_s, status, created_at)
            SELECT gen_random_uuid(), 'job-' || (i % 5000) || '-' || i, 't' || (i % 50), 'q' || (i % 20), 3, 60,
                   (ARRAY['active', 'active', 'active', 'succeeded', 'succeeded', 'failed', 'cancelled',
                          'paused'])[1 + i % 8],
                   $1::timestamptz - make_interval(secs => i)
            FROM generate_series(1, 30000) i""", NOW)
        await conn.execute("""
            INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at)
            SELECT gen_random_uuid(), t.id, 1, t.type, t.queue, 0, $1::timestamptz + make_interval(secs => i),
                   $1::timestamptz + make_interval(secs => i)
            FROM (SELECT id, type, queue, row_number() OVER () AS i FROM skiplock_tasks
                  WHERE status = 'active' LIMIT 20000) t""", NOW + timedelta(days=1))
        await conn.execute("""
            SELECT set_config('skiplock.moving', 'on', false);
            INSERT INTO skiplock_run_history
            SELECT gen_random_uuid(), t.id, 1, (ARRAY['succeeded', 'succeeded', 'failed', 'cancelled', 'skipped'])[1 + g % 5],
                   t.type, t.queue, 0, f, f, f, f, 'w' || (g % 30), 'c', NULL, NULL, NULL, NULL, NULL, 'schedule', f,
                   g + 1000000
            FROM (SELECT id, type, queue, row_number() OVER () AS n FROM skiplock_tasks) t
            CROSS JOIN LATERAL (SELECT g, $1::timestamptz - make_interval(secs => g) AS f
                                FROM generate_series(t.n * 2, t.n * 2 + 1) g) x;
            SELECT set_config('skiplock.moving', 'off', false);""".replace("$1::timestamptz", f"'{NOW.isoformat()}'::timestamptz"))
        # Kept latest runs: the ones of a day's partition that retention dropped.
        await conn.execute("""
            INSERT INTO skiplock_run_latest SELECT * FROM skiplock_run_history WHERE seq % 10 = 0""")
        await conn.execute("ANALYZE")
        some = await conn.fetchrow("SELECT id, task_id, worker_id FROM skiplock_run_history LIMIT 1")
        return {"run": some["id"], "task": some["task_id"], "worker": some["worker_id"]}
    finally:
        await conn.close()


@pytest.fixture
async def rpool(module_db_url: str, filled: dict[str, Any]) -> Any:
    from skiplock.sql import db

    pool = await db.create_pool(module_db_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


TASK_FILTERS: list[dict[str, Any]] = [
    {}, {"type_": "t7"}, {"queue": "q3"}, {"name_prefix": "job-42-"},
    {"created_after": NOW - timedelta(hours=2), "created_before": NOW - timedelta(hours=1)},
    *({"statuses": STATE_FILTERS[s][0], "running": STATE_FILTERS[s][1]} for s in STATE_FILTERS),
]


@pytest.mark.parametrize("filters", TASK_FILTERS, ids=lambda f: ",".join(f) or "none")
async def test_list_tasks_uses_an_index_for_every_filter(rpool: asyncpg.Pool, filters: dict[str, Any]) -> None:
    args = {"after_created": None, "after_id": None, "type_": None, "queue": None, "name_prefix": None,
            "statuses": None, "running": None, "limit": 51, "created_after": None, "created_before": None,
            **filters}
    assert await seq_scans(rpool, query("list_tasks"), args["after_created"], args["after_id"], args["type_"],
                           args["queue"], args["name_prefix"], args["statuses"], args["running"],
                           args["limit"], args["created_after"], args["created_before"]) == []


@pytest.mark.parametrize("field", ["none", "state", "type", "task_id", "worker_id", "cursor", "created"])
async def test_list_runs_uses_an_index_for_every_filter(rpool: asyncpg.Pool, filled: dict[str, Any],
                                                       field: str) -> None:
    state = "failed" if field == "state" else None
    type_ = "t7" if field == "type" else None
    task = filled["task"] if field == "task_id" else None
    worker = filled["worker"] if field == "worker_id" else None
    after = (NOW - timedelta(hours=3), uuid.uuid4()) if field == "cursor" else (None, None)
    span = (NOW - timedelta(hours=2), NOW - timedelta(hours=1)) if field == "created" else (None, None)
    assert await seq_scans(rpool, query("list_runs"), after[0], after[1], state, type_, task, worker, 51,
                           *span) == []


async def test_one_run_and_the_task_views_read_by_key(rpool: asyncpg.Pool, filled: dict[str, Any]) -> None:
    assert await seq_scans(rpool, query("get_run"), filled["run"]) == []
    tasks = await rpool.fetch("SELECT t.id, l.run_id AS last_run_id, l.finished_at AS last_run_finished_at, "
                              "l.state AS last_run_state FROM skiplock_tasks t "
                              "JOIN skiplock_task_last_run l ON l.task_id = t.id LIMIT 50")
    assert await seq_scans(rpool, query("last_runs"), [t["id"] for t in tasks], [t["last_run_id"] for t in tasks],
                           [t["last_run_finished_at"] for t in tasks], [t["last_run_state"] for t in tasks]) == []
    assert await seq_scans(rpool, query("get_tasks"), [t["id"] for t in tasks]) == []


async def test_counts_read_the_kept_counters_and_live_runs_only(rpool: asyncpg.Pool) -> None:
    # The due backlog is counted: it is the live work, read through the claim's partial index
    # (here 100 due runs of 20,000 pending).
    soon = NOW + timedelta(days=1, seconds=100)
    assert await seq_scans(rpool, query("counts"), soon) == []
    assert await seq_scans(rpool, query("runs_by_state")) == []
    assert await seq_scans(rpool, query("due_backlog"), soon) == []


async def test_a_cron_slot_checks_the_history_by_index(rpool: asyncpg.Pool, filled: dict[str, Any]) -> None:
    n = 3
    assert await seq_scans(rpool, query("insert_runs"), [uuid.uuid4() for _ in range(n)], [filled["task"]] * n,
                           [1] * n, ["t1"] * n, ["q1"] * n, [0] * n,
                           [NOW + timedelta(minutes=i) for i in range(n)], [NOW] * n, ["schedule"] * n, NOW,
                           True, [None] * n, [None] * n, [None] * n) == []
