"""`python -m bench --scale N`: the same figures on an empty database and on one filled by SQL
with N finished runs (succeeded, failed, cancelled, skipped, over the last six days) and
`--future M` future tasks (pending runs a month out), printed side by side: the latency of
every list/filter read, /metrics and /api/stats (median of 5), the drain rate, start
lateness, and the resident memory of the API, the coordinator and the worker."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import drain, lateness, pct, reset, wait_workers
from skiplock.sql import db, statements
from skiplock.testing import Cluster

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 500_000


@dataclass
class Figures:
    reads_ms: dict[str, float] = field(default_factory=dict)
    drain: float = 0.0
    late_p50: float = 0.0
    late_p99: float = 0.0
    rss_mb: dict[str, tuple[float, float]] = field(default_factory=dict)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def v7(ts: str, seed: str) -> str:
    """SQL for a time-ordered id like the services make (48 bits of milliseconds first)."""
    return (f"(lpad(to_hex((extract(epoch FROM {ts}) * 1000)::bigint), 12, '0') "
            f"|| substr(md5({seed}), 13, 20))::uuid")


def sub(sql: str, **parts: str) -> str:
    for k, v in parts.items():
        sql = sql.replace("{" + k + "}", v)
    return sql


# Task k, an owner of finished runs, was made six days ago (plus k ms); both statements of a
# chunk derive its id from k and $1, the same instant.
TASK_ID = v7("($1::timestamptz - interval '6 days' + make_interval(secs => k / 1000.0))", "'t' || k")


async def fill(pool: asyncpg.Connection, finished: int, future: int) -> None:
    """Rows by SQL, in chunks. Finished runs belong to finished/10 tasks (ten runs each: cron
    tasks that keep going, and one-offs that ended); the history's triggers count them and
    record each task's latest run, as they do for runs that really end."""
    now = datetime.now(UTC)
    await statements.maintain_history(pool, now=now, keep_ok_s=7 * 86400.0, keep_failed_s=30 * 86400.0, batch=1)
    for d in range(1, 7):
        await statements.maintain_history(pool, now=now - timedelta(days=d), keep_ok_s=7 * 86400.0,
                                          keep_failed_s=30 * 86400.0, batch=1)
    owners = max(1, finished // 10)
    span_s = 6 * 86400 - 60
    t0 = time.perf_counter()
    for lo in range(0, owners, CHUNK // 10):
        hi = min(owners, lo + CHUNK // 10)
        # Task k's runs j = 0..9 end at now - span * (1 - (10k + j) / finished): oldest first.
        await pool.execute(sub("""
            INSERT INTO skiplock_tasks (id, name, type, queue, cron, max_attempts, timeout_s, status, created_at,
                                        updated_at)
            SELECT {tid}, 'job-' || (k % 5000) || '-' || k,
                   (ARRAY['bench.noop', 'http', 'report.daily', 'email', 'sync'])[1 + k % 5], 'q' || (k % 20),
                   CASE WHEN k % 10 < 6 THEN '*/5 * * * *' END, 3, 60,
                   (ARRAY['active', 'active', 'active', 'active', 'active', 'active', 'succeeded', 'failed',
                          'cancelled', 'succeeded'])[1 + k % 10],
                   $1::timestamptz - make_interval(secs => $2 + 60), $1
            FROM generate_series($3::bigint, $4::bigint - 1) k""", tid=TASK_ID), now, span_s, lo, hi)
        await pool.execute(sub("""
            INSERT INTO skiplock_run_history
            SELECT {rid}, {tid}, 1,
                   CASE WHEN j = 9 THEN (CASE WHEN k % 10 = 7 THEN 'failed' WHEN k % 10 = 8 THEN 'cancelled'
                                              ELSE 'succeeded' END)
                        ELSE (ARRAY['succeeded', 'failed', 'cancelled', 'skipped'])[
                             CASE WHEN g % 100 < 85 THEN 1 WHEN g % 100 < 93 THEN 2 WHEN g % 100 < 97 THEN 3
                                  ELSE 4 END] END,
                   (ARRAY['bench.noop', 'http', 'report.daily', 'email', 'sync'])[1 + k % 5], 'q' || (k % 20), 0,
                   f - interval '1 second', f - interval '1 second', f - interval '50 milliseconds', f,
                   'w-' || (g % 30), 'c', NULL, NULL, NULL, '{"ok": true}', NULL, 'schedule',
                   f - interval '1 second', g
            FROM generate_series($2::bigint, $3::bigint - 1) k
            CROSS JOIN LATERAL (
                SELECT j, k * 10 + j AS g,
                       $1::timestamptz - make_interval(secs => $4 * (1 - (k * 10 + j)::float8 / $5)) AS f
                FROM generate_series(0, 9) j) x""", rid=v7("f", "'r' || g"), tid=TASK_ID),
            now, lo, hi, span_s, owners * 10)
        print(f"  filled {hi * 10:,} of {owners * 10:,} finished runs ({time.perf_counter() - t0:.0f} s)", flush=True)
    for lo in range(0, future, CHUNK):
        hi = min(future, lo + CHUNK)
        await pool.execute(sub("""
            WITH t AS (
                INSERT INTO skiplock_tasks (id, name, type, queue, run_at, max_attempts, timeout_s, created_at,
                                            updated_at)
                SELECT {fid}, 'job-' || (i % 5000) || '-f' || i,
                       CASE WHEN i % 2 = 0 THEN 'bench.noop' ELSE 'email' END, 'q' || (i % 20),
                       $1::timestamptz + interval '30 days', 3, 60, $1, $1
                FROM generate_series($2::bigint, $3::bigint - 1) i
                RETURNING id, type, queue, run_at
            )
            INSERT INTO skiplock_runs (id, task_id, attempt, type, queue, priority, scheduled_for, due_at, created_at)
            SELECT {rid}, id, 1, type, queue, 0, run_at, run_at, $1 FROM t""",
            fid=v7("$1::timestamptz", "'f' || i"), rid=v7("$1::timestamptz", "id::text")), now, lo, hi)
        print(f"  filled {hi:,} of {future:,} future tasks ({time.perf_counter() - t0:.0f} s)", flush=True)
    await pool.execute("VACUUM ANALYZE")
    # The fill's dirty pages are written now, not by checkpoints during the measurement.
    await pool.execute("CHECKPOINT")
    size = await pool.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    print(f"  filled in {time.perf_counter() - t0:.0f} s; database {size}", flush=True)


async def sample_ids(pool: asyncpg.Pool) -> dict[str, str]:
    run = await pool.fetchrow("SELECT id, task_id, worker_id FROM skiplock_run_history "
                              "WHERE worker_id IS NOT NULL ORDER BY created_at DESC LIMIT 1")
    if run is None:  # the empty database: ids that exist nowhere still exercise the reads
        return {"run": "00000000-0000-0000-0000-000000000001", "task": "00000000-0000-0000-0000-000000000002",
                "worker": "w-1"}
    return {"run": str(run["id"]), "task": str(run["task_id"]), "worker": run["worker_id"]}


def reads(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("GET /api/tasks", "/api/tasks"),
        *((f"GET /api/tasks?state={s}", f"/api/tasks?state={s}")
          for s in ("scheduled", "running", "paused", "succeeded", "failed", "cancelled")),
        ("GET /api/tasks?type=email", "/api/tasks?type=email"),
        ("GET /api/tasks?queue=q3", "/api/tasks?queue=q3"),
        ("GET /api/tasks?name=job-42-", "/api/tasks?name=job-42-"),
        ("GET /api/tasks/{id}", f"/api/tasks/{ids['task']}"),
        ("GET /api/tasks/{id}/runs", f"/api/tasks/{ids['task']}/runs"),
        ("GET /api/runs", "/api/runs"),
        *((f"GET /api/runs?state={s}", f"/api/runs?state={s}")
          for s in ("pending", "running", "succeeded", "failed", "cancelled", "skipped")),
        ("GET /api/runs?type=email", "/api/runs?type=email"),
        ("GET /api/runs?task_id=…", f"/api/runs?task_id={ids['task']}"),
        ("GET /api/runs?worker_id=…", f"/api/runs?worker_id={ids['worker']}"),
        ("GET /api/runs/{id}", f"/api/runs/{ids['run']}"),
        ("GET /api/workers", "/api/workers"),
        ("GET /api/stats", "/api/stats"),
        ("GET /metrics", "/metrics"),
    ]


async def time_reads(base: str, ids: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as s:
        for label, path in reads(ids):
            times = []
            for i in range(6):  # one warm-up, then the median of five
                t0 = time.perf_counter()
                async with s.get(base + path) as r:
                    await r.read()
                    if r.status not in (200, 404):
                        raise SystemExit(f"{label}: {r.status} {await r.text()}")
                if i:
                    times.append((time.perf_counter() - t0) * 1000)
            out[label] = statistics.median(times)
        # The second page of all runs: the cursor's keyset read.
        async with s.get(base + "/api/runs") as r:
            cursor = (await r.json())["next_cursor"]
        if cursor:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                async with s.get(f"{base}/api/runs?cursor={cursor}") as r:
                    await r.read()
                times.append((time.perf_counter() - t0) * 1000)
            out["GET /api/runs?cursor=… (page 2)"] = statistics.median(times)
    return out


async def measure(url: str, args: argparse.Namespace, label: str) -> Figures:
    f = Figures()
    cluster = Cluster(url, pythonpath=[ROOT])
    pool = await db.create_pool(url)
    try:
        api = await cluster.api()
        coord = await cluster.coordinator()
        worker = await cluster.worker("--import", "bench.handlers", "--types", "bench.noop", "--slots",
                                      str(args.slots), name="bench-worker")
        await wait_workers(pool)
        procs = {"api": api.pid, "coordinator": coord.pid, "worker": worker.pid}
        rss_before = {k: rss_mb(p) for k, p in procs.items()}
        ids = await sample_ids(pool)
        f.reads_ms = await time_reads(cluster.api_url, ids)
        async with aiohttp.ClientSession() as s:
            f.drain = await drain(s, pool, cluster.api_url, args.tasks)
            late = await lateness(s, pool, cluster.api_url, args.late)
            f.late_p50, f.late_p99 = pct(late, 50), pct(late, 99)
        f.reads_ms.update({f"{k} (after the drain)": v for k, v in (await time_reads(cluster.api_url, ids)).items()
                           if k in ("GET /api/stats", "GET /metrics", "GET /api/runs")})
        after = {k: rss_mb(p) for k, p in procs.items()}
        f.rss_mb = {k: (rss_before[k], after[k]) for k in procs}
        print(f"  measured: {label}", flush=True)
    finally:
        await pool.close()
        cluster.stop()
    return f


def report(empty: Figures, full: Figures, args: argparse.Namespace) -> None:
    big = f"{args.scale:,} finished runs + {args.future:,} future tasks"
    print(f"\nscale: reads through the REST API, median of 5 (ms); 1 api, 1 coordinator, 1 worker "
          f"({args.slots} slots); drain of {args.tasks:,} no-op runs; lateness of {args.late} runs over 10 s")
    w = max(len(k) for k in full.reads_ms) + 2
    print(f"{'':<{w}}{'empty':>10}{big:>{len(big) + 4}}")
    for k, v in full.reads_ms.items():
        print(f"{k:<{w}}{empty.reads_ms.get(k, float('nan')):>10.1f}{v:>{len(big) + 4}.1f}")
    print(f"{'drain (runs/s)':<{w}}{empty.drain:>10,.0f}{full.drain:>{len(big) + 4},.0f}")
    print(f"{'start lateness p50 (ms)':<{w}}{empty.late_p50:>10.1f}{full.late_p50:>{len(big) + 4}.1f}")
    print(f"{'start lateness p99 (ms)':<{w}}{empty.late_p99:>10.1f}{full.late_p99:>{len(big) + 4}.1f}")
    for proc in full.rss_mb:
        e0, e1 = empty.rss_mb.get(proc, (float("nan"), float("nan")))
        f0, f1 = full.rss_mb[proc]
        print(f"{'RSS ' + proc + ' (MB, start → end)':<{w}}{f'{e0:.0f}→{e1:.0f}':>10}"
              f"{f'{f0:.0f}→{f1:.0f}':>{len(big) + 4}}")


async def run_scale(args: argparse.Namespace, url: str) -> None:
    if args.refill is False:  # the database holds the rows of an earlier --scale run
        full = await measure(url, args, "filled (kept from an earlier run)")
        report(Figures(), full, args)
        return
    pool = await db.create_pool(url)
    try:
        await reset(pool)
        print(f"scale mode: the empty database first, then {args.scale:,} finished runs and "
              f"{args.future:,} future tasks", flush=True)
        empty = await measure(url, args, "empty")
        await reset(pool)
        # A connection of its own: the services' statement timeout is for the services.
        filler = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
        try:
            await fill(filler, args.scale, args.future)
        finally:
            await filler.close()
        full = await measure(url, args, "filled")
    finally:
        await pool.close()
    report(empty, full, args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=int, default=0, metavar="N",
                   help="instead: reads, drain and lateness empty and with N finished runs (e.g. 10000000)")
    p.add_argument("--future", type=int, default=None, metavar="M",
                   help="future tasks to add in scale mode (default: N / 10)")
    p.add_argument("--no-refill", dest="refill", action="store_false",
                   help="scale mode: measure the rows an earlier --scale run left (no empty-database column)")


def finish_arguments(args: argparse.Namespace) -> Any:
    if args.scale and args.future is None:
        args.future = args.scale // 10
    return args
