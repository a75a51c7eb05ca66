"""The batched statements of the hot path stay on their indexes with history in the table
(EXPLAIN in JSON, walked node by node, as pgqueuer's plan regression tests do). A sequential
scan of skiplock_runs here means a statement whose cost grows with history."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from skiplock.sql import query
from tests.integration.helpers import create

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    raw = await pool.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    doc = json.loads(raw) if isinstance(raw, str) else raw
    return list(_nodes(doc[0]["Plan"]))


def _runs_scans(nodes: list[dict[str, Any]]) -> list[str]:
    return [f"{n['Node Type']}({n.get('Index Name', '')})" for n in nodes if n.get("Relation Name") == "skiplock_runs"]


@pytest.fixture
async def history(pool: asyncpg.Pool) -> dict[str, Any]:
    task = await create(pool, NOW)
    tid = uuid.UUID(task["id"])
    # The hot table holds live runs only: a backlog of future pending runs is its history.
    await pool.execute("""
        INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at, state)
        SELECT gen_random_uuid(), $1, 1, 'noop', 'default', 0, $2::timestamptz + make_interval(days => 1, secs => i),
               $2::timestamptz + make_interval(days => 1, secs => i), 'pending'
        FROM generate_series(1, 15000) AS i""", tid, NOW)
    running = await pool.fetch("""
        INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at, state,
                                   started_at, worker_id, lease_token, lease_expires_at, coordinator_id)
        SELECT gen_random_uuid(), $1, 1, 'noop', 'default', 0, $2::timestamptz + make_interval(secs => i), $2,
               'running', $2, 'w1', gen_random_uuid(), $2::timestamptz + interval '10 seconds', 'c'
        FROM generate_series(1, 200) AS i RETURNING id, lease_token""", tid, NOW)
    await pool.execute("ANALYZE skiplock_runs")
    return {"running": running}


async def test_finish_runs_finds_runs_by_id(pool: asyncpg.Pool, history: dict[str, Any]) -> None:
    rows = history["running"][:100]
    n = len(rows)
    nodes = await _plan(pool, query("finish_runs"), [r["id"] for r in rows], [r["lease_token"] for r in rows],
                        ["succeeded"] * n, [None] * n, [None] * n, [NOW] * n, [True] * n, [0.0] * n,
                        [False] * n, ["w1"] * n)
    scans = _runs_scans(nodes)
    assert scans and not [s for s in scans if s.startswith("Seq Scan")], scans


async def test_heartbeats_find_runs_by_id(pool: asyncpg.Pool, history: dict[str, Any]) -> None:
    rows = history["running"][:100]
    nodes = await _plan(pool, query("heartbeats"), ["w1"], [len(rows)], [False], [r["id"] for r in rows],
                        [r["lease_token"] for r in rows], ["w1"] * len(rows), NOW, 10.0, "c")
    scans = _runs_scans(nodes)
    assert scans and not [s for s in scans if s.startswith("Seq Scan")], scans


async def test_the_reaper_reads_only_running_runs(pool: asyncpg.Pool, history: dict[str, Any]) -> None:
    scans = _runs_scans(await _plan(pool, query("reap_expired"), NOW + timedelta(minutes=1), 1000))
    assert any("skiplock_runs_leases" in s for s in scans), scans
    assert not [s for s in scans if s.startswith("Seq Scan")], scans


async def test_the_wake_up_timer_reads_only_pending_runs(pool: asyncpg.Pool, history: dict[str, Any]) -> None:
    scans = _runs_scans(await _plan(pool, query("next_due"), NOW, ["noop"], [], ["paused"], NOW))
    ok = ("skiplock_runs_next_due", "skiplock_runs_claim", "skiplock_runs_rate_limited")
    assert scans and all(any(i in s for i in ok) for s in scans), scans


async def _run_analyzed(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE in a transaction rolled back: the rows each node really read."""
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
        finally:
            await tr.rollback()
    return list(_nodes((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]))


def _rows_read(nodes: list[dict[str, Any]]) -> int:
    return sum(int(n["Actual Rows"]) * int(n.get("Actual Loops", 1)) for n in nodes
               if n.get("Relation Name") == "skiplock_runs" and "Scan" in n["Node Type"])


@pytest.mark.parametrize("asked", [["noop"], ["noop", "other"], ["other", "noop"]])
async def test_a_claim_reads_what_it_takes_whatever_the_backlog(pool: asyncpg.Pool, history: dict[str, Any],
                                                                asked: list[str]) -> None:
    """5,000 runs due at once in three priorities (and 15,000 later, of the same type), and
    5,000 due of a type no worker asked for: a claim of 10 walks the claim index by type and
    priority and reads about 10 runs, where sorting every due run read all 5,000."""
    for type_ in ("noop", "unasked"):
        task = await create(pool, NOW)
        await pool.execute("""
            INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at, state)
            SELECT gen_random_uuid(), $1, 1, $3, 'default', i % 3, $2::timestamptz - make_interval(secs => i),
                   $2::timestamptz - make_interval(secs => i), 'pending'
            FROM generate_series(1, 5000) AS i""", uuid.UUID(task["id"]), NOW, type_)
    await pool.execute("ANALYZE skiplock_runs")
    for _ in range(7):  # past the custom plans: the generic plan is the one that stays
        nodes = await _run_analyzed(pool, query("claim"), NOW, asked, [], 10, ["w1"] * 10, "c", 10.0, 5.0, NOW, [])
        assert nodes[0]["Actual Rows"] == 10
        assert _rows_read(nodes) < 200, _runs_scans(nodes)
        assert not [s for s in _runs_scans(nodes) if s.startswith("Seq Scan")]


async def test_ending_tasks_probes_only_their_runs(pool: asyncpg.Pool, history: dict[str, Any]) -> None:
    tasks = [uuid.UUID((await create(pool, NOW))["id"]) for _ in range(20)]
    nodes = await _run_analyzed(pool, query("finish_tasks"), tasks, "succeeded", NOW)
    assert _rows_read(nodes) < 100, _runs_scans(nodes)
