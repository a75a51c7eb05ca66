"""Rate limits: a token bucket taken in the claim's own statement, so no number of claimers
starts more than `burst + per_second * elapsed`; and adaptive pauses from 429/503."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from skiplock.api import store, waiting
from skiplock.coordinator.followups import ResultRow, apply_results
from skiplock.sql import db, statements
from tests.integration.helpers import claim, create, finish

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def bucket(pool: asyncpg.Pool, name: str = "partner", per_second: float = 2, burst: int = 3) -> None:
    await store.put_rate_limit(pool, name, per_second, burst, NOW)


async def test_a_bucket_admits_its_burst_then_its_rate_and_lets_other_work_pass(pool: asyncpg.Pool) -> None:
    await bucket(pool)
    limited = [await create(pool, NOW - timedelta(seconds=10 - i), rate_limit="partner") for i in range(10)]
    free = [await create(pool, NOW) for _ in range(3)]
    rows = await claim(pool, NOW, 20)
    got = {str(r["task_id"]) for r in rows}
    assert got == {t["id"] for t in limited[:3]} | {t["id"] for t in free}, "the burst, in due order, and the rest"
    assert {r["picked"] for r in rows} == {13}, "the claim says it held runs back"
    assert await claim(pool, NOW, 20) == [], "the bucket is empty"
    assert await claim(pool, NOW + timedelta(seconds=0.4), 20) == [], "0.8 of a token is no token"
    assert len(await claim(pool, NOW + timedelta(seconds=0.5), 20)) == 1
    assert len(await claim(pool, NOW + timedelta(seconds=1.5), 20)) == 2
    assert len(await claim(pool, NOW + timedelta(seconds=60), 20)) == 3, "refills up to the burst, not beyond"
    [view] = await store.list_rate_limits(pool, NOW + timedelta(seconds=60))
    assert view["tokens"] == 0 and view["per_second"] == 2 and view["burst"] == 3


async def test_many_claimers_at_once_never_start_more_than_the_bucket_allows(db_url: str,
                                                                              pool: asyncpg.Pool) -> None:
    rate, burst = 20.0, 5
    await bucket(pool, per_second=rate, burst=burst)
    for i in range(150):
        await create(pool, NOW - timedelta(milliseconds=i), rate_limit="partner")
    pools = [await db.create_pool(db_url, min_size=1, max_size=1) for _ in range(6)]
    starts: list[datetime] = []
    try:
        async def claimer(p: asyncpg.Pool, name: str) -> None:
            for step in range(40):  # each claimer walks the clock forward, out of step with the others
                at = NOW + timedelta(milliseconds=25 * step + (hash(name) % 7))
                for r in await claim(p, at, 4, worker=name):
                    starts.append(at)
                    await finish(p, r, "succeeded")

        await asyncio.gather(*(claimer(p, f"w{i}") for i, p in enumerate(pools)))
    finally:
        for p in pools:
            await p.close()
    assert starts, "some runs started"
    last = max(starts)
    allowed = burst + rate * (last - NOW).total_seconds()
    assert len(starts) <= allowed + 1e-9, f"{len(starts)} starts by {last}, the bucket allows {allowed}"
    assert len(starts) >= allowed - rate * 0.1 - 1, "and it is not needlessly stingy"


async def test_a_task_must_name_a_rate_limit_that_exists(pool: asyncpg.Pool) -> None:
    from skiplock.common.validation import validate_create

    spec, _ = validate_create({"type": "noop", "rate_limit": "nope"})
    assert spec is not None
    with pytest.raises(store.Invalid) as err:
        await store.create_tasks(pool, [spec], NOW)
    assert [f for f, _ in err.value.errors] == ["rate_limit"]
    other, _ = validate_create({"type": "noop"})
    assert other is not None
    with pytest.raises(store.Invalid) as err:
        await store.create_tasks(pool, [other, spec], NOW, batch=True)
    assert [f for f, _ in err.value.errors] == ["tasks[1].rate_limit"]
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 0, "all or nothing"


async def test_a_rate_limit_in_use_cannot_be_deleted(pool: asyncpg.Pool) -> None:
    await bucket(pool)
    t = await create(pool, NOW + timedelta(hours=1), rate_limit="partner")
    with pytest.raises(store.Conflict, match=t["id"]):
        await store.delete_rate_limit(pool, "partner")
    await store.cancel_task(pool, uuid.UUID(t["id"]), NOW)
    await store.delete_rate_limit(pool, "partner")
    assert await store.list_rate_limits(pool, NOW) == []
    with pytest.raises(store.NotFound):
        await store.delete_rate_limit(pool, "partner")


async def test_a_429_with_retry_after_pauses_the_whole_rate_limit(pool: asyncpg.Pool) -> None:
    await bucket(pool, burst=10)
    tasks = [await create(pool, NOW, rate_limit="partner", max_attempts=3, retry_backoff_s=0, retry_jitter=False)
             for _ in range(4)]
    [first] = await claim(pool, NOW, 1)
    async with pool.acquire() as conn:
        await apply_results(conn, [ResultRow(
            run_id=first["id"], token=first["lease_token"], worker_id=first["worker_id"], state="failed",
            result='{"status_code": 429}', error="HTTP 429", finished_at=NOW, retryable=True,
            retry_after_s=30.0, throttled=True)], NOW, 3)
    [view] = await store.list_rate_limits(pool, NOW)
    assert view["paused_until"] == "2026-11-22T12:00:30Z"
    assert await claim(pool, NOW + timedelta(seconds=29), 10) == [], "no run of the limit starts while paused"
    # The pending runs say why, and when they start.
    run = await pool.fetchrow("SELECT r.*, 'active' AS task_status FROM skiplock_runs r "
                              "WHERE task_id = $1 AND state = 'pending'", uuid.UUID(tasks[1]["id"]))
    fleet = waiting.Fleet((waiting.Taker(frozenset({"noop"}), frozenset(), 5),),
                          buckets={"partner": waiting.bucket(
                              await pool.fetchrow("SELECT * FROM skiplock_rate_limits"), NOW + timedelta(seconds=29))})
    w = waiting.run_waiting(run, "active", fleet, NOW + timedelta(seconds=29))
    assert w is not None and w["reason"] == "rate_limit" and w["until"] == "2026-11-22T12:00:30Z"
    nxt = await statements.next_due(pool, after=NOW + timedelta(seconds=29), now=NOW + timedelta(seconds=29),
                                    types=["noop"], queues=[])
    assert nxt.token_at == NOW + timedelta(seconds=30), "the coordinator's timer is set for the end of the pause"
    assert len(await claim(pool, NOW + timedelta(seconds=31), 10)) == 4, "three tasks and the retry"


async def test_an_empty_bucket_sets_the_timer_for_its_next_token(pool: asyncpg.Pool) -> None:
    await bucket(pool, per_second=4, burst=1)
    for _ in range(2):
        await create(pool, NOW, rate_limit="partner")
    assert len(await claim(pool, NOW, 5)) == 1
    nxt = await statements.next_due(pool, after=NOW, now=NOW, types=["noop"], queues=[])
    assert nxt.token_at == NOW + timedelta(seconds=0.25) and nxt.due_at is None
    # Workers that do not take the type are not woken for it.
    assert (await statements.next_due(pool, after=NOW, now=NOW, types=["other"], queues=[])).token_at is None


async def test_changing_a_bucket_keeps_its_tokens_within_the_new_burst(pool: asyncpg.Pool) -> None:
    await bucket(pool, per_second=1, burst=10)
    for _ in range(10):
        await create(pool, NOW, rate_limit="partner")
    assert len(await claim(pool, NOW, 4)) == 4
    view = await store.put_rate_limit(pool, "partner", 1, 3, NOW)
    assert view["tokens"] == 3 and view["burst"] == 3
    assert len(await claim(pool, NOW, 10)) == 3
