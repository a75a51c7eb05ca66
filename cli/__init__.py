"""skiplock: a distributed task scheduler on PostgreSQL.

From application code: `await skiplock.enqueue(conn, type, payload, **fields)` makes a task
inside the caller's transaction (asyncpg, or psycopg 3 async; `skiplock.sync.enqueue` for
psycopg 3 sync), and `skiplock.client` talks to the REST API.
"""

from typing import Any

from skiplock.common.version import __version__

__all__ = ["EnqueueError", "__version__", "enqueue", "enqueue_many"]


def __getattr__(name: str) -> Any:
    # Imported when first used: `python -m skiplock` and the servers never load the client.
    if name in ("enqueue", "enqueue_many", "EnqueueError"):
        from skiplock.client import enqueue as module

        return getattr(module, name)
    raise AttributeError(f"module 'skiplock' has no attribute {name!r}")
