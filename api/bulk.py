"""Task commands in bulk: over listed ids, or over every task matching a filter (the
dashboard's "select all matching"). Each task gets its own transaction, exactly as a single
command would, so one refusal (a task whose state does not allow the action) is counted and
the rest go on. A filter is walked in pages with a cursor: a request does at most `limit`
tasks and hands back `next_cursor` for the rest, so no request holds a million tasks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from skiplock.api import store
from skiplock.api.views import decode_cursor, encode_cursor
from skiplock.sql import statements

ACTIONS: dict[str, Callable[[asyncpg.Pool, uuid.UUID, datetime], Awaitable[dict[str, Any]]]] = {
    "cancel": store.cancel_task,
    "pause": store.pause_task,
    "resume": store.resume_task,
    "trigger": store.trigger_task,
}
MAX_IDS = 500
PAGE = 500


async def _apply(pool: asyncpg.Pool, action: str, ids: list[uuid.UUID], now: datetime) -> tuple[int, int, int]:
    """(applied, refused, missing)"""
    applied = refused = missing = 0
    for task_id in ids:
        try:
            await ACTIONS[action](pool, task_id, now)
            applied += 1
        except store.Conflict:
            refused += 1
        except store.NotFound:
            missing += 1
    return applied, refused, missing


async def by_ids(pool: asyncpg.Pool, action: str, ids: list[uuid.UUID], now: datetime) -> dict[str, Any]:
    applied, refused, missing = await _apply(pool, action, ids, now)
    return {"action": action, "matched": len(ids) - missing, "applied": applied, "refused": refused,
            "not_found": missing, "next_cursor": None, "more": False}


async def by_filter(pool: asyncpg.Pool, action: str, flt: dict[str, Any], now: datetime, *, cursor: str | None,
                    limit: int, dry_run: bool) -> dict[str, Any]:
    """Walk the tasks matching `flt` (the list filters of GET /api/tasks) from `cursor`;
    with `dry_run`, count them (up to `limit`) and change nothing."""
    statuses, running = store.STATE_FILTERS[flt["state"]] if flt.get("state") else (None, None)
    after = decode_cursor(cursor) if cursor else (None, None)
    seen: list[uuid.UUID] = []
    more = False
    while len(seen) < limit:
        rows = await statements.list_tasks(
            pool, after_created=after[0], after_id=after[1], type_=flt.get("type"), queue=flt.get("queue"),
            name_prefix=flt.get("name"), statuses=statuses, running=running, limit=min(PAGE, limit - len(seen)) + 1,
            created_after=flt.get("created_after"), created_before=flt.get("created_before"))
        page, more = rows[:min(PAGE, limit - len(seen))], len(rows) > min(PAGE, limit - len(seen))
        seen += [r["id"] for r in page]
        if page:
            after = (page[-1]["created_at"], page[-1]["id"])
        if not more:
            break
    nxt = encode_cursor(after[0], after[1]) if more and after[0] is not None else None
    if dry_run:
        return {"action": action, "matched": len(seen), "applied": 0, "refused": 0, "not_found": 0,
                "next_cursor": nxt, "more": more}
    applied, refused, missing = await _apply(pool, action, seen, now)
    return {"action": action, "matched": len(seen), "applied": applied, "refused": refused, "not_found": missing,
            "next_cursor": nxt, "more": more}
