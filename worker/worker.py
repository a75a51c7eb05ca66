"""The worker: one session stream to a coordinator (failing over along the list), a task per
run, heartbeats that keep the runs' leases, and a drain on SIGTERM.

Runs keep executing while the stream is down; results wait in the outbox and go out after the
worker reconnects (to the same coordinator or the next one), where the lease token decides
whether they still count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import json
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from skiplock.common import jsontext, logs, secrets
from skiplock.common.config import LeaseSettings, WorkerSettings
from skiplock.common.errors import ConfigError, SkiplockError
from skiplock.common.lifecycle import cancel_and_wait, supervise
from skiplock.common.states import RunState
from skiplock.common.version import __version__
from skiplock.proto import skiplock_pb2 as pb
from skiplock.proto import skiplock_pb2_grpc as pb_grpc
from skiplock.worker import executors, netguard, signing
from skiplock.worker.handlers import Context, HandlerFn, is_async
from skiplock.worker.metrics import WorkerMetrics
from skiplock.worker.outcome import Outcome

log = logs.get("skiplock.worker")

OUTCOMES = {RunState.SUCCEEDED: pb.OUTCOME_SUCCEEDED, RunState.FAILED: pb.OUTCOME_FAILED,
            RunState.CANCELLED: pb.OUTCOME_CANCELLED}
MAX_HOLD_S = 1.0  # bounds the wait for a run's due time, whatever the clocks say
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 5_000),  # notice a dead or half-open coordinator in seconds
    ("grpc.keepalive_timeout_ms", 5_000),
    # Recent gRPC times keepalive pings out with the general ping timeout (60 s by default),
    # not keepalive_timeout: without this a frozen coordinator went unnoticed for a minute.
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.enable_retries", 0),
]


class WorkerDied(SkiplockError):
    """A part of the worker failed; it drained and stopped."""


class Stop(enum.Enum):
    """Why a run is being stopped; decides what, if anything, the worker reports."""

    REQUESTED = "requested"    # the task was cancelled: report `cancelled`
    LEASE_LOST = "lease lost"  # held elsewhere now (reaped, self-fenced): report nothing
    SHUTDOWN = "shutdown"      # this worker is going away: hand the run back


STOPS = {pb.CANCEL_REASON_REQUESTED: Stop.REQUESTED, pb.CANCEL_REASON_LEASE_LOST: Stop.LEASE_LOST}


@dataclass
class Running:
    assignment: pb.Assignment
    task: asyncio.Task[None]
    # Monotonic time from which this run's lease counts as extended for lease_s: when it was
    # received, then when the last acknowledged heartbeat that reported it was sent.
    lease_from: float
    ctx: Context | None = None
    stop: Stop | None = None
    stop_detail: str = ""


class Worker:
    def __init__(self, settings: WorkerSettings, handlers: dict[str, HandlerFn],
                 metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.signing_key = signing.key(settings.webhook_secret) if settings.webhook_secret else None
        self.metrics = metrics or WorkerMetrics()
        self.handlers = handlers
        self.id = uuid.uuid4().hex  # fresh per process start
        self.name = settings.name or f"{socket.gethostname()}-{os.getpid()}"
        self.types = self._types()
        self.running: dict[str, Running] = {}
        self.outbox: list[pb.Result] = []
        self._outbox_ready = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self.heartbeat_s = LeaseSettings().heartbeat_s  # until a Welcome says
        self.draining = False
        self.shutting_down = False
        self._hurry = asyncio.Event()
        self.stopped = asyncio.Event()
        self.connected = asyncio.Event()
        self.coordinator: str | None = None
        self._session_stop: asyncio.Event | None = None
        self.lease_s = LeaseSettings().lease_s  # until a coordinator's Welcome says
        # Results sent on the current stream, kept for one lease: if the stream breaks they
        # are sent again after reconnecting (the coordinator ignores ones already written).
        self._sent: deque[tuple[float, pb.Result]] = deque()
        # Heartbeats awaiting their ack: seq → (sent at, run ids reported).
        self._beats: dict[int, tuple[float, list[str]]] = {}
        self._seq = 0
        self._hello: tuple[float, list[str]] = (0.0, [])
        self.http: aiohttp.ClientSession | None = None
        # Plain handlers run here, one thread per blocking slot, apart from the loop's
        # default pool. The coordinator sends at most blocking_slots runs of blocking types
        # at once; the semaphore holds any beyond that (a run sent twice across a reconnect).
        self.blocking_types = self._blocking_types()
        self.blocking_slots = min(settings.blocking_slots, settings.slots)
        self._blocking = asyncio.Semaphore(self.blocking_slots)
        self.handler_threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.blocking_slots, thread_name_prefix="skiplock-handler")
        self.log = log.bind(worker_id=self.id, worker_name=self.name)

    def _types(self) -> list[str]:
        types = list(self.settings.types) if self.settings.types else ["http", *sorted(self.handlers)]
        if self.settings.allow_shell and "shell" not in types:
            types.append("shell")
        if not self.settings.allow_shell and "shell" in types:
            raise ConfigError("the shell type needs --allow-shell")
        unknown = [t for t in types if t not in ("http", "shell") and t not in self.handlers]
        if unknown:
            raise ConfigError(f"no handler imported for type(s) {', '.join(unknown)}; use --import")
        return types

    def _blocking_types(self) -> list[str]:
        """Types that take a process (shell) or a thread (a plain handler) per run."""
        return [t for t in self.types if t == "shell" or (t in self.handlers and not is_async(self.handlers[t]))]

    # ---- runs ----

    def _start(self, a: pb.Assignment) -> None:
        if a.run_id in self.running:
            return
        task = asyncio.create_task(self._execute(a), name=f"run-{a.run_id}")
        self.running[a.run_id] = Running(a, task, lease_from=time.monotonic())

    async def _execute(self, a: pb.Assignment) -> None:
        started = time.time()
        rlog = self.log.bind(run_id=a.run_id, task_id=a.task_id, attempt=a.attempt, type=a.type)
        try:
            hold = min(a.not_before - time.time(), MAX_HOLD_S)
            if hold > 0:  # claimed a little early: start on time, not before
                await asyncio.sleep(hold)
            payload = secrets.resolve(json.loads(a.payload_json) if a.payload_json else {}, os.environ)
            if a.type in self.blocking_types:
                async with self._blocking:
                    started = time.time()
                    async with asyncio.timeout(a.timeout_s):
                        outcome = await self._dispatch(a, payload, rlog)
            else:
                started = time.time()
                async with asyncio.timeout(a.timeout_s):
                    outcome = await self._dispatch(a, payload, rlog)
        except secrets.MissingSecret as exc:
            outcome = Outcome("failed", None, str(exc), retryable=False)
        except TimeoutError:
            outcome = Outcome("failed", None, f"timed out after {a.timeout_s:g}s (timeout_s)", retryable=True)
        except asyncio.CancelledError:
            held = self.running.get(a.run_id)
            stop, detail = (held.stop, held.stop_detail) if held is not None else (None, "")
            if stop is Stop.SHUTDOWN:
                outcome = Outcome("failed", None, "released: the worker shut down before the run finished",
                                  retryable=True, released=True)
            elif stop is Stop.LEASE_LOST:
                self.running.pop(a.run_id, None)
                rlog.warning("run_abandoned", why=detail or "lease lost")
                self.metrics.abandoned.labels("self_fenced" if detail.startswith("self-fenced") else "lease_lost").inc()
                return  # nobody would accept a result
            else:
                outcome = Outcome("cancelled", None, detail or "cancelled")
        except Exception as exc:  # an executor bug must not kill the worker
            rlog.exception("run_crashed")
            outcome = Outcome("failed", None, f"worker error: {type(exc).__name__}: {exc}", retryable=True)
        self.running.pop(a.run_id, None)
        # Every run is in the database; the log line matters when something went wrong.
        emit = rlog.debug if outcome.state == "succeeded" else rlog.info
        emit("run_finished", state=outcome.state, error=(outcome.error or "")[:200] or None,
             duration_ms=round((time.time() - started) * 1000))
        self.outbox.append(pb.Result(
            run_id=a.run_id, lease_token=a.lease_token, outcome=OUTCOMES[RunState(outcome.state)],
            result_json=outcome.result_json or (jsontext.dumps(outcome.result) if outcome.result is not None else ""),
            error=outcome.error or "", retryable=outcome.retryable, released=outcome.released,
            throttled=outcome.throttled,
            retry_after_s=outcome.retry_after_s, started_at=started, finished_at=time.time()))
        self._outbox_ready.set()

    async def _dispatch(self, a: pb.Assignment, payload: dict[str, Any], rlog: Any) -> Outcome:
        cap = self.settings.output_cap_bytes
        if a.type == "http":
            assert self.http is not None
            # Delivery is at least once: the key is the same for every attempt at one fire
            # time, so a receiver can drop a repeat.
            slot = datetime.fromtimestamp(a.scheduled_for, UTC).isoformat().replace("+00:00", "Z")
            identity = {"Idempotency-Key": f"{a.task_id}/{slot}", "X-Skiplock-Task-Id": a.task_id,
                        "X-Skiplock-Run-Id": a.run_id, "X-Skiplock-Attempt": str(a.attempt)}
            return await executors.run_http(self.http, payload, a.timeout_s, cap, identity, self.signing_key)
        if a.type == "shell":
            if not self.settings.allow_shell:
                return Outcome("failed", None, "this worker does not run shell tasks", retryable=True)
            return await executors.run_shell(payload, a.timeout_s, cap)
        fn = self.handlers.get(a.type)
        if fn is None:
            return Outcome("failed", None, f"no handler for type {a.type!r} on this worker", retryable=True)
        ctx = Context(run_id=a.run_id, task_id=a.task_id, task_name=a.task_name, type=a.type,
                      attempt=a.attempt, max_attempts=a.max_attempts,
                      scheduled_for=datetime.fromtimestamp(a.scheduled_for, UTC),
                      timeout_s=a.timeout_s, worker_id=self.id, log=rlog)
        held = self.running.get(a.run_id)
        if held is not None:
            held.ctx = ctx
        try:
            return await executors.run_custom(fn, payload, ctx, cap, self.handler_threads)
        finally:
            ctx.cancelled.set()  # timed out or done: a threaded handler still going should stop

    def _cancel(self, run_ids: list[str], stop: Stop, detail: str = "") -> None:
        for run_id in run_ids:
            r = self.running.get(run_id)
            if r is not None and not r.task.done():
                r.stop, r.stop_detail = stop, detail or stop.value
                if r.ctx is not None:
                    r.ctx.cancelled.set()
                r.task.cancel()
                self.log.info("run_cancel_requested", run_id=run_id, reason=r.stop_detail)

    def _acked(self, sent_at: float, run_ids: list[str]) -> None:
        """The coordinator wrote a heartbeat (or hello) sent at `sent_at`: the leases of the
        runs it reported now last lease_s from then."""
        for run_id in run_ids:
            r = self.running.get(run_id)
            if r is not None and sent_at > r.lease_from:
                r.lease_from = sent_at

    # ---- the stream ----

    def _refs(self) -> list[pb.RunRef]:
        return [pb.RunRef(run_id=k, lease_token=r.assignment.lease_token) for k, r in self.running.items()]

    async def _requests(self, stop: asyncio.Event, dead: asyncio.Event) -> AsyncIterator[pb.WorkerMessage]:
        """The worker's side of one stream. `stop`: flush the outbox, then half-close.
        `dead`: the stream is gone; end at once, so this generator (which the broken call
        may still pull from) cannot take results meant for the next stream."""
        refs = self._refs()
        self._hello = (time.monotonic(), [r.run_id for r in refs])
        self._beats.clear()
        yield pb.WorkerMessage(hello=pb.Hello(
            worker_id=self.id, name=self.name, host=socket.gethostname(), types=self.types,
            queues=list(self.settings.queues), slots=self.settings.slots, running=refs,
            version=__version__, blocking_types=self.blocking_types, blocking_slots=self.blocking_slots))
        last_beat = time.monotonic()
        while not dead.is_set():
            next_beat = last_beat + self.heartbeat_s  # the interval Welcome set counts at once
            if self.outbox:
                batch, self.outbox = self.outbox[:1000], self.outbox[1000:]
                sent_at = time.monotonic()
                self._sent.extend((sent_at, r) for r in batch)
                while self._sent and self._sent[0][0] < sent_at - self.lease_s:
                    self._sent.popleft()
                yield pb.WorkerMessage(results=pb.Results(results=batch))
                continue
            if stop.is_set():
                return  # outbox flushed: half-close
            self._outbox_ready.clear()
            if self._heartbeat_now.is_set() or time.monotonic() >= next_beat:
                self._heartbeat_now.clear()
                last_beat = time.monotonic()
                refs = self._refs()
                self._seq += 1
                self._beats[self._seq] = (last_beat, [r.run_id for r in refs])
                yield pb.WorkerMessage(heartbeat=pb.Heartbeat(running=refs, draining=self.draining, seq=self._seq))
                continue
            waiters = [asyncio.ensure_future(e.wait())
                       for e in (self._outbox_ready, self._heartbeat_now, stop, dead)]
            try:
                await asyncio.wait(waiters, timeout=max(0.0, next_beat - time.monotonic()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _session(self, target: str) -> None:
        metadata = (("authorization", f"Bearer {self.settings.worker_token}"),) if self.settings.worker_token else None
        if self.settings.tls_ca:
            s = self.settings
            ca = await asyncio.to_thread(Path(self.settings.tls_ca).read_bytes)
            key = await asyncio.to_thread(Path(s.tls_key).read_bytes) if s.tls_key else None
            cert = await asyncio.to_thread(Path(s.tls_cert).read_bytes) if s.tls_cert else None
            creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
            channel = grpc.aio.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        stop, dead = asyncio.Event(), asyncio.Event()
        self._session_stop = stop
        try:
            call = pb_grpc.WorkerSessionStub(channel).Session(self._requests(stop, dead), metadata=metadata)
            async for msg in call:
                kind = msg.WhichOneof("kind")
                if kind == "assignments":
                    if self.draining:
                        # Too late to take them: hand them straight back for a retry elsewhere.
                        for a in msg.assignments.assignments:
                            self.outbox.append(pb.Result(run_id=a.run_id, lease_token=a.lease_token,
                                                         outcome=pb.OUTCOME_FAILED, retryable=True, released=True,
                                                         error="released: the worker was draining",
                                                         finished_at=time.time()))
                        self._outbox_ready.set()
                        continue
                    for a in msg.assignments.assignments:
                        self._start(a)
                elif kind == "cancel":
                    self._cancel(list(msg.cancel.run_ids), STOPS.get(msg.cancel.kind, Stop.REQUESTED),
                                 msg.cancel.reason)
                elif kind == "heartbeat_ack":
                    beat = self._beats.get(msg.heartbeat_ack.seq)
                    for seq in [q for q in self._beats if q <= msg.heartbeat_ack.seq]:
                        del self._beats[seq]
                    if beat is not None:
                        self._acked(*beat)
                elif kind == "welcome":
                    self.heartbeat_s = msg.welcome.heartbeat_interval_s or self.heartbeat_s
                    self._heartbeat_now.set()  # wake the sender so the new interval applies
                    self.lease_s = msg.welcome.lease_s or self.lease_s
                    self.coordinator = target
                    self.connected.set()
                    lost = set(msg.welcome.lost_run_ids)
                    self._cancel(list(lost), Stop.LEASE_LOST, "lease lost while reconnecting")
                    self._acked(self._hello[0], [r for r in self._hello[1] if r not in lost])
                    self.metrics.sessions.inc()
                    self.log.info("connected", coordinator=target, coordinator_id=msg.welcome.coordinator_id,
                                  running=len(self.running), lost=len(msg.welcome.lost_run_ids))
                elif kind == "drain" and msg.drain.resume_work:
                    if not self.shutting_down:
                        self.log.info("undrained", reason=msg.drain.reason)
                        self.draining = False
                        self._heartbeat_now.set()
                elif kind == "drain" and msg.drain.stop_taking_work:
                    self.log.info("draining", reason=msg.drain.reason, running=len(self.running))
                    self.draining = True
                    self._heartbeat_now.set()
                elif kind == "drain":
                    self.metrics.coordinator_drains.inc()
                    self.log.info("coordinator_draining", coordinator=target, reason=msg.drain.reason)
                    break
        finally:
            dead.set()
            stop.set()
            self.connected.clear()
            # Whatever went out on this stream lately may not have been written: send again.
            resend = [r for _, r in self._sent]
            self._sent.clear()
            if resend and not self.stopped.is_set():
                self.outbox[:0] = resend
            await channel.close(grace=None)

    async def connect_loop(self) -> None:
        """Stay connected: try each coordinator in turn, backing off with jitter."""
        targets = list(self.settings.coordinators)
        i, backoff = 0, 0.1
        while not self.stopped.is_set():
            target = targets[i % len(targets)]
            began = time.monotonic()
            try:
                await self._session(target)
            except grpc.aio.AioRpcError as exc:
                self.metrics.session_errors.labels(exc.code().name).inc()
                self.log.warning("session_ended", coordinator=target, code=exc.code().name,
                                 detail=exc.details())
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    backoff = 5.0
            if self.stopped.is_set():
                break
            if time.monotonic() - began > 10:
                backoff = 0.1  # it was a healthy session: reconnect quickly
            i += 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)

    @property
    def fence_margin_s(self) -> float:
        """How long before its lease could run out a run is stopped without news from a
        coordinator: room for the claim-to-receipt delay and the reaper's own clock."""
        return min(2.0, max(0.5, self.lease_s / 5))

    def overdue(self, now: float) -> list[str]:
        """Runs whose lease may be about to run out: no acknowledged heartbeat for
        lease_s - margin (cut off, or the coordinator cannot write to its database)."""
        limit = self.lease_s - self.fence_margin_s
        return [k for k, r in self.running.items() if r.stop is None and now - r.lease_from > limit]

    async def fence_loop(self) -> None:
        """Stop runs before their lease can run out, so that a copy started elsewhere after
        the reaper saw the lease expire never overlaps this one."""
        while True:
            await asyncio.sleep(0.1)
            late = self.overdue(time.monotonic())
            if late:
                self.log.warning("self_fenced", runs=len(late),
                                 why=f"no heartbeat acknowledged within {self.lease_s - self.fence_margin_s:g}s "
                                     f"of the {self.lease_s:g}s lease")
                self._cancel(late, Stop.LEASE_LOST, "self-fenced: lease about to run out without a coordinator")

    def hurry(self) -> None:
        """End the drain's grace now: the runs still going are handed back."""
        self._hurry.set()

    async def drain(self, grace_s: float) -> None:
        """Stop taking runs, let running ones finish for `grace_s`, fail the rest back for a
        retry elsewhere, and make sure the results went out."""
        self.draining = self.shutting_down = True
        self._heartbeat_now.set()
        self.log.info("draining", running=len(self.running), grace_s=grace_s)
        pending = [r.task for r in self.running.values()]
        if pending:
            hurried: asyncio.Future[Any] = asyncio.ensure_future(self._hurry.wait())
            finished: asyncio.Future[Any] = asyncio.gather(*pending, return_exceptions=True)
            await asyncio.wait([finished, hurried], timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
            hurried.cancel()
        leftover = [k for k, r in self.running.items() if not r.task.done()]
        self._cancel(leftover, Stop.SHUTDOWN)
        tasks = [r.task for r in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(resolver=netguard.GuardedResolver(self.settings.allow_net), limit=0)
        self.http = aiohttp.ClientSession(connector=connector,
                                          trace_configs=[netguard.trace_config(self.settings.allow_net)])
        self.log.info("worker_starting", coordinators=list(self.settings.coordinators), types=self.types,
                      slots=self.settings.slots)
        conn = asyncio.create_task(self.connect_loop(), name="connect")
        fence = asyncio.create_task(self.fence_loop(), name="fence")
        died = await supervise([conn, fence], stop)
        fence.cancel()
        await self.drain(self.settings.drain_grace_s)
        # End the stream in order: the request side flushes the outbox, then half-closes;
        # the coordinator reads everything before it closes its side.
        self.stopped.set()
        if self._session_stop is not None:
            self._session_stop.set()
        if self.connected.is_set():
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(conn)
            except (TimeoutError, Exception):
                pass
        await cancel_and_wait([conn, fence])
        await self.http.close()
        self.handler_threads.shutdown(wait=False, cancel_futures=True)
        self.log.info("worker_stopped", unsent_results=len(self.outbox))
        if died:  # a supervisor that restarts on failure must see one
            raise WorkerDied(f"worker side task {died[0].get_name()} died: {died[0].exception()!r}")
