"""One failed round of maintenance is logged and counted; the loop goes on."""

from __future__ import annotations

import asyncio

from skiplock.coordinator.maintenance import every
from skiplock.coordinator.metrics import CoordinatorMetrics
from tests.conftest import wait_until


async def test_an_unexpected_error_does_not_end_the_loop() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in one round")

    metrics = CoordinatorMetrics()
    loop = asyncio.create_task(every(0.01, step, "reaper", metrics))
    try:
        await wait_until(lambda: len(calls) >= 3, 5, what="more rounds after the failed one")
    finally:
        loop.cancel()
    assert metrics.db_errors.labels("reaper")._value.get() == 1
