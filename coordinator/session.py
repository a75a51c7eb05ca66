"""The worker session: one bidirectional gRPC stream per worker.

Hello → Welcome (with the runs it no longer holds), then heartbeats and results in,
assignments and cancels out. Losing the stream does not fail the worker's runs: their
leases decide, so a worker that reconnects in time (here or to another coordinator) keeps
them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

import asyncpg
import grpc

from skiplock.common import logs, timeutil
from skiplock.common.config import CoordinatorSettings
from skiplock.common.states import RunState
from skiplock.coordinator.auth import bearer_ok
from skiplock.coordinator.dispatcher import Dispatcher
from skiplock.coordinator.followups import ResultRow
from skiplock.coordinator.leases import Beat, LeaseKeeper, heartbeats
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry, WorkerConn
from skiplock.coordinator.results import ResultWriter
from skiplock.proto import skiplock_pb2 as pb
from skiplock.proto import skiplock_pb2_grpc as pb_grpc
from skiplock.sql import db, statements

log = logs.get("skiplock.session")

STATES = {pb.OUTCOME_SUCCEEDED: RunState.SUCCEEDED, pb.OUTCOME_FAILED: RunState.FAILED,
          pb.OUTCOME_CANCELLED: RunState.CANCELLED}


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _parse_refs(refs: Iterable[pb.RunRef]) -> tuple[list[str], list[tuple[uuid.UUID, uuid.UUID]]]:
    """The run ids a worker reported, and the well-formed (run id, lease token) pairs."""
    names, valid = [], []
    for r in refs:
        names.append(r.run_id)
        run_id, token = _uuid(r.run_id), _uuid(r.lease_token)
        if run_id is not None and token is not None:
            valid.append((run_id, token))
    return names, valid


def _ts(unix_s: float, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC) if unix_s > 0 else fallback


class WorkerSessionService(pb_grpc.WorkerSessionServicer):
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, registry: Registry,
                 dispatcher: Dispatcher, results: ResultWriter, leases: LeaseKeeper,
                 metrics: CoordinatorMetrics, clock: Callable[[], datetime] = timeutil.utcnow) -> None:
        self.pool = pool
        self.leases = leases
        self._beats: set[asyncio.Task[None]] = set()
        self.settings = settings
        self.registry = registry
        self.dispatcher = dispatcher
        self.results = results
        self.metrics = metrics
        self.clock = clock
        self.accepting = True
        self.refusal = ""

    async def Session(self, request_iterator: AsyncIterator[pb.WorkerMessage],
                      context: grpc.aio.ServicerContext) -> None:
        if not bearer_ok(context, self.settings.worker_token):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "worker token missing or wrong")
        if not self.accepting:
            await context.abort(grpc.StatusCode.UNAVAILABLE, self.refusal or "coordinator is not serving")
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be hello")
        assert first is not None  # abort raised otherwise
        hello = first.hello
        if not hello.worker_id or hello.slots < 1 or not hello.types:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello needs worker_id, slots >= 1 and types")
        w = WorkerConn(id=hello.worker_id, name=hello.name or hello.worker_id, host=hello.host,
                       types=tuple(hello.types), queues=tuple(hello.queues), slots=hello.slots,
                       blocking_types=tuple(t for t in hello.blocking_types if t in hello.types),
                       blocking_slots=max(0, hello.blocking_slots))
        bound = log.bind(worker_id=w.id, worker_name=w.name)
        try:
            lost = await self._register(w, list(hello.running))
        except db.TRANSIENT_ERRORS as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"database unavailable: {exc}")
        old = self.registry.add(w)
        if old is not None:  # the same worker reconnected before its old stream ended
            old.closed = True
            old.outbound.put_nowait(None)
        self.metrics.workers.set(len(self.registry.workers))
        await context.write(pb.CoordinatorMessage(welcome=pb.Welcome(
            coordinator_id=self.settings.coordinator_id,
            heartbeat_interval_s=self.settings.leases.heartbeat_s,
            lease_s=self.settings.leases.lease_s, lost_run_ids=lost)))
        bound.info("worker_connected", host=w.host, types=list(w.types), slots=w.slots,
                   resumed=len(hello.running) - len(lost), lost=len(lost))
        self.dispatcher.poke()
        reader = asyncio.create_task(self._read(w, request_iterator), name=f"read-{w.id}")
        reader.add_done_callback(lambda _: w.outbound.put_nowait(None))
        try:
            while True:
                msg = await w.outbound.get()
                if msg is None:
                    break
                await context.write(msg)
        finally:
            reader.cancel()
            w.closed = True
            replaced = self.registry.workers.get(w.id) is not w  # it reconnected already
            self.registry.remove(w)
            self.metrics.workers.set(len(self.registry.workers))
            if not replaced:
                try:
                    await statements.worker_disconnected(self.pool, worker_id=w.id,
                                                         coordinator_id=self.settings.coordinator_id,
                                                         now=self.clock())
                except db.TRANSIENT_ERRORS:
                    pass  # the heartbeat age tells the API the worker is gone
            bound.info("worker_disconnected", inflight=len(w.inflight))

    async def _register(self, w: WorkerConn, running: list[pb.RunRef]) -> list[str]:
        """Record the worker and keep the runs it still executes (its first heartbeat, in the
        same transaction); returns those it lost."""
        now = self.clock()
        names, valid = _parse_refs(running)
        async with self.pool.acquire() as conn, conn.transaction():
            await statements.upsert_worker(conn, worker_id=w.id, name=w.name, host=w.host, types=w.types,
                                           queues=w.queues, slots=w.slots,
                                           coordinator_id=self.settings.coordinator_id, now=now)
            held = await heartbeats(conn, [Beat(w.id, valid, False)], now, self.settings)
        for r in running:
            if r.run_id in held.get(w.id, set()):
                w.inflight[r.run_id] = r.lease_token
        return [s for s in names if s not in held.get(w.id, set())]

    async def _read(self, w: WorkerConn, request_iterator: AsyncIterator[pb.WorkerMessage]) -> None:
        try:
            async for msg in request_iterator:
                kind = msg.WhichOneof("kind")
                if kind == "results":
                    self._on_results(w, msg.results)
                elif kind == "heartbeat":
                    # Not awaited here: the batch waits a few ms, results must not.
                    task = asyncio.create_task(self._on_heartbeat(w, msg.heartbeat))
                    self._beats.add(task)
                    task.add_done_callback(self._beats.discard)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            pass  # the stream broke; the caller cleans up
        except Exception:
            log.exception("session_reader_failed", worker_id=w.id)

    def _on_results(self, w: WorkerConn, results: pb.Results) -> None:
        now = self.clock()
        rows = []
        for r in results.results:
            w.inflight.pop(r.run_id, None)
            run_id, token = _uuid(r.run_id), _uuid(r.lease_token)
            state = STATES.get(r.outcome)
            if run_id is None or token is None or state is None:
                log.warning("malformed_result", worker_id=w.id, run_id=r.run_id)
                continue
            rows.append(ResultRow(run_id=run_id, token=token, worker_id=w.id, state=state,
                                  result=r.result_json or None, error=r.error or None,
                                  finished_at=_ts(r.finished_at, now), retryable=r.retryable,
                                  retry_after_s=r.retry_after_s, released=r.released,
                                  throttled=r.throttled))
        self.results.add(rows)
        self.dispatcher.poke()

    async def _on_heartbeat(self, w: WorkerConn, hb: pb.Heartbeat) -> None:
        if hb.draining and not w.draining:
            log.info("worker_draining", worker_id=w.id)
        # An operator's drain holds until undrained, whatever a heartbeat sent before the
        # worker heard of it says.
        w.draining = w.drain_requested or hb.draining
        names, valid = _parse_refs(hb.running)
        try:
            held = await self.leases.beat(w.id, valid, w.draining)
        except asyncio.CancelledError:
            return  # superseded by a newer heartbeat of this worker
        except db.TRANSIENT_ERRORS as exc:
            self.metrics.db_errors.labels("heartbeat").inc()
            log.warning("heartbeat_not_recorded", worker_id=w.id, error=str(exc) or type(exc).__name__)
            return
        # Not held, and still assigned here (no result has come in since the heartbeat left
        # the worker): reaped or moved meanwhile. The worker must stop them.
        lost = [s for s in names if s not in held and s in w.inflight]
        if lost:
            for s in lost:
                w.inflight.pop(s, None)
            w.send(pb.CoordinatorMessage(cancel=pb.Cancel(run_ids=lost, reason="lease lost",
                                                          kind=pb.CANCEL_REASON_LEASE_LOST)))
            log.warning("lease_lost", worker_id=w.id, runs=lost)
        w.send(pb.CoordinatorMessage(heartbeat_ack=pb.HeartbeatAck(seq=hb.seq)))

    def cancel(self, run_id: str, worker_id: str | None, reason: str) -> bool:
        """Stop a run on its worker, if that worker is connected here."""
        w = self.registry.workers.get(worker_id or "")
        if w is None or run_id not in w.inflight:
            return False
        w.send(pb.CoordinatorMessage(cancel=pb.Cancel(run_ids=[run_id], reason=reason,
                                                      kind=pb.CANCEL_REASON_REQUESTED)))
        log.info("cancel_sent", run_id=run_id, worker_id=w.id, reason=reason)
        return True

    def set_drain(self, worker_id: str, drain: bool) -> bool:
        """An operator's drain (or undrain) of a worker connected here; False if it is not."""
        w = self.registry.workers.get(worker_id)
        if w is None:
            return False
        w.drain_requested = w.draining = drain
        msg = (pb.Drain(reason="drained by an operator", stop_taking_work=True) if drain
               else pb.Drain(reason="undrained by an operator", resume_work=True))
        w.send(pb.CoordinatorMessage(drain=msg))
        log.info("worker_drain_set", worker_id=worker_id, draining=drain)
        if not drain:
            self.dispatcher.poke()
        return True

    async def close_all(self, reason: str) -> None:
        """Send every worker on (they reconnect elsewhere, keeping their runs) and refuse new
        sessions until `reopen`."""
        self.accepting = False
        self.refusal = reason
        for w in list(self.registry.workers.values()):
            w.send(pb.CoordinatorMessage(drain=pb.Drain(reason=reason)))
            w.outbound.put_nowait(None)

    def reopen(self) -> None:
        self.accepting = True
        self.refusal = ""
