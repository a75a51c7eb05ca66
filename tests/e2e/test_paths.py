"""Each task type end to end through real processes: api, coordinator, worker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.cluster import Cluster, running_cluster
from tests.conftest import wait_until
from tests.webhook import WebhookTarget

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def cluster(module_db_url: str) -> AsyncIterator[Cluster]:
    async with running_cluster(module_db_url) as c:
        await c.api()
        await c.coordinator()
        await c.worker("--import", "e2e_handlers", "--allow-shell", "--slots", "8", name="main-worker")
        yield c


async def create(cluster: Cluster, body: dict) -> dict:
    status, task = await cluster.request("POST", "/api/tasks", body)
    assert status == 201, task
    return task


async def test_http_task_calls_the_webhook(cluster: Cluster, webhook: WebhookTarget) -> None:
    task = await create(cluster, {"type": "http", "payload": {
        "url": webhook.url("/hook"), "method": "PUT", "headers": {"X-Token": "t1"}, "json": {"order": 42}}})
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "succeeded", done
    [hit] = webhook.on("/hook")
    assert hit.method == "PUT" and hit.headers["X-Token"] == "t1" and json.loads(hit.body) == {"order": 42}
    assert hit.headers["X-Skiplock-Task-Id"] == task["id"]
    result = done["last_run"]["result"]
    assert result["status_code"] == 200 and json.loads(result["body"])["path"] == "/hook"


async def test_webhook_that_fails_twice_then_succeeds_gives_three_runs(cluster: Cluster, webhook: WebhookTarget) -> None:
    webhook.scripts["/flaky"] = [500, 503]
    task = await create(cluster, {"type": "http", "payload": {"url": webhook.url("/flaky")},
                                  "max_attempts": 5, "retry_backoff_s": 0.05})
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "succeeded"
    runs = sorted(await cluster.runs(task["id"]), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["state"]) for r in runs] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert runs[0]["error"] == "HTTP 500" and runs[0]["result"]["status_code"] == 500
    hits = webhook.on("/flaky")
    assert len(hits) == 3
    assert len({h.headers["Idempotency-Key"] for h in hits}) == 1, "one key for every attempt at one fire time"
    assert hits[0].headers["Idempotency-Key"].startswith(task["id"] + "/")
    assert [h.headers["X-Skiplock-Attempt"] for h in hits] == ["1", "2", "3"]
    assert len({h.headers["X-Skiplock-Run-Id"] for h in hits}) == 3


async def test_http_4xx_is_not_retried(cluster: Cluster, webhook: WebhookTarget) -> None:
    webhook.scripts["/gone"] = [404]
    task = await create(cluster, {"type": "http", "payload": {"url": webhook.url("/gone")}, "max_attempts": 3})
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "failed" and len(await cluster.runs(task["id"])) == 1


async def test_http_to_a_metadata_address_is_refused(cluster: Cluster) -> None:
    task = await create(cluster, {"type": "http", "payload": {"url": "http://169.254.169.254/latest/meta-data"},
                                  "max_attempts": 3})
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "failed"
    assert "refused" in done["last_run"]["error"] and "link-local" in done["last_run"]["error"]
    assert len(await cluster.runs(task["id"])) == 1, "a refused address is not retried"


async def test_redirect_to_a_private_address_is_refused(cluster: Cluster, webhook: WebhookTarget) -> None:
    webhook.redirects["/bounce"] = "http://169.254.169.254/latest/meta-data/"
    webhook.redirects["/fine"] = webhook.url("/landing")
    bad = await create(cluster, {"type": "http", "payload": {"url": webhook.url("/bounce"), "method": "GET"}})
    good = await create(cluster, {"type": "http", "payload": {"url": webhook.url("/fine"), "method": "GET"}})
    b = await cluster.wait_task(bad["id"])
    assert b["state"] == "failed" and "refused" in b["last_run"]["error"] and "169.254.169.254" in b["last_run"]["error"]
    g = await cluster.wait_task(good["id"])
    assert g["state"] == "succeeded" and len(webhook.on("/landing")) == 1


async def test_shell_task_argv_and_string(cluster: Cluster) -> None:
    argv = await create(cluster, {"type": "shell", "payload": {"command": ["printf", "%s-%s", "a", "b"]}})
    sh = await create(cluster, {"type": "shell", "payload": {
        "command": "echo $GREETING from $(pwd); echo oops >&2; exit 3", "env": {"GREETING": "hi"}, "cwd": "/tmp"},
        "max_attempts": 1})
    a = await cluster.wait_task(argv["id"])
    assert a["state"] == "succeeded" and a["last_run"]["result"]["stdout"] == "a-b"
    s = await cluster.wait_task(sh["id"])
    assert s["state"] == "failed" and s["last_run"]["error"] == "exit code 3"
    assert s["last_run"]["result"] == {"exit_code": 3, "stdout": "hi from /tmp\n", "stderr": "oops\n",
                                       "stdout_truncated": False, "stderr_truncated": False}


async def test_shell_output_is_capped(cluster: Cluster) -> None:
    task = await create(cluster, {"type": "shell", "payload": {"command": "head -c 200000 /dev/zero | tr '\\0' x"}})
    done = await cluster.wait_task(task["id"])
    result = done["last_run"]["result"]
    assert len(result["stdout"]) == 64 * 1024 and result["stdout_truncated"] is True


async def test_shell_timeout_kills_the_process_group(cluster: Cluster, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = await create(cluster, {"type": "shell", "timeout_s": 1, "max_attempts": 1, "payload": {
        "command": f"sleep 60 & echo $! > {pidfile}; wait"}})
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "failed" and "timed out" in done["last_run"]["error"]
    child = int(pidfile.read_text())
    await wait_until(lambda: not _alive(child), 5, what="the backgrounded child to be killed too")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except FileNotFoundError:
        return False


async def test_cancel_stops_a_running_shell_run_within_seconds(cluster: Cluster, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = await create(cluster, {"type": "shell", "payload": {"command": f"echo $$ > {pidfile}; exec sleep 30"}})
    await cluster.wait_task(task["id"], states=("running",))
    await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="the shell to start")
    pid = int(pidfile.read_text())
    loop = asyncio.get_running_loop()
    began = loop.time()
    status, cancelled = await cluster.request("DELETE", f"/api/tasks/{task['id']}")
    assert status == 200 and cancelled["state"] == "cancelled"

    async def run_cancelled() -> bool:
        runs = await cluster.runs(task["id"])
        return runs[0]["state"] == "cancelled"

    await wait_until(run_cancelled, 10, what="the run to end cancelled")
    took = loop.time() - began
    await wait_until(lambda: not _alive(pid), 5, what="the sleep process to be gone")
    print(f"cancel of a running shell run took {took:.2f}s")
    assert (await cluster.runs(task["id"]))[0]["finished_at"] is not None


async def test_custom_handlers_async_sync_and_non_retryable(cluster: Cluster) -> None:
    echo = await create(cluster, {"type": "echo", "payload": {"to": "a@b.c"}})
    add = await create(cluster, {"type": "sync.add", "payload": {"a": 2, "b": 40}})
    hard = await create(cluster, {"type": "fail.hard", "max_attempts": 5})
    until = await create(cluster, {"type": "fail.until", "payload": {"succeed_on": 2}, "retry_backoff_s": 0.05})
    e = await cluster.wait_task(echo["id"])
    assert e["last_run"]["result"]["payload"] == {"to": "a@b.c"} and e["last_run"]["result"]["attempt"] == 1
    assert (await cluster.wait_task(add["id"]))["last_run"]["result"] == 42
    h = await cluster.wait_task(hard["id"])
    assert h["state"] == "failed" and "NonRetryableError" in h["last_run"]["error"]
    assert len(await cluster.runs(hard["id"])) == 1
    u = await cluster.wait_task(until["id"])
    assert u["state"] == "succeeded" and u["last_run"]["attempt"] == 2


async def test_huge_handler_result_is_capped_and_says_so(cluster: Cluster) -> None:
    small = await create(cluster, {"type": "big", "payload": {"n": 1000}})
    huge = await create(cluster, {"type": "big", "payload": {"n": 3_000_000}})
    assert (await cluster.wait_task(small["id"]))["last_run"]["result"] == "x" * 1000
    result = (await cluster.wait_task(huge["id"]))["last_run"]["result"]
    assert result["truncated"] is True and result["size_bytes"] == 3_000_002 and len(result["preview"]) == 64 * 1024


async def test_type_no_worker_handles_waits_pending(cluster: Cluster) -> None:
    task = await create(cluster, {"type": "nobody.handles.this", "priority": 100})
    # A later, lower-priority task that does run proves dispatch rounds went past the first.
    later = await create(cluster, {"type": "echo"})
    assert (await cluster.wait_task(later["id"]))["state"] == "succeeded"
    status, got = await cluster.request("GET", f"/api/tasks/{task['id']}")
    assert got["state"] == "scheduled" and got["last_run"]["state"] == "pending"


async def test_every_two_seconds_cron_fires_on_even_seconds(cluster: Cluster) -> None:
    task = await create(cluster, {"type": "noop", "cron": "*/2 * * * * *"})
    assert task["next_runs"] and all(datetime.fromisoformat(t).second % 2 == 0 for t in task["next_runs"])

    async def three_done() -> list[dict]:
        runs = [r for r in await cluster.runs(task["id"]) if r["state"] == "succeeded"]
        return runs if len(runs) >= 3 else []

    runs = await wait_until(three_done, 15, what="three cron runs")
    await cluster.request("DELETE", f"/api/tasks/{task['id']}")
    slots = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in runs)
    assert all(s.second % 2 == 0 and s.microsecond == 0 for s in slots)
    assert len(set(slots)) == len(slots)
    late = [(datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(r["scheduled_for"])).total_seconds()
            for r in runs]
    print(f"cron lateness (s): {late}")
    assert all(x >= 0 for x in late)


async def test_workers_endpoint_and_grpcurl(cluster: Cluster) -> None:
    status, body = await cluster.request("GET", "/api/workers")
    [w] = [w for w in body["workers"] if w["name"] == "main-worker"]
    assert {"http", "shell", "echo", "noop"} <= set(w["types"]) and w["slots"] == 8
    assert w["coordinator"] and w["last_heartbeat_at"].endswith("Z")
    grpcurl = shutil.which("grpcurl") or str(Path(os.sys.executable).parent / "grpcurl")
    target = f"127.0.0.1:{cluster.coordinators[0].port}"
    out = subprocess.run([grpcurl, "-plaintext", target, "list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert {"skiplock.v1.WorkerSession", "skiplock.v1.Admin", "grpc.health.v1.Health"} <= set(out.stdout.split())
    out = subprocess.run([grpcurl, "-plaintext", target, "skiplock.v1.Admin/ClusterStatus"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    status_doc = json.loads(out.stdout)
    assert status_doc["workers"] >= 1 and int(status_doc["runs_by_state"]["succeeded"]) >= 1
    out = subprocess.run([grpcurl, "-plaintext", target, "grpc.health.v1.Health/Check"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["status"] == "SERVING"


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.sys.executable, "-m", "skiplock", *args, "--api-url", cluster.api_url],
                          capture_output=True, text=True, timeout=30)


async def test_cli_client_creates_lists_and_reads(cluster: Cluster) -> None:
    out = await asyncio.to_thread(_cli, cluster, "tasks", "create", "--type", "echo", "--name", "from-cli",
                                  "--payload", '{"via": "cli"}', "--json")
    assert out.returncode == 0, out.stderr
    task = json.loads(out.stdout)
    done = await cluster.wait_task(task["id"])
    assert done["last_run"]["result"]["payload"] == {"via": "cli"}
    got = json.loads((await asyncio.to_thread(_cli, cluster, "tasks", "get", task["id"], "--json")).stdout)
    assert got["state"] == "succeeded"
    runs = json.loads((await asyncio.to_thread(_cli, cluster, "tasks", "runs", task["id"], "--json")).stdout)
    assert [r["state"] for r in runs["runs"]] == ["succeeded"]
    table = (await asyncio.to_thread(_cli, cluster, "tasks", "list", "--type", "echo")).stdout
    assert table.splitlines()[0].split()[:4] == ["ID", "NAME", "TYPE", "STATE"] and "from-cli" in table
    workers = json.loads((await asyncio.to_thread(_cli, cluster, "workers", "--json")).stdout)
    assert [w["name"] for w in workers["workers"]] == ["main-worker"]
    bad = await asyncio.to_thread(_cli, cluster, "tasks", "create", "--type", "http", "--payload", '{"url": "x"}')
    assert bad.returncode != 0 and "payload.url" in bad.stderr


async def test_admin_rpcs_with_grpcurl(cluster: Cluster) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(os.sys.executable).parent / "grpcurl")
    target = f"127.0.0.1:{cluster.coordinators[0].port}"
    task = await create(cluster, {"type": "echo"})
    done = await cluster.wait_task(task["id"])

    def call(method: str, body: str = "{}") -> subprocess.CompletedProcess[str]:
        return subprocess.run([grpcurl, "-plaintext", "-d", body, target, f"skiplock.v1.Admin/{method}"],
                              capture_output=True, text=True, timeout=30)

    run = json.loads((await asyncio.to_thread(call, "GetRun", json.dumps({"run_id": done["last_run"]["id"]}))).stdout)
    assert run["state"] == "succeeded" and run["task_id"] == task["id"]
    missing = await asyncio.to_thread(call, "GetRun", '{"run_id": "00000000-0000-0000-0000-000000000000"}')
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    workers = json.loads((await asyncio.to_thread(call, "ListWorkers")).stdout)["workers"]
    assert [w["name"] for w in workers] == ["main-worker"]
    nobody = await asyncio.to_thread(call, "DrainWorker", '{"worker_id": "nobody"}')
    assert nobody.returncode != 0 and "NotFound" in nobody.stderr


def _cli_json(cluster: Cluster, *args: str) -> tuple[int, dict]:
    out = _cli(cluster, *args, "--json")
    return out.returncode, json.loads(out.stdout)


async def test_cli_covers_the_task_life_cycle_runs_workers_and_errors(cluster: Cluster) -> None:
    run = asyncio.to_thread
    rc, task = await run(_cli_json, cluster, "tasks", "create", "--type", "echo", "--name", "cli-life",
                         "--payload", '{"n": 1}', "--priority", "5", "--max-attempts", "2", "--no-retry-jitter")
    assert rc == 0 and (task["priority"], task["max_attempts"], task["retry_jitter"]) == (5, 2, False)
    watched = await run(_cli, cluster, "tasks", "watch", task["id"], "--interval", "0.2", "--json")
    assert watched.returncode == 0, watched.stderr
    assert [json.loads(line)["state"] for line in watched.stdout.splitlines()][-1] == "succeeded"
    shown = await run(_cli, cluster, "tasks", "get", task["id"])
    assert shown.returncode == 0 and "attempt 1 succeeded" in shown.stdout and '"n": 1' in shown.stdout
    rc, cron = await run(_cli_json, cluster, "tasks", "create", "--type", "echo", "--cron", "0 9 * * *",
                         "--timezone", "Europe/Berlin")
    assert rc == 0 and len(cron["next_runs"]) == 5
    for verb, state in (("pause", "paused"), ("resume", "scheduled")):
        rc, t = await run(_cli_json, cluster, "tasks", verb, cron["id"])
        assert (rc, t["state"]) == (0, state)
    rc, t = await run(_cli_json, cluster, "tasks", "update", cron["id"], "--cron", "30 6 * * *", "--priority", "9")
    assert rc == 0 and (t["cron"], t["priority"]) == ("30 6 * * *", 9)
    rc, triggered = await run(_cli_json, cluster, "tasks", "trigger", cron["id"])
    assert rc == 0 and triggered["reason"] == "trigger"
    rc, runs = await run(_cli_json, cluster, "runs", "list", "--task", cron["id"])
    assert rc == 0 and triggered["id"] in [r["id"] for r in runs["runs"]]
    rc, one = await run(_cli_json, cluster, "runs", "get", triggered["id"])
    assert rc == 0 and one["task_id"] == cron["id"]
    rc, page = await run(_cli_json, cluster, "tasks", "list", "--name", "cli-", "--all")
    assert rc == 0 and [t["name"] for t in page["tasks"]] == ["cli-life"]
    await run(_cli, cluster, "tasks", "cancel", cron["id"])
    # Workers: drained over REST (the coordinator hears it by NOTIFY), then undrained.
    rc, ws = await run(_cli_json, cluster, "workers")
    wid = ws["workers"][0]["id"]
    rc, w = await run(_cli_json, cluster, "workers", "drain", wid)
    assert rc == 0 and w["draining"] is True, w
    rc, w = await run(_cli_json, cluster, "workers", "undrain", wid)
    assert rc == 0 and w["draining"] is False
    rc, after = await run(_cli_json, cluster, "tasks", "create", "--type", "echo")
    assert (await cluster.wait_task(after["id"]))["state"] == "succeeded", "an undrained worker takes work"
    rc, missing = await run(_cli_json, cluster, "workers", "drain", "no-such-worker")
    assert rc == 1 and missing["error"]["status"] == 404
    status = await run(subprocess.run, [os.sys.executable, "-m", "skiplock", "cluster", "status", "--coordinator",
                                        f"127.0.0.1:{cluster.coordinators[0].port}", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and json.loads(status.stdout)["workers"] >= 1, status.stderr
    # Errors: one line for people, JSON under --json, never a traceback.
    bad = await run(_cli, cluster, "tasks", "create", "--type", "echo", "--payload", "{bad")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--payload" in bad.stderr
    rc, err = await run(_cli_json, cluster, "tasks", "get", "00000000-0000-0000-0000-000000000000")
    assert rc == 1 and err["error"]["status"] == 404


async def test_a_paused_queue_holds_its_runs_until_resumed(cluster: Cluster) -> None:
    status, q = await cluster.request("POST", "/api/queues/held/pause")
    assert status == 200 and q["paused"]
    held = await create(cluster, {"type": "noop", "queue": "held"})
    free = await create(cluster, {"type": "noop"})  # due with it, created after it
    assert (await cluster.wait_task(free["id"]))["state"] == "succeeded"
    status, task = await cluster.request("GET", f"/api/tasks/{held['id']}")
    assert task["state"] == "scheduled" and task["waiting"]["reason"] == "queue_paused"
    status, queues = await cluster.request("GET", "/api/queues")
    [view] = [x for x in queues["queues"] if x["name"] == "held"]
    assert view["paused"] and view["pending"] == 1 and view["due_backlog"] == 1 and view["workers"] >= 1
    status, _ = await cluster.request("POST", "/api/queues/held/resume")
    assert status == 200
    # Within the safety poll (5 s): the resume is heard by NOTIFY, not found by polling.
    assert (await cluster.wait_task(held["id"], timeout=3))["state"] == "succeeded", "resume wakes the coordinator"


async def test_cli_pauses_lists_and_resumes_a_queue(cluster: Cluster) -> None:
    run = asyncio.to_thread
    rc, q = await run(_cli_json, cluster, "queues", "pause", "cli-q")
    assert rc == 0 and q["paused"] is True and q["name"] == "cli-q"
    rc, listed = await run(_cli_json, cluster, "queues")
    assert rc == 0 and any(x["name"] == "cli-q" and x["paused"] for x in listed["queues"])
    table = await run(_cli, cluster, "queues")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:2] == ["NAME", "PAUSED"]
    rc, q = await run(_cli_json, cluster, "queues", "resume", "cli-q")
    assert rc == 0 and q["paused"] is False
    bad = await run(_cli, cluster, "queues", "pause")
    assert bad.returncode != 0 and "needs a queue name" in bad.stderr
    rc, task = await run(_cli_json, cluster, "tasks", "create", "--type", "echo", "--concurrency-key", "cli-k",
                         "--concurrency-limit", "3")
    assert rc == 0 and task["concurrency"] == {"key": "cli-k", "limit": 3}
