"""A real PostgreSQL failover: a primary and a synchronous standby, every process on the
host-list URL, tasks created throughout; the primary dies (`-m immediate`) and the standby
is promoted. Every accepted task must succeed exactly once, and no process may exit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from skiplock.sql import db
from skiplock.sql.embedded import EmbeddedPostgres, free_port
from tests.cluster import Cluster, running_cluster
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


async def _sync_pair(made: list[EmbeddedPostgres], tmp: Path) -> tuple[EmbeddedPostgres, EmbeddedPostgres]:
    primary = EmbeddedPostgres(tmp / "primary" / "data", port=free_port())
    made.append(primary)
    await asyncio.to_thread(primary.start)
    conn = await asyncpg.connect(primary.url())
    try:
        await conn.execute("CREATE DATABASE skiplock")
    finally:
        await conn.close()
    await db.migrate(primary.url("skiplock"))
    standby = EmbeddedPostgres(tmp / "standby" / "data", port=free_port())
    made.append(standby)
    standby.data_dir.mkdir(parents=True)
    standby.data_dir.chmod(0o700)
    await asyncio.to_thread(standby._prepare_root)
    # -R: standby.signal and primary_conninfo, so it starts as a streaming standby.
    await asyncio.to_thread(standby._run, "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                            "-U", "postgres", "-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast",
                            timeout=120)
    await asyncio.to_thread(standby.start)
    conn = await asyncpg.connect(primary.url())
    try:
        # Synchronous: a commit (an accepted task) waits until the standby has it.
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        await conn.execute("SELECT pg_reload_conf()")

        async def sync() -> bool:
            return await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1

        await wait_until(sync, 30, what="the standby to be synchronous")
    finally:
        await conn.close()
    return primary, standby


async def _create_throughout(cluster: Cluster, stop: asyncio.Event, accepted: list[str], refused: list[int]) -> None:
    i = 0
    while not stop.is_set():
        try:
            status, body = await cluster.request("POST", "/api/tasks", {"type": "echo", "payload": {"i": i}})
        except Exception:  # the API answered nothing (a connection reset mid-failover)
            status, body = 0, None
        if status == 201:
            accepted.append(body["id"])
        else:
            refused.append(status)
        i += 1
        await asyncio.sleep(0.02)  # a steady trickle of creates, not a flood


async def test_failover_to_a_promoted_standby_loses_and_repeats_nothing(
        embedded_pg_factory: list[EmbeddedPostgres], tmp_path: Path) -> None:
    primary, standby = await _sync_pair(embedded_pg_factory, tmp_path)
    url = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/skiplock"
           "?target_session_attrs=read-write")
    async with running_cluster(url, lease_s=6, heartbeat_s=1) as cluster:
        api = await cluster.api()
        coord = await cluster.coordinator()
        worker = await cluster.worker("--import", "e2e_handlers", "--slots", "8", name="w")
        stop, accepted, refused = asyncio.Event(), [], []
        creating = asyncio.create_task(_create_throughout(cluster, stop, accepted, refused))
        await wait_until(lambda: len(accepted) >= 40, 30, what="tasks flowing before the failover")
        await asyncio.to_thread(primary.stop, "immediate")
        killed = time.monotonic()
        await asyncio.to_thread(standby._run, "pg_ctl", "-D", str(standby.data_dir), "-w", "promote")
        before = len(accepted)
        await wait_until(lambda: len(accepted) >= before + 40, 60, what="creates to succeed on the new primary")
        resumed = time.monotonic() - killed
        stop.set()
        await creating

        async def all_done() -> bool:
            conn = await asyncpg.connect(standby.url("skiplock"))
            try:
                n = await conn.fetchval("SELECT count(*) FROM skiplock_tasks WHERE id = ANY($1::uuid[]) "
                                        "AND status = 'succeeded'", accepted)
            finally:
                await conn.close()
            return n == len(accepted)

        await wait_until(all_done, 60, interval=0.25, what="every accepted task to succeed")
        conn = await asyncpg.connect(standby.url("skiplock"))
        try:
            runs = await conn.fetch("SELECT task_id, state FROM skiplock_all_runs WHERE task_id = ANY($1::uuid[])",
                                    accepted)
        finally:
            await conn.close()
        succeeded = [r["task_id"] for r in runs if r["state"] == "succeeded"]
        assert len(succeeded) == len(set(succeeded)) == len(accepted), "each accepted task succeeded once"
        assert api.alive() and coord.alive() and worker.alive(), "no process exits in a failover"
        print(f"failover: {len(accepted)} accepted, all succeeded once ({len(runs) - len(accepted)} extra runs); "
              f"{len(refused)} creates refused during it ({sorted(set(refused))}); "
              f"creates succeeded again {resumed:.1f}s after the primary died")
