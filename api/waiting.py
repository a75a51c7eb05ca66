"""Why a pending run is not running yet (`waiting`), and what a create should warn about.

Derived at read time from the run, its task and the connected workers, so the hot path
writes nothing for it. The reasons and their order are the contract's: when several apply,
the first of task_paused, queue_paused, not_due, backoff, overlap, no_worker, concurrency,
rate_limit wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from skiplock.common import timeutil
from skiplock.common.states import TaskStatus
from skiplock.sql import statements

REASONS = ("task_paused", "queue_paused", "not_due", "backoff", "overlap", "no_worker", "concurrency", "rate_limit")


@dataclass(frozen=True)
class Taker:
    types: frozenset[str]
    queues: frozenset[str]  # empty: every queue
    free: int


@dataclass(frozen=True)
class Bucket:
    """A rate limit as the claim would see it now."""

    tokens: float
    next_token_at: datetime | None  # when the next whole token is there (None: one is now)
    paused_until: datetime | None


@dataclass(frozen=True)
class Fleet:
    """The connected workers as the claim sees them: what each takes, and its free slots."""

    takers: tuple[Taker, ...]
    paused: frozenset[str] = frozenset()  # paused queues
    # Concurrency key → the runs holding its slots (for the keys of the rows at hand).
    holders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Rate limit name → its bucket (for the rate limits of the rows at hand).
    buckets: Mapping[str, Bucket] = field(default_factory=dict)

    def for_run(self, type_: str, queue: str) -> list[Taker]:
        return [t for t in self.takers if type_ in t.types and (not t.queues or queue in t.queues)]

    def advertises(self, type_: str) -> bool:
        return any(type_ in t.types for t in self.takers)


def bucket(r: Mapping[str, Any], now: datetime) -> Bucket:
    elapsed = max(0.0, (now - r["refilled_at"]).total_seconds())
    tokens = min(float(r["burst"]), r["tokens"] + elapsed * r["per_second"])
    nxt = None if tokens >= 1 else now + timedelta(seconds=(1 - tokens) / r["per_second"])
    paused = r["paused_until"] if r["paused_until"] is not None and r["paused_until"] > now else None
    return Bucket(tokens, nxt, paused)


async def fleet(conn: asyncpg.Pool | asyncpg.Connection, now: datetime, lease_s: float,
                keys: Iterable[str] = (), rate_limits: Iterable[str] = ()) -> Fleet:
    row = await statements.fleet(conn, alive_since=now - timedelta(seconds=lease_s))
    keys = sorted(set(keys))
    held = await statements.concurrency_holders(conn, keys=keys) if keys else {}
    names = sorted(set(rate_limits))
    buckets = {r["name"]: bucket(r, now) for r in await statements.rate_limits(conn, names=names)} if names else {}
    return Fleet(tuple(Taker(frozenset(t["types"]), frozenset(t["queues"]), int(t["free"])) for t in row["takers"]),
                 frozenset(row["paused"]), {k: tuple(str(i) for i in held.get(k, ())) for k in keys}, buckets)


def _wait(reason: str, detail: str, until: datetime | None = None) -> dict[str, Any]:
    return {"reason": reason, "detail": detail, "until": timeutil.iso(until)}


def _infinite(value: datetime) -> bool:
    return value.year == 9999


def waiting(*, state: str, due_at: datetime | None, reason: str, type_: str, queue: str, task_status: str,
            fleet: Fleet, now: datetime, concurrency_key: str | None = None,
            concurrency_limit: int | None = None, rate_limit: str | None = None) -> dict[str, Any] | None:
    """`waiting` of one run (None unless it is pending)."""
    if state != "pending" or due_at is None:
        return None
    if task_status == TaskStatus.QUARANTINED:
        return _wait("task_paused", "the task was parked after its runs kept losing their workers; resume it")
    if task_status == TaskStatus.PAUSED:
        return _wait("task_paused", "the task is paused; POST /api/tasks/{id}/resume to let it run")
    if queue in fleet.paused:
        return _wait("queue_paused", f"queue {queue!r} is paused; POST /api/queues/{queue}/resume to let it run")
    if not _infinite(due_at) and due_at > now:
        if reason == "retry":
            return _wait("backoff", "a retry, waiting out its backoff", due_at)
        return _wait("not_due", "scheduled for later", due_at)
    if _infinite(due_at):
        what = "catch-up replays run one at a time" if reason == "catch_up" else "overlap=queue"
        return _wait("overlap", f"waits for the task's run in progress to end ({what})")
    takers = fleet.for_run(type_, queue)
    if not takers:
        return _wait("no_worker", f"no connected worker takes type {type_!r} on queue {queue!r}"
                     + ("" if fleet.advertises(type_) else f"; none advertises {type_!r} at all"))
    if not any(t.free for t in takers):
        return _wait("no_worker", f"all {len(takers)} connected worker(s) that take type {type_!r} are busy or "
                     "draining; it starts when a slot frees")
    held = fleet.holders.get(concurrency_key or "", ())
    if concurrency_key is not None and concurrency_limit is not None and len(held) >= concurrency_limit:
        return _wait("concurrency", f"concurrency key {concurrency_key!r} allows {concurrency_limit} at once; "
                     f"running now: {', '.join(held)}; it starts when one of them ends")
    b = fleet.buckets.get(rate_limit or "")
    if b is not None and b.paused_until is not None:
        return _wait("rate_limit", f"rate limit {rate_limit!r} is paused: a target answered 429/503 with "
                     "Retry-After", b.paused_until)
    if b is not None and b.next_token_at is not None:
        return _wait("rate_limit", f"rate limit {rate_limit!r} has no token left; it starts on the next one",
                     b.next_token_at)
    return _wait("no_worker", "due now; being handed to a worker with a free slot")


def run_waiting(r: Mapping[str, Any], task_status: str, fleet: Fleet, now: datetime) -> dict[str, Any] | None:
    return waiting(state=r["state"], due_at=r["due_at"], reason=r["reason"], type_=r["type"], queue=r["queue"],
                   task_status=task_status, fleet=fleet, now=now, concurrency_key=r["concurrency_key"],
                   concurrency_limit=r["concurrency_limit"], rate_limit=r["rate_limit"])


def task_waiting(t: Mapping[str, Any], fleet: Fleet, now: datetime) -> dict[str, Any] | None:
    """`waiting` of a task whose next run is pending (its earliest pending run)."""
    if t["pending_due"] is None or t["status"] not in (TaskStatus.ACTIVE, TaskStatus.PAUSED, TaskStatus.QUARANTINED):
        return None
    return waiting(state="pending", due_at=t["pending_due"], reason=t["pending_reason"], type_=t["type"],
                   queue=t["queue"], task_status=t["status"], fleet=fleet, now=now,
                   concurrency_key=t["concurrency_key"], concurrency_limit=t["concurrency_limit"],
                   rate_limit=t["rate_limit"])


def create_warnings(types: Iterable[str], fleet: Fleet) -> dict[str, list[str]]:
    """Per type: what a user should hear at create time (a typo'd type waits forever)."""
    out: dict[str, list[str]] = {}
    for t in set(types):
        if not fleet.advertises(t):
            out[t] = [f"no connected worker handles type {t!r}: its runs wait (pending) until one does; "
                      "check the spelling, or start a worker that has it (--import MODULE for custom types, "
                      "--allow-shell for shell)"]
    return out
