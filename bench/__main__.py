"""Print skiplock's figures: end-to-end runs/s, scheduling lateness, API creates/s; with
--cron-fleet, a fleet of cron tasks; with --scale, the same reads and drain at millions of rows.

Starts real processes (api, one coordinator, one worker) against an embedded PostgreSQL
(or SKIPLOCK_BENCH_DATABASE_URL, which it will empty and fill), like the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from bench import pgq, scale
from bench.common import create, drain, lateness, pct, reset, wait_workers
from skiplock.sql import db
from skiplock.sql.embedded import EmbeddedPostgres
from skiplock.testing import Cluster

ROOT = Path(__file__).resolve().parents[1]


def pgq_version() -> str:
    from importlib.metadata import version

    return version("pgqueuer")


async def count_statements(pool: asyncpg.Pool, seconds: float) -> float:
    """Transactions committed by skiplock's own connections, from pg_stat_database minus
    our probes; a fair proxy for round trips since every statement runs in one."""
    sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    before = await pool.fetchval(sql)
    await asyncio.sleep(seconds)
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    after = await pool.fetchval(sql)
    return max(0.0, float(after - before - 2)) / seconds


async def cron_fleet(args: argparse.Namespace, url: str) -> None:
    """N cron tasks firing every two seconds on two coordinators: start lateness by slot."""
    cluster = Cluster(url, pythonpath=[ROOT])
    pool = await db.create_pool(url)
    try:
        await reset(pool)
        await cluster.api()
        coords = [await cluster.coordinator(), await cluster.coordinator()]
        await cluster.worker("--import", "bench.handlers", "--types", "bench.noop", "--slots", str(args.slots),
                             name="bench-worker", coordinators=coords)
        await wait_workers(pool)
        n = args.cron_fleet
        async with aiohttp.ClientSession() as s:
            await create(s, cluster.api_url, [{"type": "bench.noop", "cron": "*/2 * * * * *"} for _ in range(n)])
        began = datetime.now(UTC)
        await asyncio.sleep(args.cron_s)  # real seconds must pass: this measures the schedule
        # finished_at is the worker's clock when the no-op returned: the run really started
        # then, after the claim's transaction committed and the assignment crossed gRPC.
        rows = await pool.fetch(
            "SELECT extract(epoch FROM finished_at - scheduled_for) * 1000 AS ms FROM skiplock_run_history "
            "WHERE state = 'succeeded' AND scheduled_for > $1", began + timedelta(seconds=2))
        late = [float(r["ms"]) for r in rows]
        dup = await pool.fetchval("SELECT count(*) FROM (SELECT task_id, scheduled_for FROM skiplock_all_runs "
                                  "WHERE state <> 'skipped' GROUP BY 1, 2 HAVING count(*) > 1) d")
        skipped = await pool.fetchval("SELECT count(*) FROM skiplock_run_history WHERE state = 'skipped'")
        print(f"cron fleet: {n} tasks every 2 s ({n / 2:.0f} fires/s), 2 coordinators + 1 worker "
              f"({args.slots} slots), {len(late)} runs over {args.cron_s:.0f} s, "
              f"fire time to the no-op's end on the worker: p50 {pct(late, 50):.1f} ms, "
              f"p99 {pct(late, 99):.1f} ms, max {max(late):.1f} ms; duplicated slots {dup}, skipped {skipped}",
              flush=True)
    finally:
        await pool.close()
        cluster.stop()


async def enqueue_rates(url: str, n: int) -> tuple[float, float]:
    import skiplock

    later = datetime.now(UTC) + timedelta(days=1)
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        async with conn.transaction():
            for i in range(n):
                await skiplock.enqueue(conn, "bench.other", {"i": i}, run_at=later)
        single = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with conn.transaction():
            for i in range(0, n, 1000):
                await skiplock.enqueue_many(conn, [{"type": "bench.other", "payload": {"i": j}, "run_at": later}
                                                   for j in range(i, min(n, i + 1000))])
        many = n / (time.perf_counter() - t0)
    finally:
        await conn.close()
    return single, many


async def main(args: argparse.Namespace) -> None:
    url = os.environ.get("SKIPLOCK_BENCH_DATABASE_URL")
    server = None
    if not url:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="skiplock-bench-")) / "data")
        url = await asyncio.to_thread(server.start)
    if args.scale:
        try:
            await db.wait_for_database(url)
            await db.migrate(url)
            await scale.run_scale(args, url)
        finally:
            if server is not None:
                await asyncio.to_thread(server.remove)
                shutil.rmtree(server.data_dir.parent, ignore_errors=True)
        return
    if args.cron_fleet:
        try:
            await db.wait_for_database(url)
            await db.migrate(url)
            await cron_fleet(args, url)
        finally:
            if server is not None:
                await asyncio.to_thread(server.remove)
                shutil.rmtree(server.data_dir.parent, ignore_errors=True)
        return
    cluster = Cluster(url, pythonpath=[ROOT])
    try:
        await db.wait_for_database(url)
        await db.migrate(url)
        pool = await db.create_pool(url)
        await reset(pool)
        api = await cluster.api()
        coord = await cluster.coordinator()
        worker = await cluster.worker("--import", "bench.handlers", "--types", "bench.noop", name="bench-worker")
        base = cluster.api_url
        await wait_workers(pool)
        # 0. Idle: statements the cluster issues with nothing to do (this probe excluded).
        idle = await count_statements(pool, args.idle_s)
        print(f"idle cluster (api + coordinator + worker): {idle:.1f} statements/s", flush=True)
        async with aiohttp.ClientSession() as s:
            # 1. API creates/s: batches of 1,000 (tasks far in the future, so nothing runs yet).
            n = args.tasks
            future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            t0 = time.perf_counter()
            for i in range(0, n, 1000):
                await create(s, base, [{"type": "bench.other", "run_at": future} for _ in range(min(1000, n - i))])
            creates = n / (time.perf_counter() - t0)
            print(f"API creates/s (POST /api/tasks/batch, 1,000 per request, 1 client): {creates:,.0f}", flush=True)
            # The API's own work and PostgreSQL's overlap when requests do: 4 clients at once.
            clients = 4

            async def client(k: int) -> None:
                for _ in range(k):
                    await create(s, base, [{"type": "bench.other", "run_at": future} for _ in range(1000)])

            t0 = time.perf_counter()
            await asyncio.gather(*(client(n // 1000 // clients) for _ in range(clients)))
            parallel = (n // 1000 // clients) * clients * 1000 / (time.perf_counter() - t0)
            print(f"API creates/s (the same, {clients} clients at once): {parallel:,.0f}", flush=True)

            # 2. Throughput: n no-op tasks all due at T0 (created before it), drained by one
            # worker: with the worker's defaults, then with the most slots the README suggests.
            async def measure(label: str) -> float:
                rate = await drain(s, pool, base, n, creates)
                print(f"end to end: {n:,} no-op runs due at once, 1 coordinator + 1 worker ({label}): "
                      f"{rate:,.0f} runs/s", flush=True)
                return rate

            defaults = await measure("its defaults")
            worker.stop()
            worker = await cluster.worker("--import", "bench.handlers", "--types", "bench.noop", "--slots",
                                          str(args.slots), name="bench-worker-tuned")
            tuned = await measure(f"--slots {args.slots}")
            if pgq.available():
                theirs = await pgq.drain(url, n)
                print(f"pgqueuer {pgq_version()}: {n:,} no-op jobs, 1 `pgq run` process with its defaults "
                      f"(batch_size 10): {theirs:,.0f} jobs/s", flush=True)
                print(f"ratio to pgqueuer's defaults: skiplock's defaults {defaults / theirs:.2f}x, "
                      f"--slots {args.slots} {tuned / theirs:.2f}x", flush=True)
            else:
                print("pgqueuer: not installed (pip install -e '.[bench]', or make bench)", flush=True)

            # 3. Lateness: tasks spread over 10 s, on an otherwise idle cluster.
            late = await lateness(s, pool, base, args.late)
            print(f"start lateness (run_at to the no-op's end on the worker), {args.late} tasks over 10 s: "
                  f"p50 {pct(late, 50):.1f} ms, p95 {pct(late, 95):.1f} ms, p99 {pct(late, 99):.1f} ms, "
                  f"max {max(late):.1f} ms, mean {statistics.fmean(late):.1f} ms", flush=True)

            # 4. Memory stays bounded: resident memory before and after many more runs.
            if args.rss:
                procs = {"api": api.pid, "coordinator": coord.pid, "worker": worker.pid}
                before_mb = {k: scale.rss_mb(p) for k, p in procs.items()}
                for i in range(0, args.rss, n):
                    await drain(s, pool, base, min(n, args.rss - i), creates)
                after_mb = {k: scale.rss_mb(p) for k, p in procs.items()}
                print(f"resident memory over {args.rss:,} more runs (--slots {args.slots} worker): "
                      + ", ".join(f"{k} {before_mb[k]:.0f} -> {after_mb[k]:.0f} MB" for k in procs), flush=True)

        # 5. Transactional enqueue on the application's own connection, in one transaction.
        await reset(pool)
        single, many = await enqueue_rates(url, args.enqueue)
        print(f"skiplock.enqueue in one transaction (asyncpg, {args.enqueue:,} tasks): one call per task "
              f"{single:,.0f} tasks/s, enqueue_many {many:,.0f} tasks/s", flush=True)
        if pgq.available():
            theirs = await pgq.enqueue_rate(url, args.enqueue)
            print(f"pgqueuer {pgq_version()} enqueue (its batch insert, 1,000 per statement, one transaction): "
                  f"{theirs:,.0f} jobs/s", flush=True)
        await pool.close()
    finally:
        cluster.stop()
        if server is not None:
            await asyncio.to_thread(server.remove)
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--late", type=int, default=500)
    p.add_argument("--enqueue", type=int, default=10_000, help="tasks for the transactional enqueue figures")
    p.add_argument("--rss", type=int, default=0, metavar="N",
                   help="also run N more no-op runs and print each process's resident memory before and after")
    p.add_argument("--slots", type=int, default=500, help="the tuned run's slots (the other uses the defaults)")
    p.add_argument("--idle-s", type=float, default=10.0)
    p.add_argument("--cron-fleet", type=int, default=0, metavar="N",
                   help="instead: N cron tasks every 2 s on two coordinators, start lateness")
    p.add_argument("--cron-s", type=float, default=20.0, help="how long the cron fleet runs")
    scale.add_arguments(p)
    sys.exit(asyncio.run(main(scale.finish_arguments(p.parse_args()))))
