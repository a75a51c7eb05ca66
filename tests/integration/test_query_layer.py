"""Typed rows match what their statements return, column for column."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import asyncpg

from skiplock.sql import query
from skiplock.sql.statements import ClaimedRun, EndedRun
from tests.integration.helpers import claim, create

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


async def test_typed_rows_are_the_returning_lists(pool: asyncpg.Pool) -> None:
    await create(pool, NOW)
    await create(pool, NOW)
    a, b = await claim(pool, NOW, 2)
    assert list(a.keys()) == _fields(ClaimedRun)
    [finished] = await pool.fetch(query("finish_runs"), [a["id"]], [a["lease_token"]], ["succeeded"], [None],
                                  [None], [NOW], [True], [0.0], [False], ["w1"])
    assert list(finished.keys()) == _fields(EndedRun)
    [reaped] = await pool.fetch(query("reap_expired"), NOW + timedelta(hours=1), 10)
    assert list(reaped.keys()) == _fields(EndedRun) and reaped["id"] == b["id"] and reaped["lost"] is True
