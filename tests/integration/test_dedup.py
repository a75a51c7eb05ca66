"""Dedup windows: while a task holding a key has a pending (or, for `active`, a running) run,
a create with that key is that task; once the window closes the key is free again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from skiplock.api import store
from skiplock.common.validation import validate_create
from skiplock.sql import db
from tests.integration.helpers import claim, finish

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def make(pool: asyncpg.Pool, *bodies: dict[str, Any], at: datetime = NOW) -> list[tuple[dict[str, Any], bool]]:
    specs = []
    for body in bodies:
        spec, errors = validate_create({"type": "noop", **body})
        assert spec is not None, errors
        specs.append(spec)
    return await store.create_tasks(pool, specs, at, batch=len(specs) > 1)


async def test_keep_returns_the_waiting_task_and_the_key_is_free_once_it_ran(pool: asyncpg.Pool) -> None:
    dedup = {"key": "refresh-7"}
    [(first, created)] = await make(pool, {"payload": {"v": 1}, "dedup": dedup})
    assert created and first["deduplicated"] is False
    assert first["dedup"] == {"key": "refresh-7", "while": "active", "on_duplicate": "keep"}
    [(again, created)] = await make(pool, {"payload": {"v": 2}, "dedup": dedup})
    assert not created and again["deduplicated"] is True
    assert again["id"] == first["id"] and again["payload"] == {"v": 1}, "keep: the first payload stays"
    # `active` covers a running run too.
    [run] = await claim(pool, NOW, 5)
    [(running, _)] = await make(pool, {"dedup": dedup})
    assert running["id"] == first["id"] and running["deduplicated"] is True
    # `pending` does not: a refresh may be queued behind the one that runs.
    [(queued, created)] = await make(pool, {"dedup": {**dedup, "while": "pending"}})
    assert created and queued["id"] != first["id"]
    await finish(pool, run, "succeeded")
    [(after, created)] = await make(pool, {"dedup": {**dedup, "while": "pending"}})
    assert not created and after["id"] == queued["id"], "the queued one holds the key now"
    [r2] = await claim(pool, NOW, 5)
    await finish(pool, r2, "succeeded")
    [(fresh, created)] = await make(pool, {"dedup": dedup})
    assert created and fresh["id"] not in (first["id"], queued["id"]), "window closed: the key is free"


async def test_replace_debounces_payload_and_run_at(pool: asyncpg.Pool) -> None:
    dedup = {"key": "sync-42", "on_duplicate": "replace"}
    [(first, _)] = await make(pool, {"payload": {"v": 1}, "run_at": "2026-11-22T12:05:00Z", "dedup": dedup})
    [(second, created)] = await make(pool, {"payload": {"v": 2}, "run_at": "2026-11-22T12:10:00Z", "dedup": dedup})
    assert not created and second["id"] == first["id"] and second["deduplicated"] is True
    assert second["payload"] == {"v": 2} and second["next_run_at"] == "2026-11-22T12:10:00Z"
    [(third, _)] = await make(pool, {"payload": {"v": 3}, "dedup": dedup})  # no run_at: the time stays
    assert third["payload"] == {"v": 3} and third["next_run_at"] == "2026-11-22T12:10:00Z"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_runs") == 1


async def test_a_batch_with_one_key_twice_makes_one_task(pool: asyncpg.Pool) -> None:
    out = await make(pool, {"payload": {"v": 1}, "dedup": {"key": "k", "on_duplicate": "replace"}},
                     {"payload": {"v": 0}},
                     {"payload": {"v": 2}, "dedup": {"key": "k", "on_duplicate": "replace"}})
    (a, ca), (b, cb), (c, cc) = out
    assert (ca, cb, cc) == (True, True, False)
    assert c["id"] == a["id"] and c["deduplicated"] is True and a["deduplicated"] is False
    assert b["id"] != a["id"]
    stored = await store.get_task(pool, uuid.UUID(a["id"]))
    assert stored is not None and stored["payload"] == {"v": 2}, "replace within the batch too"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 2


async def test_concurrent_creates_with_one_key_make_one_task(db_url: str, pool: asyncpg.Pool) -> None:
    pools = [await db.create_pool(db_url, min_size=1, max_size=1) for _ in range(6)]
    try:
        results = await asyncio.gather(*(make(p, {"dedup": {"key": "once"}}) for p in pools))
    finally:
        for p in pools:
            await p.close()
    ids = {r[0][0]["id"] for r in results}
    assert len(ids) == 1 and sum(1 for r in results if r[0][1]) == 1, "one created, five deduplicated"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 1


async def test_a_paused_task_still_holds_its_key_and_a_cancelled_one_does_not(pool: asyncpg.Pool) -> None:
    [(t, _)] = await make(pool, {"dedup": {"key": "p"}, "run_at": "2026-11-22T13:00:00Z"})
    await store.pause_task(pool, uuid.UUID(t["id"]), NOW)
    [(again, created)] = await make(pool, {"dedup": {"key": "p"}})
    assert not created and again["id"] == t["id"]
    await store.cancel_task(pool, uuid.UUID(t["id"]), NOW + timedelta(seconds=1))
    [(fresh, created)] = await make(pool, {"dedup": {"key": "p"}})
    assert created and fresh["id"] != t["id"]
