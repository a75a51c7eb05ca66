"""Which worker gets what: only advertised types and queues; several workers share the load."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.cluster import Cluster
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e




async def batch(cluster: Cluster, tasks: list[dict]) -> list[dict]:
    status, body = await cluster.request("POST", "/api/tasks/batch", {"tasks": tasks})
    assert status == 201, body
    return body["tasks"]


async def test_worker_receives_only_advertised_types_and_queues(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers", "--types", "echo", name="echo-only")
    await cluster.worker("--import", "e2e_handlers", "--types", "noop,echo", "--queues", "bulk", name="bulk-only")
    tasks = await batch(cluster, [{"type": "echo", "payload": {"i": i}} for i in range(10)]
                        + [{"type": "noop", "queue": "default"}, {"type": "noop", "queue": "bulk"}])
    for t in tasks[:10]:
        assert (await cluster.wait_task(t["id"]))["state"] == "succeeded"
    bulk = await cluster.wait_task(tasks[11]["id"])
    status, workers = await cluster.request("GET", "/api/workers")
    ids = {w["name"]: w["id"] for w in workers["workers"]}
    assert bulk["last_run"]["worker_id"] == ids["bulk-only"]
    by = Counter([(await cluster.wait_task(t["id"]))["last_run"]["worker_id"] for t in tasks[:10]])
    assert set(by) == {ids["echo-only"]}, "default-queue runs must not go to the bulk-only worker"
    status, noop = await cluster.request("GET", f"/api/tasks/{tasks[10]['id']}")
    assert noop["state"] == "scheduled" and noop["last_run"]["state"] == "pending", "no worker takes noop on default"


async def test_two_workers_share_the_load(cluster: Cluster) -> None:
    import aiohttp

    from skiplock.sql.embedded import free_port

    await cluster.api()
    await cluster.coordinator()
    mport = free_port()
    await cluster.worker("--import", "e2e_handlers", "--slots", "4", "--metrics-addr", f"127.0.0.1:{mport}",
                         name="w-a")
    await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="w-b")
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{mport}/metrics") as r:
        text = await r.text()
    assert "skiplock_worker_slots 4.0" in text and "skiplock_worker_connected 1.0" in text
    tasks = await batch(cluster, [{"type": "sleep", "payload": {"s": 0.2}} for _ in range(24)])
    done = [await cluster.wait_task(t["id"]) for t in tasks]
    assert {d["state"] for d in done} == {"succeeded"}
    per_worker = Counter(d["last_run"]["worker_id"] for d in done)
    print(f"runs per worker: {dict(per_worker)}")
    assert len(per_worker) == 2 and min(per_worker.values()) >= 6


async def test_drain_worker_over_admin_moves_work_to_the_others(cluster: Cluster) -> None:
    import json
    import os
    import shutil
    import subprocess
    from pathlib import Path

    await cluster.api()
    coord = await cluster.coordinator()
    drained = await cluster.worker("--import", "e2e_handlers", name="drained")
    await cluster.worker("--import", "e2e_handlers", name="kept")
    status, body = await cluster.request("GET", "/api/workers")
    ids = {w["name"]: w["id"] for w in body["workers"]}
    grpcurl = shutil.which("grpcurl") or str(Path(os.sys.executable).parent / "grpcurl")
    out = subprocess.run([grpcurl, "-plaintext", "-d", json.dumps({"worker_id": ids["drained"]}),
                          f"127.0.0.1:{coord.port}", "skiplock.v1.Admin/DrainWorker"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == {"found": True}, out.stderr

    async def flagged() -> bool:
        _, body = await cluster.request("GET", "/api/workers")
        return {w["name"]: w["draining"] for w in body["workers"]} == {"drained": True, "kept": False}

    await wait_until(flagged, 10, what="the drained worker to report draining")
    tasks = await batch(cluster, [{"type": "echo"} for _ in range(20)])
    done = [await cluster.wait_task(t["id"]) for t in tasks]
    assert {d["last_run"]["worker_id"] for d in done} == {ids["kept"]}
    assert drained.alive() and await cluster.metric(drained, "skiplock_worker_coordinator_drains_total") == 0, \
        "a drained worker stays connected; it just takes no new runs"
