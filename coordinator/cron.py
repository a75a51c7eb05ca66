"""Cron slots at claim time: the overlap and catch-up policies, and the next slot.

Runs in the claim's transaction, only for claimed cron slots (first attempts), so it costs
nothing on the one-off hot path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from skiplock.common import timeutil
from skiplock.coordinator import callbacks
from skiplock.coordinator.policy import next_slot
from skiplock.sql import statements
from skiplock.sql.new_runs import NewRun, insert_runs
from skiplock.sql.statements import ClaimedRun

SLOT_REASONS = ("schedule", "catch_up")
MISSED_COUNT_LIMIT = 1000


def _slots(rows: Sequence[ClaimedRun]) -> list[ClaimedRun]:
    return [r for r in rows if r["cron"] and r["attempt"] == 1 and r["reason"] in (*SLOT_REASONS, "queued")]


async def apply_policies(conn: asyncpg.Connection, rows: Sequence[ClaimedRun], now: datetime) -> set[uuid.UUID]:
    """Decide for each claimed cron slot: run it, skip it (recorded with the reason) or queue
    it behind the run in progress. Returns the ids that must not be dispatched."""
    slots = sorted(_slots(rows), key=lambda r: r["scheduled_for"])
    if not slots:
        return set()
    skip: dict[uuid.UUID, str] = {}
    late: list[uuid.UUID] = []
    for r in slots:
        if r["reason"] == "queued":
            continue  # it waited on purpose
        following = timeutil.cron_next(r["cron"], r["timezone"], r["scheduled_for"])
        if following > now:
            continue  # on time (or late by less than one interval)
        if r["catch_up"] == "none":
            # Counted only to word the record, so bounded: an every-second task after a day's
            # outage would otherwise walk 86,400 fire times here, inside the claim.
            _, missed = timeutil.cron_latest_at_or_before(r["cron"], r["timezone"], r["scheduled_for"], now,
                                                          limit=MISSED_COUNT_LIMIT)
            many = f"at least {missed}" if missed >= MISSED_COUNT_LIMIT else str(missed)
            skip[r["id"]] = (f"catch_up=none: missed while nothing was running; this and {many} later fire "
                             "time(s) had passed when a coordinator could start it")
        else:
            late.append(r["id"])
    replays = {r["id"] for r in slots if r["reason"] == "catch_up"}
    claimed = [r["id"] for r in rows]
    state = {s["task_id"]: s for s in await statements.cron_busy(
        conn, task_ids=list({r["task_id"] for r in slots}), claimed=claimed)}
    busy = {t for t, s in state.items() if s["running"]}
    waiting = {t for t, s in state.items() if s["waiting"]}
    queue: list[uuid.UUID] = []
    for r in slots:
        if r["id"] in skip:
            continue
        task = r["task_id"]
        if task in busy and r["id"] in replays:
            # A missed slot being replayed waits for the run before it, whatever the overlap
            # policy: replays run one after the other, and a skip reason is only ever true.
            queue.append(r["id"])
        elif task in busy and r["overlap"] == "skip":
            skip[r["id"]] = "overlap=skip: the previous run was still running at this fire time"
        elif task in busy and r["overlap"] == "queue":
            if task in waiting:
                skip[r["id"]] = "overlap=queue: a run was already waiting for the previous one to end"
            else:
                queue.append(r["id"])
                waiting.add(task)
        else:
            busy.add(task)  # a later slot of this task in the same claim overlaps this one
    if skip:
        ids = list(skip)
        await statements.skip_runs(conn, run_ids=ids, reasons=[skip[i] for i in ids], now=now)
        told = [callbacks.skipped_event(r, skip[r["id"]], now) for r in slots if r["id"] in skip and r["callbacks"]]
        if told:
            await callbacks.deliver(conn, told, now)
    if queue:
        await statements.queue_runs(conn, run_ids=queue)
    late = [i for i in late if i not in skip and i not in queue]
    if late:
        await statements.mark_catch_up(conn, run_ids=late)
    return set(skip) | set(queue)


async def materialise_next(conn: asyncpg.Connection, rows: Sequence[ClaimedRun], now: datetime) -> None:
    """A cron task's next slot is made when the current one is claimed; the unique key
    (task, slot, attempt), checked against the history too, makes a second one a no-op."""
    nxt: list[NewRun] = []
    for r in rows:
        if r["cron"] and r["attempt"] == 1 and r["reason"] in SLOT_REASONS and r["task_status"] == "active":
            fire, reason = next_slot(r["cron"], r["timezone"], r["catch_up"], r["scheduled_for"], now)
            # A replay of a missed slot waits until the run before it ends (release_queued).
            due = timeutil.NEVER if reason == "catch_up" else max(fire, now)
            nxt.append(NewRun(task_id=r["task_id"], attempt=1, type=r["type"], queue=r["queue"],
                              priority=r["priority"], scheduled_for=fire, due_at=due, reason=reason,
                              concurrency_key=r["concurrency_key"], concurrency_limit=r["concurrency_limit"],
                              rate_limit=r["rate_limit"]))
    await insert_runs(conn, nxt, now, cron_slots=True)
