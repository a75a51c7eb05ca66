"""Transactional enqueue on the application's own connection (asyncpg, psycopg 3 async and
sync) and the SQL function underneath: the task exists if and only if the transaction
commits, bad fields are refused naming them as the API does, and one transaction wakes the
coordinators once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
import pytest

import skiplock
from skiplock.client.enqueue import EnqueueError
from skiplock.common.validation import validate_create
from skiplock.sync import enqueue as enqueue_sync
from tests.integration.helpers import claim


async def tasks(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM skiplock_tasks")


async def test_commit_makes_the_task_and_rollback_leaves_nothing(db_url: str, pool: asyncpg.Pool) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await skiplock.enqueue(conn, "noop", {"order": 1})
                raise RuntimeError("the business transaction fails")
        assert await tasks(pool) == 0, "rolled back: no task, no run"
        async with conn.transaction():
            task_id = await skiplock.enqueue(conn, "noop", {"order": 2}, priority=5, max_attempts=2)
            assert await tasks(pool) == 0, "not visible before commit"
        assert isinstance(task_id, uuid.UUID) and task_id.version == 7
    finally:
        await conn.close()
    row = await pool.fetchrow("SELECT * FROM skiplock_tasks WHERE id = $1", task_id)
    assert row["payload"] == {"order": 2} and row["priority"] == 5 and row["max_attempts"] == 2
    [run] = await claim(pool, datetime.now(UTC) + timedelta(seconds=1), 5)
    assert run["task_id"] == task_id, "its first run is there and due"


async def test_psycopg_async_and_sync(db_url: str, pool: asyncpg.Pool) -> None:
    aconn = await psycopg.AsyncConnection.connect(db_url)
    try:
        async with aconn.transaction():
            a = await skiplock.enqueue(aconn, "noop", {"via": "psycopg-async"})
        with pytest.raises(ZeroDivisionError):
            async with aconn.transaction():
                await skiplock.enqueue(aconn, "noop", {"via": "rolled back"})
                1 / 0  # noqa: B018
    finally:
        await aconn.close()

    def sync_side() -> uuid.UUID:
        with psycopg.connect(db_url) as conn:
            with conn.transaction():
                b = enqueue_sync(conn, "noop", {"via": "psycopg-sync"}, run_at="2030-01-01T00:00:00Z")
            try:
                with conn.transaction():
                    enqueue_sync(conn, "noop", {"via": "rolled back"})
                    raise KeyError("rollback")
            except KeyError:
                pass
            return b

    b = await asyncio.to_thread(sync_side)
    rows = await pool.fetch("SELECT id, payload FROM skiplock_tasks ORDER BY created_at")
    assert [r["id"] for r in rows] == [a, b] and [r["payload"]["via"] for r in rows] == ["psycopg-async",
                                                                                     "psycopg-sync"]


# Inputs both doors refuse, and the field they name.
BAD: list[tuple[dict[str, Any], str]] = [
    ({"type": "Bad Type"}, "type"),
    ({"type": "http", "payload": {"url": "ftp://x"}}, "payload.url"),
    ({"type": "http", "payload": {"url": "https://x.example", "method": "FETCH"}}, "payload.method"),
    ({"type": "shell", "payload": {}}, "payload.command"),
    ({"type": "noop", "queue": "-no"}, "queue"),
    ({"type": "noop", "priority": 40000}, "priority"),
    ({"type": "noop", "max_attempts": 0}, "max_attempts"),
    ({"type": "noop", "timeout_s": 0}, "timeout_s"),
    ({"type": "noop", "retry_backoff_s": -1}, "retry_backoff_s"),
    ({"type": "noop", "delay_s": -5}, "delay_s"),
    ({"type": "noop", "name": ""}, "name"),
    ({"type": "noop", "timezone": "Moon/Base", "cron": "* * * * *"}, "timezone"),
    ({"type": "noop", "rate_limit": "missing"}, "rate_limit"),
]
# (the pool encodes JSON itself)
SQL_ARGS = {"payload": "jsonb", "delay_s": "double precision", "timeout_s": "double precision",
            "retry_backoff_s": "double precision", "priority": "integer", "max_attempts": "integer"}


@pytest.mark.parametrize(("fields", "field"), BAD, ids=[f for _, f in BAD])
async def test_both_doors_refuse_the_same_inputs_naming_the_field(pool: asyncpg.Pool, fields: dict[str, Any],
                                                                   field: str) -> None:
    _, api_errors = validate_create(fields)
    if field == "rate_limit":  # the API checks that one when it writes (a 400 too: see test_rate_limits.py)
        assert not api_errors
    else:
        assert field in [e.field for e in api_errors], "the API refuses it"
    body = dict(fields)
    type_ = body.pop("type")
    with pytest.raises(EnqueueError) as py:
        async with pool.acquire() as conn:
            await skiplock.enqueue(conn, type_, body.pop("payload", None), **body)
    assert field in [e["field"] for e in py.value.errors]
    if "cron" in fields:
        return  # a cron task's first fire time is Python's (croniter); SQL refuses cron without it anyway
    args, values = [], []
    for i, (k, v) in enumerate(fields.items()):
        args.append(f"{k} => ${i + 1}::{SQL_ARGS.get(k, 'text')}")
        values.append(v)
    with pytest.raises(asyncpg.InvalidParameterValueError) as sql:
        await pool.fetchval(f"SELECT skiplock_enqueue({', '.join(args)})", *values)
    assert str(sql.value).startswith(f"{field}: "), sql.value
    assert await tasks(pool) == 0


async def test_a_cron_task_through_python_and_what_sql_alone_refuses(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tid = await skiplock.enqueue(conn, "noop", cron="0 9 * * *", timezone="Europe/Berlin")
    row = await pool.fetchrow("SELECT scheduled_for FROM skiplock_runs WHERE task_id = $1", tid)
    assert row["scheduled_for"].astimezone(UTC).hour in (7, 8), "09:00 in Berlin"
    with pytest.raises(asyncpg.InvalidParameterValueError, match=r"^cron: "):
        await pool.fetchval("SELECT skiplock_enqueue(type => 'noop', cron => '* * * * *')")
    with pytest.raises(EnqueueError, match="dedup"):
        async with pool.acquire() as conn:
            await skiplock.enqueue(conn, "noop", dedup={"key": "k"})


async def test_one_transaction_wakes_coordinators_once(db_url: str, pool: asyncpg.Pool) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener("skiplock_wake", lambda *a: heard.append(a[3]))
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            for i in range(50):
                await skiplock.enqueue(conn, "noop", {"i": i})
            await skiplock.enqueue(conn, "noop", run_at=datetime.now(UTC) + timedelta(hours=1))
        async with conn.transaction():
            await skiplock.enqueue(conn, "noop", run_at=datetime.now(UTC) + timedelta(hours=2))
        await conn.execute("SELECT pg_notify('skiplock_wake', 'marker')")
        async with asyncio.timeout(10):
            while "marker" not in heard:
                await asyncio.sleep(0.01)
    finally:
        await conn.close()
        await listener.close()
    assert heard == ["0", "marker"], "one NOTIFY for the 50 due now; none for runs due later"
    assert await tasks(pool) == 52


async def test_enqueue_many_and_the_handlers_own_enqueue(db_url: str, pool: asyncpg.Pool) -> None:
    from skiplock.worker.handlers import handler

    @handler("email.test-send")
    async def send_email(payload: dict[str, Any], ctx: Any) -> None:
        return None

    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            ids = await skiplock.enqueue_many(conn, [{"type": "noop", "payload": {"i": i}} for i in range(100)])
            one = await send_email.enqueue(conn, {"to": "a@example.com"})  # type: ignore[attr-defined]
        with pytest.raises(EnqueueError) as err:
            await skiplock.enqueue_many(conn, [{"type": "noop"}, {"type": "noop", "priority": "high"}])
        assert err.value.errors[0]["field"] == "tasks[1].priority"
    finally:
        await conn.close()
    assert len(set(ids)) == 100 and await tasks(pool) == 101
    assert await pool.fetchval("SELECT type FROM skiplock_tasks WHERE id = $1", one) == "email.test-send"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_runs") == 101
    # An idempotency key answers with the task that already holds it.
    async with pool.acquire() as c:
        first = await skiplock.enqueue(c, "noop", idempotency_key="order-7")
        again = await skiplock.enqueue(c, "noop", idempotency_key="order-7")
    assert first == again
