"""The embedded PostgreSQL wrapper: start, reuse, adopt an orphan, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from skiplock.sql.embedded import EmbeddedPostgres


async def test_orphaned_server_is_adopted_and_stopped_by_the_next_owner(tmp_path: Path) -> None:
    data = tmp_path / "postgres"
    first = EmbeddedPostgres(data)
    url = first.start()
    try:
        # The owner dies without stopping it (like a SIGKILLed `skiplock up`).
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        first.owner_file.write_text(dead.stdout.strip())
        second = EmbeddedPostgres(data)
        assert second.start() == url and second.started_here, "an orphan is adopted"
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        # A live owner keeps it: a third user must not stop it on exit.
        third = EmbeddedPostgres(data)
        assert third.start() == url and not third.started_here
        assert int(second.owner_file.read_text()) == os.getpid()
        second.stop()
        assert second.running_port() is None and not second.owner_file.exists()
    finally:
        first.remove()
