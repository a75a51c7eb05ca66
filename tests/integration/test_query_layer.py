"""Typed rows match what their statements return, column for column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.sql import query, statements
from skiplock.sql.statements import ClaimedRun, EndedRun, fields
from tests.integration.helpers import claim, create

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def test_typed_rows_are_the_returning_lists(pool: asyncpg.Pool) -> None:
    await create(pool, NOW)
    await create(pool, NOW)
    a, b = await claim(pool, NOW, 2)
    assert list(a.keys()) == fields(ClaimedRun)
    [finished] = await pool.fetch(query("finish_runs"), [a["id"]], [a["lease_token"]], ["succeeded"], [None],
                                  [None], [NOW], [True], [0.0], [False], ["w1"])
    assert list(finished.keys()) == fields(EndedRun)
    [reaped] = await pool.fetch(query("reap_expired"), NOW + timedelta(hours=1), 10)
    assert list(reaped.keys()) == fields(EndedRun) and reaped["id"] == b["id"] and reaped["lost"] is True


async def test_typed_rows_read_their_columns_by_name(pool: asyncpg.Pool) -> None:
    """A field reads the column of its own name, as row["name"] does."""
    await create(pool, NOW)
    [a] = await statements.claim(pool, now=NOW, horizon=NOW, types=["noop"], queues=[], slots=["w1"],
                                 coordinator_id="c", lease_s=10.0, timeout_grace_s=5.0)
    assert isinstance(a, ClaimedRun)
    assert all(getattr(a, f) == a[f] for f in fields(ClaimedRun))
    [ended] = await statements.finish_runs(pool, run_ids=[a.id], tokens=[a.lease_token], states=["succeeded"],
                                           results=[None], errors=[None], finished_at=[NOW], retryable=[True],
                                           retry_after_s=[0.0], released=[False], worker_ids=["w1"])
    assert isinstance(ended, EndedRun) and ended.id == a.id and ended.state == "succeeded"
    assert all(getattr(ended, f) == ended[f] for f in fields(EndedRun))
