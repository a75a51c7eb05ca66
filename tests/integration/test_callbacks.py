"""Callbacks: the events a task's runs raise become http delivery tasks, in the same
transaction as the result that caused them, once per (run, event, callback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from skiplock.coordinator import cron
from tests.integration.helpers import claim, create, finish

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HOOK = "https://hooks.example.com/skiplock"


async def deliveries(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT payload FROM skiplock_tasks WHERE name LIKE 'callback %' ORDER BY created_at, id")
    return [r["payload"] for r in rows]


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [d["json"]["type"].rpartition(".")[2] for d in found]


async def test_retrying_then_recovered_then_succeeded(pool: asyncpg.Pool) -> None:
    t = await create(pool, NOW, max_attempts=3, retry_backoff_s=0, retry_jitter=False,
                     callbacks=[{"url": HOOK, "events": ["retrying", "recovered", "succeeded", "failed"],
                                 "headers": {"X-Token": "t"}}])
    [first] = await claim(pool, NOW, 5)
    await finish(pool, first, "failed")
    [second] = await claim(pool, NOW, 5)
    await finish(pool, second, "succeeded")
    found = await deliveries(pool)
    assert kinds(found) == ["retrying", "succeeded", "recovered"]
    d = found[0]
    assert d["url"] == HOOK and d["method"] == "POST" and d["headers"] == {"X-Token": "t"}
    assert d["json"]["task"]["id"] == t["id"] and d["json"]["run"]["id"] == str(first["id"])
    assert d["json"]["run"]["error"] == "boom" and found[1]["json"]["run"]["result"] == {"ok": True}
    # Each delivery is an ordinary pending http run.
    runs = await pool.fetch("SELECT r.type FROM skiplock_runs r JOIN skiplock_tasks t ON t.id = r.task_id "
                            "WHERE t.name LIKE 'callback %'")
    assert [r["type"] for r in runs] == ["http"] * 3


async def test_failed_for_good_and_only_the_events_asked_for(pool: asyncpg.Pool) -> None:
    await create(pool, NOW, max_attempts=1, callbacks=[{"url": HOOK, "events": ["failed"]}])
    await create(pool, NOW, max_attempts=1, callbacks=[{"url": HOOK, "events": ["succeeded"]}])
    rows = await claim(pool, NOW, 5)
    for r in rows:
        await finish(pool, r, "failed", retryable=False)
    assert kinds(await deliveries(pool)) == ["failed"]


async def test_a_skipped_cron_slot_is_told(pool: asyncpg.Pool) -> None:
    t = await create(pool, NOW - timedelta(minutes=10), cron="* * * * *", catch_up="none",
                     callbacks=[{"url": HOOK, "events": ["skipped"]}])
    async with pool.acquire() as conn, conn.transaction():
        rows = await claim(conn, NOW, 5)  # type: ignore[arg-type]
        held = await cron.apply_policies(conn, rows, NOW)  # type: ignore[arg-type]
    assert held
    [d] = await deliveries(pool)
    assert d["json"]["type"] == "skiplock.task.skipped" and "catch_up=none" in d["json"]["run"]["error"]
    assert d["json"]["task"]["id"] == t["id"]


async def test_bad_callbacks_are_refused_naming_the_field() -> None:
    from skiplock.common.validation import validate_create

    for cbs, field in (([{"events": ["succeeded"]}], "callbacks[0].url"),
                       ([{"url": "ftp://x"}], "callbacks[0].url"),
                       ([{"url": HOOK, "events": ["exploded"]}], "callbacks[0].events"),
                       ([{"url": HOOK, "headers": {"bad name": "x"}}], "callbacks[0].headers.bad name"),
                       ("nope", "callbacks"), ([{"url": HOOK}] * 11, "callbacks")):
        _, errors = validate_create({"type": "noop", "callbacks": cbs})
        assert field in [e.field for e in errors], (cbs, errors)
    spec, errors = validate_create({"type": "noop", "callbacks": [{"url": HOOK}]})
    assert spec is not None and spec.callbacks == [{"url": HOOK, "events": ["succeeded", "failed", "retrying",
                                                                             "skipped", "recovered"], "headers": {}}]

