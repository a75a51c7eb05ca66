"""Faults with real processes and real signals. Each test prints what it saw."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from skiplock.sql.embedded import EmbeddedPostgres, free_port
from tests.cluster import Cluster, Proc, running_cluster
from tests.conftest import wait_until, with_database
from tests.integration.helpers import assert_counts_exact

pytestmark = pytest.mark.e2e

LEASE = 3.0
BEAT = 0.5


@pytest.fixture
def cluster_leases() -> tuple[float, float]:
    return LEASE, BEAT


async def batch(cluster: Cluster, tasks: list[dict]) -> list[dict]:
    out: list[dict] = []
    for i in range(0, len(tasks), 1000):
        status, body = await cluster.request("POST", "/api/tasks/batch", {"tasks": tasks[i:i + 1000]})
        assert status == 201, body
        out += body["tasks"]
    return out


async def all_runs(cluster: Cluster) -> list[dict]:
    runs: list[dict] = []
    cursor = None
    while True:
        status, page = await cluster.request("GET", "/api/runs?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200
        runs += page["runs"]
        cursor = page["next_cursor"]
        if not cursor:
            return runs


async def wait_all_final(cluster: Cluster, n: int, timeout: float = 60) -> list[dict]:
    async def final() -> list[dict] | None:
        status, page = await cluster.request("GET", "/api/tasks?state=succeeded&limit=1")
        runs = await all_runs(cluster)
        done = {r["task_id"] for r in runs if r["state"] == "succeeded"}
        return runs if len(done) >= n else None

    return await wait_until(final, timeout, interval=0.25, what=f"{n} tasks to succeed")


async def stale_count(metrics_port: int) -> float:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
        m = re.search(r"^skiplock_stale_results_total (\S+)$", await r.text(), re.M)
        return float(m.group(1)) if m else 0.0


async def test_kill_9_worker_its_runs_are_rerun_elsewhere(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    victim = await cluster.worker("--import", "e2e_handlers", "--slots", "2", name="victim")
    long = await batch(cluster, [{"type": "sleep", "payload": {"s": 3}, "name": f"long-{i}"} for i in range(2)])
    await wait_until(lambda: _running(cluster, [t["id"] for t in long]), 10, what="long runs on the victim")
    await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="survivor")
    others = await batch(cluster, [{"type": "echo", "payload": {"i": i}} for i in range(20)])
    loop = asyncio.get_running_loop()
    victim.signal(signal.SIGKILL)
    killed_at = loop.time()
    for t in long:
        done = await cluster.wait_task(t["id"], timeout=30)
        assert done["state"] == "succeeded"
    recovered = loop.time() - killed_at
    for t in long:
        runs = sorted(await cluster.runs(t["id"]), key=lambda r: r["attempt"])
        assert [r["state"] for r in runs] == ["failed", "succeeded"]
        assert runs[0]["error"].startswith("worker lost")
    for t in others:
        assert len(await cluster.runs(t["id"])) == 1, "a task the dead worker never held must run once"
    await counts_are_exact(cluster)
    print(f"kill -9: long runs finished on another worker {recovered:.1f}s after the kill "
          f"(lease {LEASE}s, each run takes 3s)")


async def counts_are_exact(cluster: Cluster) -> None:
    """After the faults, the kept counts equal count(*), and /api/stats shows them."""
    conn = await asyncpg.connect(cluster.db_url)
    try:
        await assert_counts_exact(conn)
        total = await conn.fetchval("SELECT count(*) FROM skiplock_all_runs")
    finally:
        await conn.close()
    status, stats = await cluster.request("GET", "/api/stats")
    assert status == 200 and sum(stats["runs"].values()) == total


async def _held(cluster: Cluster, worker: str, n: int) -> bool:
    """The worker's heartbeats report n runs: it has them (not just the database)."""
    status, body = await cluster.request("GET", "/api/workers")
    return any(w["name"] == worker and w["running"] == n for w in body["workers"])


async def _running(cluster: Cluster, ids: list[str]) -> bool:
    for i in ids:
        status, t = await cluster.request("GET", f"/api/tasks/{i}")
        if t["state"] != "running":
            return False
    return True


async def test_sigstop_worker_late_results_are_stale(cluster: Cluster) -> None:
    await cluster.api()
    mport = free_port()
    await cluster.coordinator(["--metrics-addr", f"127.0.0.1:{mport}"])
    frozen = await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="frozen")
    tasks = await batch(cluster, [{"type": "sleep", "payload": {"s": 1.5}} for _ in range(4)])
    await wait_until(lambda: _running(cluster, [t["id"] for t in tasks]), 10, what="runs on the frozen worker")
    frozen.signal(signal.SIGSTOP)
    await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="healthy")
    for t in tasks:
        assert (await cluster.wait_task(t["id"], timeout=30))["state"] == "succeeded"
    frozen.signal(signal.SIGCONT)
    # The thawed worker finishes its copies (their sleep is over): each late result is
    # either rejected as stale by the coordinator, or dropped by the worker when told at
    # reconnect that it lost the lease.
    async def accounted() -> float:
        total = await stale_count(mport) + await cluster.metric(frozen, "skiplock_worker_runs_abandoned_total")
        return total if total >= len(tasks) else 0

    await wait_until(accounted, 30, interval=0.2, what="every late copy to be rejected or dropped")
    stale = await stale_count(mport)
    for t in tasks:
        runs = await cluster.runs(t["id"])
        assert Counter(r["state"] for r in runs)["succeeded"] == 1, runs
        assert any(r["error"] and r["error"].startswith("worker lost") for r in runs)
    print(f"SIGSTOP: each task has exactly one succeeded run; late results rejected as stale: {stale:g}; "
          f"thawed worker abandoned {await cluster.metric(frozen, 'skiplock_worker_runs_abandoned_total'):g} runs")


async def test_kill_9_one_of_two_coordinators_while_work_flows(cluster: Cluster) -> None:
    await cluster.api()
    a = await cluster.coordinator()
    b = await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers", "--slots", "8", name="w1", coordinators=[a, b])
    await cluster.worker("--import", "e2e_handlers", "--slots", "8", name="w2", coordinators=[b, a])
    tasks = await batch(cluster, [{"type": "sleep", "payload": {"s": 0.05}} for _ in range(400)])
    await wait_until(lambda: _some_done(cluster, 50), 20, what="work to flow")
    a.signal(signal.SIGKILL)
    runs = await wait_all_final(cluster, len(tasks), timeout=60)
    per_task = Counter(r["task_id"] for r in runs if r["state"] == "succeeded")
    assert len(per_task) == len(tasks) and set(per_task.values()) == {1}
    extra = len(runs) - len(tasks)
    assert b.alive()
    await counts_are_exact(cluster)
    print(f"kill -9 coordinator: {len(tasks)} tasks all succeeded once; {extra} extra runs (leases lost with it)")


async def _some_done(cluster: Cluster, n: int) -> bool:
    status, page = await cluster.request("GET", f"/api/runs?state=succeeded&limit={n}")
    return len(page["runs"]) >= n


async def _runs_in_flight_via_first_of_two(cluster: Cluster, n: int, seconds: float) -> tuple[Proc, Proc, list[dict]]:
    """API, coordinators A and B, worker "w" on A (then B), and n sleep runs it holds."""
    await cluster.api()
    a = await cluster.coordinator()
    b = await cluster.coordinator()
    w = await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="w", coordinators=[a, b])
    tasks = await batch(cluster, [{"type": "sleep", "payload": {"s": seconds}} for _ in range(n)])
    # The worker's heartbeats must report them: claimed in the database is not enough (the
    # coordinator might not have sent them yet).
    await wait_until(lambda: _held(cluster, "w", n), 10, what="the worker to hold the runs")
    return a, w, tasks


async def _each_ran_once(cluster: Cluster, tasks: list[dict]) -> None:
    for t in tasks:
        assert (await cluster.wait_task(t["id"], timeout=20))["state"] == "succeeded"
        runs = await cluster.runs(t["id"])
        assert [r["state"] for r in runs] == ["succeeded"], \
            ("a run kept across failover is not retried", [(r["attempt"], r["error"]) for r in runs])


async def test_failover_keeps_runs_in_flight(cluster: Cluster) -> None:
    a, w, tasks = await _runs_in_flight_via_first_of_two(cluster, 4, 2)
    a.signal(signal.SIGKILL)
    await _each_ran_once(cluster, tasks)
    assert await cluster.metric(w, "skiplock_worker_sessions_total") == 2
    print("failover: the worker moved to the other coordinator mid-run and kept all 4 runs (one run each)")


async def test_frozen_coordinator_is_detected_by_keepalive_and_runs_move(db_url: str) -> None:
    # A SIGSTOPped coordinator keeps its TCP connections open but answers nothing: the
    # half-open case. Leases are longer than keepalive's detection (5 s + 5 s), so the
    # worker should move to the other coordinator and keep its runs.
    async with running_cluster(db_url, lease_s=20, heartbeat_s=1) as cluster:
        a, w, tasks = await _runs_in_flight_via_first_of_two(cluster, 3, 6)
        loop = asyncio.get_running_loop()
        frozen_at = loop.time()
        a.signal(signal.SIGSTOP)
        try:
            async def on_b() -> bool:
                return await cluster.metric(w, "skiplock_worker_sessions_total") >= 2

            await wait_until(on_b, 30, interval=0.1, what="the worker to notice and move to B")
            moved = loop.time() - frozen_at
            await _each_ran_once(cluster, tasks)
        finally:
            a.signal(signal.SIGCONT)
        print(f"frozen coordinator: the worker moved to the other after {moved:.1f}s and kept its runs")


async def test_sigterm_coordinator_sends_its_workers_on(cluster: Cluster) -> None:
    a, w, tasks = await _runs_in_flight_via_first_of_two(cluster, 3, 1.5)
    a.signal(signal.SIGTERM)
    assert a.proc is not None and await asyncio.to_thread(a.proc.wait, 20) == 0, a.output()
    assert await cluster.metric(w, "skiplock_worker_coordinator_drains_total") == 1
    await _each_ran_once(cluster, tasks)
    print("SIGTERM coordinator: it exited 0, its worker moved on and kept its runs")


async def test_poison_task_is_quarantined_not_crash_looping_the_fleet(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    workers = [await cluster.worker("--import", "e2e_handlers", "--slots", "2", name=f"w{i}") for i in range(4)]
    status, poison = await cluster.request("POST", "/api/tasks", {"type": "poison", "max_attempts": 10,
                                                                   "retry_backoff_s": 0})
    assert status == 201

    async def parked() -> dict | None:
        _, t = await cluster.request("GET", f"/api/tasks/{poison['id']}")
        return t if t["quarantined"] else None

    task = await wait_until(parked, 8 * LEASE + 10, interval=0.2, what="the poison task to be quarantined")
    assert task["state"] == "paused" and task["lost_runs"] == 3
    dead = [w.name for w in workers if not w.alive()]
    assert len(dead) == 3, f"exactly three workers died, then the task was parked: {dead}"
    runs = await cluster.runs(poison["id"])
    assert [r["state"] for r in runs].count("failed") == 3 and all("worker lost" in r["error"] for r in runs
                                                                   if r["state"] == "failed")
    [healthy] = await batch(cluster, [{"type": "echo"}])
    assert (await cluster.wait_task(healthy["id"]))["state"] == "succeeded"
    print(f"poison task: parked after 3 lost runs; {len(dead)} workers died, the fourth kept working")


async def test_sigterm_worker_finishes_its_run_before_exit(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    w = await cluster.worker("--import", "e2e_handlers", name="leaving")
    [task] = await batch(cluster, [{"type": "sleep", "payload": {"s": 1.5}}])
    await wait_until(lambda: _running(cluster, [task["id"]]), 10, what="the run to start")
    w.signal(signal.SIGTERM)
    assert w.proc is not None
    code = await asyncio.to_thread(w.proc.wait, 20)
    assert code == 0, w.output()
    done = await cluster.wait_task(task["id"], timeout=5)
    runs = await cluster.runs(task["id"])
    assert done["state"] == "succeeded" and len(runs) == 1
    print("SIGTERM mid-run: the run finished and was reported before the worker exited")


async def test_sigterm_past_the_grace_hands_the_run_back_without_using_an_attempt(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    leaving = await cluster.worker("--import", "e2e_handlers", "--drain-grace-s", "0.5", name="leaving")
    [task] = await batch(cluster, [{"type": "sleep", "payload": {"s": 2}, "max_attempts": 1}])
    await wait_until(lambda: _running(cluster, [task["id"]]), 10, what="the run to start")
    await cluster.worker("--import", "e2e_handlers", name="staying")
    leaving.signal(signal.SIGTERM)
    assert leaving.proc is not None and await asyncio.to_thread(leaving.proc.wait, 20) == 0
    done = await cluster.wait_task(task["id"], timeout=20)
    runs = sorted(await cluster.runs(task["id"]), key=lambda r: r["attempt"])
    assert done["state"] == "succeeded"
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "failed"), (2, "succeeded")]
    assert runs[0]["error"].startswith("released")
    print("SIGTERM past the grace: the run was handed back and finished elsewhere (max_attempts 1)")


async def test_worker_cut_off_stops_its_run_before_the_lease_runs_out(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.api()
    coord = await cluster.coordinator()
    port = coord.port
    w = await cluster.worker("--import", "e2e_handlers", name="cut-off")
    mark = tmp_path / "stopped-at"
    [task] = await batch(cluster, [{"type": "sleep.mark", "payload": {"s": 8, "mark": str(mark)}}])
    await wait_until(lambda: _running(cluster, [task["id"]]), 10, what="the run to start")
    coord.signal(signal.SIGKILL)
    await wait_until(mark.exists, 3 * LEASE + 5, what="the worker to stop its copy")
    conn = await asyncpg.connect(cluster.db_url)
    try:
        lease_end = await conn.fetchval("SELECT extract(epoch FROM lease_expires_at) FROM skiplock_runs "
                                        "WHERE task_id = $1 AND attempt = 1", uuid.UUID(task["id"]))
    finally:
        await conn.close()
    stopped = float(mark.read_text())
    print(f"cut off: the worker stopped its copy {float(lease_end) - stopped:.2f}s before the lease ran out")
    # The copy a reaper may start elsewhere only starts after the lease ran out: no overlap.
    assert stopped < float(lease_end)
    await cluster.coordinator(port=port)
    done = await cluster.wait_task(task["id"], timeout=30)
    runs = sorted(await cluster.runs(task["id"]), key=lambda r: r["attempt"])
    assert done["state"] == "succeeded"
    assert [r["state"] for r in runs] == ["failed", "succeeded"] and runs[0]["error"].startswith("worker lost")
    assert w.alive()


async def test_two_thousand_tasks_two_coordinators_two_workers_exactly_once(cluster: Cluster) -> None:
    await cluster.api()
    a = await cluster.coordinator()
    b = await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers", "--slots", "50", name="w1", coordinators=[a])
    await cluster.worker("--import", "e2e_handlers", "--slots", "50", name="w2", coordinators=[b])
    loop = asyncio.get_running_loop()
    began = loop.time()
    tasks = await batch(cluster, [{"type": "noop"} for _ in range(2000)])
    runs = await wait_all_final(cluster, 2000, timeout=120)
    took = loop.time() - began
    assert len(runs) == 2000, "no faults: exactly one run per task"
    assert Counter(r["state"] for r in runs) == {"succeeded": 2000}
    assert len({r["task_id"] for r in runs}) == len(tasks)
    by_worker = Counter(r["worker_id"] for r in runs)
    print(f"2,000 tasks through 2 coordinators / 2 workers in {took:.1f}s, exactly one run each; "
          f"per worker {sorted(by_worker.values())}")
    assert len(by_worker) == 2


async def test_postgres_restart_while_work_flows(embedded_pg_factory: list[EmbeddedPostgres], tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "restart" / "data", port=free_port())
    embedded_pg_factory.append(server)
    url = with_database(server.start(), "postgres")
    async with running_cluster(url, LEASE, BEAT) as c:
        api = await c.api()
        coord = await c.coordinator()
        worker = await c.worker("--import", "e2e_handlers", "--slots", "8", name="w")
        first = await batch(c, [{"type": "sleep", "payload": {"s": 0.1}} for _ in range(100)])
        await asyncio.to_thread(server.stop)
        status, problem = await c.request("POST", "/api/tasks", {"type": "noop"})
        assert status == 503 and problem["title"] == "Database unavailable"
        status, health = await c.request("GET", "/api/healthz")
        assert status == 503 and health["database"].startswith("unreachable")
        await asyncio.sleep(2)  # an outage of a few seconds: the point is that time passes
        await asyncio.to_thread(server.start)
        second = await batch(c, [{"type": "echo", "payload": {"i": i}} for i in range(100)])
        runs = await wait_all_final(c, len(first) + len(second), timeout=90)
        done = {r["task_id"] for r in runs if r["state"] == "succeeded"}
        assert {t["id"] for t in first + second} <= done
        assert api.alive() and coord.alive() and worker.alive(), "no service process may exit"
        print(f"PostgreSQL restart: all {len(done)} tasks completed, {len(runs) - len(done)} extra runs, "
              "api/coordinator/worker stayed up")
