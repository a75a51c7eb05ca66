"""The worker keeps user code in its place: sync handlers on their own threads, told when to
stop; a handler can ask for a later retry; its result is JSON, written once; a dead side task
is a non-zero exit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from skiplock.common.config import WorkerSettings
from skiplock.worker.executors import run_custom
from skiplock.worker.handlers import Context, RetryAfter
from skiplock.worker.worker import Worker, WorkerDied


def _ctx() -> Context:
    return Context(run_id="r", task_id="t", task_name="n", type="x", attempt=1, max_attempts=3,
                   scheduled_for=datetime.now(UTC), timeout_s=1.0, worker_id="w", log=None)


async def test_sync_handlers_run_on_the_workers_threads_not_the_loops() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="skiplock-handler")
    release = threading.Event()

    def hung(payload: dict[str, Any], ctx: Context) -> str:
        release.wait(10)
        return threading.current_thread().name

    running = asyncio.create_task(run_custom(hung, {}, _ctx(), 1024, pool))
    # The loop's default threads (aiohttp resolves DNS on them) stay free while it hangs.
    default = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, threading.current_thread), 5)
    assert not default.name.startswith("skiplock-handler")
    release.set()
    outcome = await running
    assert outcome.state == "succeeded" and outcome.result.startswith("skiplock-handler")
    pool.shutdown()


async def test_a_timed_out_sync_handler_is_told_to_stop() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    stopped = threading.Event()
    ctx = _ctx()

    def polite(payload: dict[str, Any], c: Context) -> None:
        while not c.cancelled.is_set():
            time.sleep(0.01)
        stopped.set()

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run_custom(polite, {}, ctx, 1024, pool), 0.2)
    assert ctx.cancelled.is_set()
    assert await asyncio.to_thread(stopped.wait, 5), "the handler saw ctx.cancelled and returned"
    pool.shutdown()


async def test_a_handler_can_ask_for_a_later_retry() -> None:
    async def busy(payload: dict[str, Any], ctx: Context) -> None:
        raise RetryAfter(30, "the partner said come back later")

    outcome = await run_custom(busy, {}, _ctx(), 1024)
    assert (outcome.state, outcome.retryable, outcome.retry_after_s) == ("failed", True, 30.0)
    assert outcome.error == "the partner said come back later"


async def test_a_handlers_result_is_written_once_and_must_be_json() -> None:
    async def fine(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {"n": 2**70, "s": "é"}

    outcome = await run_custom(fine, {}, _ctx(), 1024)
    assert outcome.state == "succeeded" and outcome.result_json is not None
    assert json.loads(outcome.result_json) == outcome.result == {"n": 2**70, "s": "é"}

    async def nan(payload: dict[str, Any], ctx: Context) -> float:
        return float("nan")  # not JSON: PostgreSQL's jsonb would refuse the whole result batch

    outcome = await run_custom(nan, {}, _ctx(), 1024)
    assert (outcome.state, outcome.retryable) == ("failed", False)
    assert outcome.error is not None and "not JSON" in outcome.error


async def test_a_worker_whose_side_task_dies_stops_with_an_error() -> None:
    worker = Worker(WorkerSettings(coordinators=("127.0.0.1:1",), drain_grace_s=0.1), {})

    async def broken() -> None:
        raise RuntimeError("fence loop bug")

    worker.fence_loop = broken  # type: ignore[method-assign]
    with pytest.raises(WorkerDied, match="fence"):
        await asyncio.wait_for(worker.run(asyncio.Event()), 30)
