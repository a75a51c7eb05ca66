"""pgqueuer (from PyPI, the `bench` extra) on the same PostgreSQL, in the same run: n no-op
jobs enqueued by its own batch insert, drained by one `pgq run` process with its defaults
(batch_size 10). The rate is from its first job's start to the moment its queue table is
empty (every job acknowledged), as skiplock's is from the runs' due time to the last result
written."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]


def available() -> bool:
    try:
        import pgqueuer  # noqa: F401
    except ImportError:
        return False
    return True


def _pgq(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueuer", "--pg-dsn", url, *args], capture_output=True,
                          text=True, timeout=120, env=env)


async def drain(url: str, n: int) -> float:
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    await asyncio.to_thread(_pgq, url, "uninstall")
    out = await asyncio.to_thread(_pgq, url, "install")
    if out.returncode != 0:
        raise SystemExit(f"pgq install failed: {out.stderr[-2000:]}")
    conn = await asyncpg.connect(url)
    try:
        q = Queries(AsyncpgDriver(conn))
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            await q.enqueue(["bench_noop"] * k, [None] * k, [0] * k)
        stamp = Path(tempfile.mkstemp(prefix="skiplock-bench-pgq-")[1])
        stamp.write_text("")
        env = {**os.environ, "PGDSN": url, "SKIPLOCK_BENCH_STAMP": str(stamp),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        consumer = subprocess.Popen([sys.executable, "-m", "pgqueuer", "--pg-dsn", url, "run",
                                     "bench.pgq_consumer:create"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'bench_noop'"):
                if consumer.poll() is not None:
                    raise SystemExit(f"pgq run exited: {consumer.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    raise SystemExit("pgqueuer did not drain in 600 s")
                await asyncio.sleep(0.01)
            ended = time.time()
            first = float(stamp.read_text())
        finally:
            if consumer.poll() is None:
                os.killpg(consumer.pid, signal.SIGINT)
            try:
                consumer.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(consumer.pid, signal.SIGKILL)
                consumer.wait()
            stamp.unlink(missing_ok=True)
        return n / (ended - first)
    finally:
        await conn.close()
        await asyncio.to_thread(_pgq, url, "uninstall")


async def enqueue_rate(url: str, n: int) -> float:
    """pgqueuer's own batch insert (one unnest statement per 1,000 jobs), inside one
    transaction, as skiplock's enqueue is measured."""
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    await asyncio.to_thread(_pgq, url, "uninstall")
    await asyncio.to_thread(_pgq, url, "install")
    conn = await asyncpg.connect(url)
    try:
        q = Queries(AsyncpgDriver(conn))
        t0 = time.perf_counter()
        async with conn.transaction():
            for i in range(0, n, 1000):
                k = min(1000, n - i)
                await q.enqueue(["bench_other"] * k, [None] * k, [0] * k)
        rate = n / (time.perf_counter() - t0)
        await conn.execute("DELETE FROM pgqueuer")
        return rate
    finally:
        await conn.close()
