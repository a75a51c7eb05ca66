"""Transactional enqueue: make a task on the application's own database connection, inside
its transaction. The task exists if and only if the transaction commits.

    async with conn.transaction():          # asyncpg
        await conn.execute("INSERT INTO orders ...")
        await skiplock.enqueue(conn, "email.send", {"to": "a@example.com"})

The same for a psycopg 3 AsyncConnection; `skiplock.sync.enqueue` for a psycopg 3 Connection.
The fields are the REST API's, validated by the API's own rules (skiplock.common.validation)
before the SQL function skiplock_enqueue(...) writes them; a bad field raises `EnqueueError`
naming it. A cron task's first fire time is computed here, as the API does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from skiplock.common import timeutil
from skiplock.common.errors import SkiplockError
from skiplock.common.validation import FieldError, TaskSpec, validate_create


class EnqueueError(SkiplockError, ValueError):
    """A field the API would refuse; `errors` names each as the API does."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = [{"field": e.field, "message": e.message} for e in errors]
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def _spec(type_: str, payload: Any, fields: dict[str, Any]) -> TaskSpec:
    body = {"type": type_, **({"payload": payload} if payload is not None else {}), **fields}
    for k, v in list(body.items()):
        if isinstance(v, datetime):  # a datetime is welcome here; the API's rules take RFC 3339
            body[k] = timeutil.iso(v)
    if "dedup" in body:
        raise EnqueueError([FieldError("dedup", "dedup windows need the API (POST /api/tasks): enqueue "
                                                "makes a task whatever else is waiting")])
    spec, errors = validate_create(body)
    if spec is None:
        raise EnqueueError(errors)
    return spec


def _record(spec: TaskSpec, now: datetime, task_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A validated task as skiplock_enqueue_many takes it (absent fields: the defaults)."""
    rec: dict[str, Any] = {
        "type": spec.type, "payload": spec.payload, "name": spec.name, "queue": spec.queue,
        "priority": spec.priority, "max_attempts": spec.max_attempts, "timeout_s": spec.timeout_s,
        "retry_backoff_s": spec.retry_backoff_s, "retry_backoff_max_s": spec.retry_backoff_max_s,
        "retry_jitter": spec.retry_jitter, "idempotency_key": spec.idempotency_key,
        "concurrency_key": spec.concurrency_key, "concurrency_limit": spec.concurrency_limit,
        "rate_limit": spec.rate_limit, "callbacks": spec.callbacks, "delay_s": spec.delay_s,
        "run_at": timeutil.iso(spec.run_at), "id": str(task_id) if task_id else None,
    }
    if spec.cron:
        rec.update(cron=spec.cron, timezone=spec.timezone, catch_up=spec.catch_up, overlap=spec.overlap,
                   first_run_at=timeutil.iso(spec.first_fire(now)))
    return {k: v for k, v in rec.items() if v is not None}


# One statement for one task or many; the JSON goes as text and is cast in SQL (a connection
# with a jsonb codec of its own would otherwise encode it a second time).
ASYNCPG_SQL = "SELECT skiplock_enqueue_many($1::text::jsonb)"
PSYCOPG_SQL = "SELECT skiplock_enqueue_many(%s::text::jsonb)"


def _is_asyncpg(conn: Any) -> bool:
    return type(conn).__module__.split(".")[0] == "asyncpg"


async def enqueue(conn: Any, type: str, payload: Any = None, **fields: Any) -> uuid.UUID:
    """Make a task in the caller's transaction (asyncpg Connection, or psycopg 3
    AsyncConnection); returns its id. With no transaction open, the statement commits on its own."""
    [task_id] = await _write(conn, [_record(_spec(type, payload, fields), timeutil.utcnow())])
    return task_id


async def enqueue_many(conn: Any, tasks: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Several tasks (each a dict of the API's fields, `type` included) in one statement,
    validated first: one bad task raises before any is written."""
    now = timeutil.utcnow()
    records = []
    for i, t in enumerate(tasks):
        fields = dict(t)
        try:
            records.append(_record(_spec(fields.pop("type", None), fields.pop("payload", None), fields), now))
        except EnqueueError as exc:
            raise EnqueueError([FieldError(f"tasks[{i}].{e['field']}", e["message"]) for e in exc.errors]) from None
    return await _write(conn, records) if records else []


@contextmanager
def _refusals() -> Iterator[None]:
    """What the SQL function refuses (SQLSTATE 22023, "field: why") raises as an
    EnqueueError: a rule only the database can check (a rate limit that does not exist)."""
    try:
        yield
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != "22023":
            raise
        text = str(getattr(exc, "message", None) or exc).splitlines()[0]
        field, _, why = text.partition(": ")
        raise EnqueueError([FieldError(field, why)]) from exc


async def _write(conn: Any, records: list[dict[str, Any]]) -> list[uuid.UUID]:
    text = json.dumps(records)
    with _refusals():
        if _is_asyncpg(conn):
            rows = await conn.fetch(ASYNCPG_SQL, text)
        else:
            cur = await conn.execute(PSYCOPG_SQL, (text,))
            rows = await cur.fetchall()
    return [r[0] for r in rows]


def enqueue_sync(conn: Any, type: str, payload: Any = None, **fields: Any) -> uuid.UUID:
    """`enqueue` for a psycopg 3 (sync) Connection."""
    text = json.dumps([_record(_spec(type, payload, fields), timeutil.utcnow())])
    with _refusals():
        row = conn.execute(PSYCOPG_SQL, (text,)).fetchone()
    return row[0]
