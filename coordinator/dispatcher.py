"""Dispatch: claim due runs for exactly the free slots of this coordinator's workers and
stream them out.

Wake-ups, cheapest first: a result freeing a slot, a NOTIFY for new due work, a timer set to
the earliest pending due time, and — only as a safety net — a slow poll.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from skiplock.common import logs, timeutil
from skiplock.common.backoff import Backoff
from skiplock.common.config import CoordinatorSettings
from skiplock.coordinator import cron
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry, WorkerConn
from skiplock.proto import skiplock_pb2 as pb
from skiplock.sql import db, statements
from skiplock.sql.statements import ClaimedRun

log = logs.get("skiplock.dispatch")

MAX_CLAIM = 1000


def interleave(workers: list[WorkerConn], blocking: bool = False) -> list[str]:
    """One entry per free slot, round-robin across workers, so a claim smaller than the
    free capacity spreads over the workers instead of filling the first. `blocking`: the
    free slots for runs of blocking types (shell, plain handlers), which are fewer."""
    free = {w.id: w.blocking_free if blocking else w.free for w in workers}
    order = sorted(workers, key=lambda w: len(w.inflight))
    out: list[str] = []
    while any(free.values()):
        for w in order:
            if free[w.id]:
                out.append(w.id)
                free[w.id] -= 1
    return out


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, settings: CoordinatorSettings, registry: Registry,
                 metrics: CoordinatorMetrics, clock: Callable[[], datetime] = timeutil.utcnow) -> None:
        self.pool = pool
        self.settings = settings
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None  # unix seconds
        self.stopping = False
        self.paused = False  # the coordinator lost its database: claim nothing
        # Queues an operator paused, read again when a NOTIFY says they changed, after the
        # listener reconnects, and at every safety poll.
        self.paused_queues: tuple[str, ...] = ()
        self._queues_stale = True

    # ---- wake-ups ----

    def poke(self) -> None:
        self._wake.set()

    def queues_changed(self) -> None:
        self._queues_stale = True
        self.poke()

    def due_at(self, unix_s: float, ahead: bool = True) -> None:
        """Some run becomes due at `unix_s`: wake now, or arm the timer for just before then
        (the claim takes runs due within `claim_ahead_s`; `ahead=False`: at `unix_s` itself,
        for a bucket's next token, which the claim counts at the instant it runs)."""
        delay = unix_s - (self.settings.claim_ahead_s if ahead else 0.0) - time.time()
        if delay <= 0:
            self.poke()
            return
        if self._timer_at is not None and self._timer_at <= unix_s:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = unix_s
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, None
        self.poke()

    # ---- loop ----

    async def run(self) -> None:
        backoff = Backoff(base=0.1, cap=5.0)
        while not self.stopping:
            try:
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                self._queues_stale = True  # the safety poll re-reads the pauses too
            self._wake.clear()
            if self.stopping:
                break
            try:
                more = await self.dispatch_once()
                backoff.reset()
                if more:
                    self.poke()
            except (*db.TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
                # One failed claim is never the end of dispatch: its transaction rolled back,
                # so trying again claims nothing twice.
                self.metrics.db_errors.labels("dispatch").inc()
                delay = backoff.next()
                if isinstance(exc, db.TRANSIENT_ERRORS):
                    log.warning("dispatch_paused", error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                else:
                    log.error("dispatch_failed", error=repr(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                self.poke()

    async def dispatch_once(self) -> bool:
        """One round: a claim per group of alike workers. True when a group's claim came
        back full (more may be due right now)."""
        if self.paused:
            return False
        if self._queues_stale:
            self._queues_stale = False
            self.paused_queues = tuple(await statements.paused_queues(self.pool))
        groups: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], list[WorkerConn]] = defaultdict(list)
        for w in self.registry.workers.values():
            if w.free:
                groups[w.signature].append(w)
        more = False
        for (types, queues, blocking), workers in groups.items():
            # Blocking types (a process or a thread per run) get their own, smaller claim;
            # the rest fill what is left. A worker with neither kind of limit pays one claim.
            light = tuple(t for t in types if t not in blocking)
            waiting = False
            for kinds, is_blocking in ((blocking, True), (light, False)):
                # Free slots are counted when their claim comes: the first claim took some.
                slots = interleave(workers, blocking=is_blocking)[:MAX_CLAIM] if kinds else []
                if not slots:  # none of these kinds, or all taken: a result frees one and pokes
                    continue
                claimed = await self.claim(kinds, queues, slots)
                # Full: more may be due. Some picked runs held back by their limits: claim
                # again, when those limits look full and are passed over for other work.
                if len(claimed) == len(slots) or (claimed and claimed[0].picked > len(claimed)):
                    more = True
                else:
                    waiting = True
            if waiting and not self.stopping:
                await self._arm_timer(types, queues)
        return more

    async def _arm_timer(self, types: tuple[str, ...], queues: tuple[str, ...]) -> None:
        now = self.clock()
        horizon = now + timedelta(seconds=self.settings.claim_ahead_s)
        nxt = await statements.next_due(self.pool, after=horizon, now=now, types=types, queues=queues,
                                        paused=self.paused_queues)
        if nxt.due_at is not None:
            self.due_at(nxt.due_at.timestamp())
        if nxt.token_at is not None:
            self.due_at(nxt.token_at.timestamp(), ahead=False)

    async def claim(self, types: tuple[str, ...], queues: tuple[str, ...], slots: list[str]) -> list[ClaimedRun]:
        now = self.clock()
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await statements.claim(conn, now=now, horizon=now + timedelta(seconds=s.claim_ahead_s), types=types,
                                       queues=queues, slots=slots, coordinator_id=s.coordinator_id,
                                       lease_s=s.leases.lease_s, timeout_grace_s=s.timeout_grace_s,
                                       paused=self.paused_queues)
            # A run of a task that stopped being active while the run was being made (the
            # command's snapshot could not see it) is settled here instead of dispatched.
            inactive = [r.id for r in rows if r.task_status != "active"]
            if inactive:
                await statements.settle_inactive_runs(conn, run_ids=inactive, now=now)
            active = [r for r in rows if r.task_status == "active"]
            held = await cron.apply_policies(conn, active, now)
            await cron.materialise_next(conn, active, now)
        self.metrics.claims.inc()
        if active:
            orphans = self._send([r for r in active if r.id not in held], now)
            if orphans:
                await statements.unclaim_runs(self.pool, run_ids=orphans)
        # Every row the claim took, settled or held ones too: a full claim means more may be due.
        return rows

    def _send(self, rows: list[ClaimedRun], now: datetime) -> list[uuid.UUID]:
        """Stream claimed runs to their workers; returns those whose worker is gone."""
        per_worker: dict[str, list[pb.Assignment]] = defaultdict(list)
        for r in rows:
            run_id, token = str(r["id"]), str(r["lease_token"])
            per_worker[r["worker_id"]].append(pb.Assignment(
                run_id=run_id, lease_token=token, task_id=str(r["task_id"]),
                task_name=r["task_name"], type=r["type"], payload_json=r["payload"],
                attempt=r["attempt"], max_attempts=r["max_attempts"], timeout_s=r["timeout_s"],
                scheduled_for=r["scheduled_for"].timestamp(), queue=r["queue"],
                not_before=r["due_at"].timestamp()))
            self.metrics.lateness.observe(max(0.0, (now - r["scheduled_for"]).total_seconds()))
        orphans: list[uuid.UUID] = []
        for worker_id, assignments in per_worker.items():
            w = self.registry.workers.get(worker_id)
            if w is None or w.closed:
                # Gone between the claim and now: the runs go back to pending.
                log.info("assignee_gone", worker_id=worker_id, runs=len(assignments))
                orphans += [uuid.UUID(a.run_id) for a in assignments]
                continue
            for a in assignments:
                w.inflight[a.run_id] = a.lease_token
                if a.type in w.blocking_types:
                    w.blocking_inflight.add(a.run_id)
            w.send(pb.CoordinatorMessage(assignments=pb.Assignments(assignments=assignments)))
        self.metrics.dispatched.inc(len(rows) - len(orphans))
        return orphans

    def stop(self) -> None:
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self.poke()

