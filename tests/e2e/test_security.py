"""Who may talk to a coordinator, and what an http task may reach."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e




async def test_worker_without_the_token_is_refused_and_gets_no_runs(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator(env={"SKIPLOCK_WORKER_TOKEN": "s3cret"})
    intruder = await cluster.worker("--import", "e2e_handlers", name="intruder", wait=False,
                                    env={"SKIPLOCK_WORKER_TOKEN": "wrong"})
    anonymous = await cluster.worker("--import", "e2e_handlers", name="anonymous", wait=False)
    for w in (intruder, anonymous):
        await wait_until(lambda w=w: cluster.metric(w, "skiplock_worker_session_errors_total", code="UNAUTHENTICATED"),
                         20, what=f"{w.name} to be refused")
        assert await cluster.metric(w, "skiplock_worker_sessions_total") == 0
    status, task = await cluster.request("POST", "/api/tasks", {"type": "echo"})
    assert status == 201
    await cluster.worker("--import", "e2e_handlers", name="member", env={"SKIPLOCK_WORKER_TOKEN": "s3cret"})
    done = await cluster.wait_task(task["id"])
    status, workers = await cluster.request("GET", "/api/workers")
    assert [w["name"] for w in workers["workers"]] == ["member"]
    assert done["last_run"]["worker_id"] == workers["workers"][0]["id"]


def _grpcurl(port: int, method: str, token: str | None = None, body: str = "{}") -> subprocess.CompletedProcess[str]:
    grpcurl = shutil.which("grpcurl") or str(Path(os.sys.executable).parent / "grpcurl")
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    return subprocess.run([grpcurl, "-plaintext", *auth, "-d", body, f"127.0.0.1:{port}", method],
                          capture_output=True, text=True, timeout=30)


async def test_admin_rpcs_need_a_token_when_the_cluster_has_one(cluster: Cluster) -> None:
    await cluster.api()
    coord = await cluster.coordinator(env={"SKIPLOCK_WORKER_TOKEN": "worker-s3cret",
                                           "SKIPLOCK_ADMIN_TOKEN": "admin-s3cret"})
    await cluster.worker("--import", "e2e_handlers", name="member", env={"SKIPLOCK_WORKER_TOKEN": "worker-s3cret"})
    _, body = await cluster.request("GET", "/api/workers")
    drain = json.dumps({"worker_id": body["workers"][0]["id"]})
    for token in (None, "wrong", "worker-s3cret"):  # the worker token is not the admin token
        for method in ("ListWorkers", "ClusterStatus", "DrainWorker"):
            out = await asyncio.to_thread(_grpcurl, coord.port, f"skiplock.v1.Admin/{method}", token,
                                          drain if method == "DrainWorker" else "{}")
            assert out.returncode != 0 and "Unauthenticated" in out.stderr, (method, token, out.stdout)
    _, body = await cluster.request("GET", "/api/workers")
    assert body["workers"][0]["draining"] is False, "no unauthenticated call drained the worker"
    ok = await asyncio.to_thread(_grpcurl, coord.port, "skiplock.v1.Admin/ListWorkers", "admin-s3cret")
    assert [w["name"] for w in json.loads(ok.stdout)["workers"]] == ["member"]
    # Discovery and health stay open: they reveal nothing and probes need them.
    listed = await asyncio.to_thread(_grpcurl, coord.port, "list")
    assert "skiplock.v1.Admin" in listed.stdout.split()
    health = await asyncio.to_thread(_grpcurl, coord.port, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}


async def test_secrets_are_resolved_on_the_worker_and_never_stored_or_returned(cluster: Cluster, webhook) -> None:  # type: ignore[no-untyped-def]
    import asyncpg

    await cluster.api()
    await cluster.coordinator()
    await cluster.worker(name="w", env={"SKIPLOCK_SECRET_PARTNER_TOKEN": "tok-live-8c1f"})
    status, task = await cluster.request("POST", "/api/tasks", {"type": "http", "payload": {
        "url": webhook.url("/with-secret"), "headers": {"Authorization": {"secret": "PARTNER_TOKEN"}},
        "json": {"token": {"secret": "PARTNER_TOKEN"}}}})
    assert status == 201
    assert (await cluster.wait_task(task["id"]))["state"] == "succeeded"
    [hit] = webhook.on("/with-secret")
    assert hit.headers["Authorization"] == "tok-live-8c1f" and json.loads(hit.body) == {"token": "tok-live-8c1f"}
    conn = await asyncpg.connect(cluster.db_url)
    try:
        stored = await conn.fetchval("SELECT payload::text FROM skiplock_tasks WHERE id = $1::uuid", task["id"])
    finally:
        await conn.close()
    assert "tok-live-8c1f" not in stored
    _, read = await cluster.request("GET", f"/api/tasks/{task['id']}")
    assert read["payload"]["headers"]["Authorization"] == {"secret": "PARTNER_TOKEN"}
    # A credential given in clear is sent as given but shown as *** by every read.
    status, clear = await cluster.request("POST", "/api/tasks", {"type": "http", "payload": {
        "url": webhook.url("/in-clear"), "headers": {"Authorization": "Bearer clear-value", "X-Trace": "t1"}}})
    assert status == 201 and clear["payload"]["headers"] == {"Authorization": "***", "X-Trace": "t1"}
    await cluster.wait_task(clear["id"])
    assert webhook.on("/in-clear")[0].headers["Authorization"] == "Bearer clear-value"
    _, listed = await cluster.request("GET", "/api/tasks?type=http")
    assert all("clear-value" not in json.dumps(t) for t in listed["tasks"])
    # A secret this worker does not have fails the run for good, saying which.
    _, missing = await cluster.request("POST", "/api/tasks", {"type": "http", "payload": {
        "url": webhook.url("/missing"), "headers": {"X-Key": {"secret": "NOT_SET_HERE"}}}})
    done = await cluster.wait_task(missing["id"])
    assert done["state"] == "failed" and "SKIPLOCK_SECRET_NOT_SET_HERE" in done["last_run"]["error"]
    assert len(await cluster.runs(missing["id"])) == 1 and webhook.on("/missing") == []
