"""The Admin gRPC service, for operators with grpcurl (reflection is on)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeAlias

import asyncpg
import grpc

from skiplock.common import timeutil
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator.auth import bearer_ok
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry
from skiplock.proto import skiplock_pb2 as pb
from skiplock.proto import skiplock_pb2_grpc as pb_grpc
from skiplock.sql import statements

Ctx: TypeAlias = grpc.aio.ServicerContext


class AdminService(pb_grpc.AdminServicer):
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, registry: Registry,
                 metrics: CoordinatorMetrics, set_drain: Callable[[str, bool], bool],
                 clock: Callable[[], datetime] = timeutil.utcnow) -> None:
        self.set_drain = set_drain
        self.pool = pool
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.clock = clock

    async def _guard(self, context: Ctx) -> None:
        # Admin can drain every worker: it needs a token whenever the cluster has one.
        if not bearer_ok(context, self.settings.admin_token or self.settings.worker_token):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "admin calls need authorization: Bearer <SKIPLOCK_ADMIN_TOKEN, "
                                "else SKIPLOCK_WORKER_TOKEN>")

    def _alive_since(self) -> datetime:
        return self.clock() - timedelta(seconds=self.settings.leases.lease_s)

    async def ListWorkers(self, request: pb.ListWorkersRequest, context: Ctx) -> pb.ListWorkersResponse:
        await self._guard(context)
        rows = await statements.list_workers(self.pool, alive_since=self._alive_since())
        return pb.ListWorkersResponse(workers=[pb.WorkerInfo(
            id=r["id"], name=r["name"], host=r["host"], types=r["types"], queues=r["queues"],
            slots=r["slots"], running=r["running"], coordinator=r["coordinator_id"],
            connected_at=timeutil.iso(r["connected_at"]) or "",
            last_heartbeat_at=timeutil.iso(r["last_heartbeat_at"]) or "",
            draining=r["draining"]) for r in rows])

    async def ClusterStatus(self, request: pb.ClusterStatusRequest, context: Ctx) -> pb.ClusterStatusResponse:
        await self._guard(context)
        by_state = await statements.runs_by_state(self.pool)
        backlog = await statements.due_backlog(self.pool, now=self.clock())
        workers = await statements.connected_worker_count(self.pool, alive_since=self._alive_since())
        return pb.ClusterStatusResponse(
            coordinator_id=self.settings.coordinator_id, workers=workers,
            local_workers=len(self.registry.workers), runs_by_state=by_state, due_backlog=backlog,
            stale_results=self.metrics.stale_count)

    async def GetRun(self, request: pb.GetRunRequest, context: Ctx) -> pb.RunInfo:
        await self._guard(context)
        try:
            run_id = uuid.UUID(request.run_id)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "run_id must be a UUID")
        r = await statements.get_run(self.pool, run_id=run_id)
        if r is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no run {request.run_id}")
            raise AssertionError("unreachable: abort raises")
        return pb.RunInfo(
            id=str(r["id"]), task_id=str(r["task_id"]), attempt=r["attempt"], state=r["state"],
            type=r["type"], scheduled_for=timeutil.iso(r["scheduled_for"]) or "",
            started_at=timeutil.iso(r["started_at"]) or "", finished_at=timeutil.iso(r["finished_at"]) or "",
            worker_id=r["worker_id"] or "",
            result_json=json.dumps(r["result"]) if r["result"] is not None else "",
            error=r["error"] or "")

    async def DrainWorker(self, request: pb.DrainWorkerRequest, context: Ctx) -> pb.DrainWorkerResponse:
        await self._guard(context)
        await self._set_drain(request.worker_id, True, context)
        return pb.DrainWorkerResponse(found=True)

    async def UndrainWorker(self, request: pb.DrainWorkerRequest, context: Ctx) -> pb.DrainWorkerResponse:
        await self._guard(context)
        await self._set_drain(request.worker_id, False, context)
        return pb.DrainWorkerResponse(found=True)

    async def _set_drain(self, worker_id: str, drain: bool, context: Ctx) -> None:
        if not self.set_drain(worker_id, drain):
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no worker {worker_id!r} is connected to this coordinator (ListWorkers names them "
                                "and the coordinator each is on)")
