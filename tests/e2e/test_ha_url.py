"""The standard way to address an HA pair — a libpq host list with target_session_attrs —
works for every process. The first host here refuses connections (a primary that is gone)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from skiplock.sql.embedded import free_port
from tests.cluster import running_cluster

pytestmark = pytest.mark.e2e


def _host_list_url(db_url: str) -> str:
    parts = urlsplit(db_url)
    user = f"{parts.username}@" if parts.username else ""
    hosts = f"127.0.0.1:{free_port()},{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}{hosts}", query="target_session_attrs=read-write"))


async def test_every_process_accepts_a_host_list_url(db_url: str) -> None:
    url = _host_list_url(db_url)
    migrate = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "skiplock", "migrate", "--database-url",
                                                       url], capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    async with running_cluster(db_url) as cluster:
        env = {"SKIPLOCK_DATABASE_URL": url}
        await cluster.api(env=env)
        await cluster.coordinator(env=env)
        await cluster.worker("--import", "e2e_handlers", name="w")
        status, task = await cluster.request("POST", "/api/tasks", {"type": "echo", "payload": {"ha": True}})
        assert status == 201
        done = await cluster.wait_task(task["id"])
        assert done["state"] == "succeeded" and done["last_run"]["result"]["payload"] == {"ha": True}
