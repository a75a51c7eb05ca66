"""Transactional enqueue on a psycopg 3 (sync) connection: `from skiplock.sync import enqueue`.

    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO orders ...")
        enqueue(conn, "email.send", {"to": "a@example.com"})
"""

from skiplock.client.enqueue import EnqueueError
from skiplock.client.enqueue import enqueue_sync as enqueue

__all__ = ["EnqueueError", "enqueue"]
