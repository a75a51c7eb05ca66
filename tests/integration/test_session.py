"""The coordinator's side of a worker session, on real PostgreSQL: what a heartbeat answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import pytest

from skiplock.common import timeutil
from skiplock.coordinator.dispatcher import Dispatcher
from skiplock.coordinator.followups import ResultRow, apply_results
from skiplock.coordinator.leases import LeaseKeeper
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry, WorkerConn
from skiplock.coordinator.results import ResultWriter
from skiplock.coordinator.session import WorkerSessionService
from skiplock.proto import skiplock_pb2 as pb
from tests.integration.helpers import claim, create, settings


@pytest.fixture
async def service(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[WorkerSessionService]:
    s, m, registry = settings(db_url), CoordinatorMetrics(), Registry()
    dispatcher = Dispatcher(pool, s, registry, m)
    leases = LeaseKeeper(pool, s, m)
    beating = asyncio.create_task(leases.run())
    yield WorkerSessionService(pool, s, registry, dispatcher, ResultWriter(pool, s, m, on_written=lambda: None),
                               leases, m)
    beating.cancel()


def _drain(w: WorkerConn) -> list[pb.CoordinatorMessage]:
    out = []
    while not w.outbound.empty():
        msg = w.outbound.get_nowait()
        if msg is not None:
            out.append(msg)
    return out


async def _assigned(pool: asyncpg.Pool, service: WorkerSessionService,
                    now: datetime) -> tuple[WorkerConn, asyncpg.Record]:
    """A run claimed for worker w1, connected to this coordinator and holding it."""
    await create(pool, now - timedelta(seconds=1))
    [row] = await claim(pool, now, 1, worker="w1", coordinator="c-test")
    w = WorkerConn(id="w1", name="w1", host="h", types=("noop",), queues=(), slots=1)
    w.inflight[str(row["id"])] = str(row["lease_token"])
    service.registry.add(w)
    return w, row


async def test_a_heartbeat_overtaken_by_its_runs_result_is_not_a_lost_lease(
        pool: asyncpg.Pool, service: WorkerSessionService) -> None:
    now = timeutil.utcnow()
    w, row = await _assigned(pool, service, now)
    # The worker sent a heartbeat naming the run, then its result. The result is written
    # first (results flush in ms, heartbeats are batched), so the heartbeat finds it ended.
    result = pb.Result(run_id=str(row["id"]), lease_token=str(row["lease_token"]), outcome=pb.OUTCOME_SUCCEEDED)
    service._on_results(w, pb.Results(results=[result]))
    async with pool.acquire() as conn:
        await apply_results(conn, [ResultRow(row["id"], row["lease_token"], "w1", "succeeded", None, None, now)],
                            now, 3)
    ref = pb.RunRef(run_id=str(row["id"]), lease_token=str(row["lease_token"]))
    await service._on_heartbeat(w, pb.Heartbeat(running=[ref], seq=7))
    kinds = [m.WhichOneof("kind") for m in _drain(w)]
    assert kinds == ["heartbeat_ack"], "no cancel for a run that ended normally"


async def test_a_heartbeat_for_a_reaped_run_cancels_it_as_lease_lost(
        pool: asyncpg.Pool, service: WorkerSessionService) -> None:
    now = timeutil.utcnow()
    w, row = await _assigned(pool, service, now)
    await pool.execute("UPDATE skiplock_runs SET state = 'failed', lease_token = NULL WHERE id = $1", row["id"])
    ref = pb.RunRef(run_id=str(row["id"]), lease_token=str(row["lease_token"]))
    await service._on_heartbeat(w, pb.Heartbeat(running=[ref], seq=8))
    msgs = _drain(w)
    assert [m.WhichOneof("kind") for m in msgs] == ["cancel", "heartbeat_ack"]
    assert msgs[0].cancel.kind == pb.CANCEL_REASON_LEASE_LOST and list(msgs[0].cancel.run_ids) == [str(row["id"])]
    assert msgs[1].heartbeat_ack.seq == 8
