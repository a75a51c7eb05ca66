"""Network faults between skiplock and PostgreSQL, made with a TCP proxy the test cuts: the
path goes silent both ways (a partition or a frozen server), neither end is told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from tests.cluster import running_cluster
from tests.conftest import wait_until
from tests.e2e.test_faults import _each_ran_once, _held, batch
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
async def db_proxy(db_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    parts = urlsplit(db_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    user = f"{parts.username}@" if parts.username else ""
    yield proxy, urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
    await proxy.close()


async def test_coordinator_cut_off_from_its_database_sends_its_workers_on(
        db_url: str, db_proxy: tuple[TcpProxy, str]) -> None:
    proxy, via_proxy = db_proxy
    async with running_cluster(db_url, lease_s=6, heartbeat_s=1) as cluster:
        await cluster.api()
        a = await cluster.coordinator(env={"SKIPLOCK_DATABASE_URL": via_proxy})
        b = await cluster.coordinator()
        await cluster.worker("--import", "e2e_handlers", "--slots", "6", name="w", coordinators=[a, b])
        tasks = await batch(cluster, [{"type": "sleep", "payload": {"s": 8}} for _ in range(6)])
        await wait_until(lambda: _held(cluster, "w", 6), 15, what="the worker to hold the runs on A")
        _, workers = await cluster.request("GET", "/api/workers")
        [on_a] = workers["workers"]
        cut_at = time.monotonic()
        proxy.cut()

        async def moved() -> bool:
            _, body = await cluster.request("GET", "/api/workers")
            return any(x["coordinator"] != on_a["coordinator"] for x in body["workers"])

        await wait_until(moved, 20, interval=0.1, what="the worker to move to coordinator B")
        print(f"coordinator cut off: its worker was on B {time.monotonic() - cut_at:.1f}s after the cut (lease 6 s)")
        # Longer than the lease: had A kept the worker, B's reaper would have re-run the work.
        await _each_ran_once(cluster, tasks)
        assert a.alive() and b.alive(), "losing the database is an outage, not a crash"
        proxy.heal()
        # Back in service: a second worker given only A connects and gets work again.
        await cluster.worker("--import", "e2e_handlers", name="a-only", coordinators=[a])
        more = await batch(cluster, [{"type": "echo"} for _ in range(4)])
        for t in more:
            assert (await cluster.wait_task(t["id"]))["state"] == "succeeded"


async def _timed(session: aiohttp.ClientSession, method: str, url: str, **kw: object) -> tuple[int, float, dict]:
    began = time.monotonic()
    async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=15), **kw) as r:  # type: ignore[arg-type]
        body = await r.json(content_type=None)
        return r.status, time.monotonic() - began, {"retry_after": r.headers.get("Retry-After"), **body}


async def test_requests_answer_503_through_a_database_freeze_and_recover(
        db_url: str, db_proxy: tuple[TcpProxy, str]) -> None:
    proxy, via_proxy = db_proxy
    async with running_cluster(db_url) as cluster:
        await cluster.api(env={"SKIPLOCK_DATABASE_URL": via_proxy})
        base = cluster.api_url
        async with aiohttp.ClientSession() as s:
            assert (await _timed(s, "POST", f"{base}/api/tasks", json={"type": "echo"}))[0] == 201
            proxy.cut()
            # Requests already stuck on the frozen path, then health checks beside them.
            stuck = [asyncio.create_task(_timed(s, "POST", f"{base}/api/tasks", json={"type": "echo"}))
                     for _ in range(12)]
            health = await _timed(s, "GET", f"{base}/api/healthz")
            listed = await _timed(s, "GET", f"{base}/api/tasks")
            answers = await asyncio.gather(*stuck)
            print(f"frozen database: healthz {health[0]} in {health[1]:.2f}s; list {listed[0]} in {listed[1]:.2f}s; "
                  f"creates {sorted({a[0] for a in answers})} in at most {max(a[1] for a in answers):.2f}s")
            assert health[0] == 503 and health[2]["retry_after"]
            assert listed[0] == 503 and listed[2]["retry_after"] and listed[2]["title"] == "Database unavailable"
            assert {a[0] for a in answers} == {503}
            proxy.heal()

            async def healthy() -> bool:
                return (await _timed(s, "GET", f"{base}/api/healthz"))[0] == 200

            await wait_until(healthy, 15, what="healthz to recover")
            # Connections abandoned in the freeze were discarded: every request works again.
            results = await asyncio.gather(*(_timed(s, "POST", f"{base}/api/tasks", json={"type": "echo"})
                                             for _ in range(12)))
            assert {r[0] for r in results} == {201}
