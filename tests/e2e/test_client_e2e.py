"""skiplock from application code, against real processes: the typed client (sync and async)
with long-poll waits, transactional enqueue that a real worker runs, and signed callbacks to
a local receiver that verifies them with the real `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import skiplock
from skiplock.client import ApiError, AsyncClient, Client
from tests.cluster import Cluster, running_cluster
from tests.webhook import WebhookTarget

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"skiplock-test-secret-32-bytes!!!").decode()


@pytest.fixture(scope="module")
async def cluster(module_db_url: str) -> AsyncIterator[Cluster]:
    async with running_cluster(module_db_url) as c:
        await c.api()
        await c.coordinator()
        await c.worker("--import", "e2e_handlers", "--slots", "8", name="client-worker",
                       env={"SKIPLOCK_WEBHOOK_SECRET": SECRET})
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookTarget]:
    target = await WebhookTarget().start()
    yield target
    await target.close()


async def test_every_client_method_against_a_cluster(cluster: Cluster) -> None:
    def sync_side() -> None:
        with Client(cluster.api_url) as c:
            t = c.create("echo", {"n": 1}, name="from-the-client")
            assert t["name"] == "from-the-client" and t["state"] in ("scheduled", "running", "succeeded")
            done = c.wait(t["id"], timeout=30)
            assert done["state"] == "succeeded" and done["last_run"]["result"]["payload"] == {"n": 1}
            assert c.get(t["id"])["id"] == t["id"]
            [run] = c.runs(t["id"])
            assert c.get_run(run["id"])["state"] == "succeeded"
            later = c.create_many([{"type": "noop", "name": f"later-{i}", "run_at": "2099-01-01T00:00:00Z"}
                                   for i in range(3)])
            assert c.pause(later[0]["id"])["state"] == "paused"
            assert c.resume(later[0]["id"])["state"] == "scheduled"
            assert c.trigger(later[1]["id"])["reason"] == "trigger"
            assert c.cancel(later[2]["id"])["state"] == "cancelled"
            names = {x["name"] for x in c.list(name="later-")}
            assert names == {"later-0", "later-1", "later-2"}, "list walks every page"
            with pytest.raises(ApiError) as bad:
                c.create("http", {"url": "not a url"})
            assert bad.value.status == 400 and bad.value.field("payload.url")
            with pytest.raises(ApiError) as missing:
                c.get("01a23232-0000-7000-8000-000000000000")
            assert missing.value.status == 404 and missing.value.title == "Not found"
            pending = c.create("noop", run_at="2099-01-01T00:00:00Z")
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                c.wait(pending["id"], timeout=0.5)
            assert time.monotonic() - began < 5, "a wait ends at its timeout"

    await asyncio.to_thread(sync_side)


async def test_wait_answers_within_a_few_ms_of_the_end(cluster: Cluster) -> None:
    async with AsyncClient(cluster.api_url) as c:
        t = await c.create("sleep", {"s": 1.0})
        began = time.monotonic()
        done = await c.wait(t["id"], timeout=30)
        waited = time.monotonic() - began
        assert done["state"] == "succeeded"
        finished = done["last_run"]["finished_at"]
        # The answer follows the end by the NOTIFY's trip, not a polling interval.
        from datetime import datetime

        lag = time.time() - datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
        print(f"wait returned {lag * 1000:.1f} ms after the run's end (waited {waited:.2f} s)")
        assert lag < 3.0
        page = [x async for x in c.list(type="sleep")]
        assert any(x["id"] == t["id"] for x in page)
        run = await c.wait_run((await c.runs(t["id"]))[0]["id"], timeout=5)
        assert run["state"] == "succeeded"


async def test_enqueued_in_a_transaction_runs_and_rolled_back_never_does(cluster: Cluster) -> None:
    conn = await asyncpg.connect(cluster.db_url)
    try:
        async with conn.transaction():
            kept = await skiplock.enqueue(conn, "echo", {"order": 42})
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await skiplock.enqueue(conn, "echo", {"order": 43})
                raise RuntimeError("the order could not be saved")
    finally:
        await conn.close()
    done = await cluster.wait_task(str(kept))
    assert done["state"] == "succeeded" and done["last_run"]["result"]["payload"] == {"order": 42}
    status, page = await cluster.request("GET", "/api/tasks?type=echo&limit=500")
    assert not [t for t in page["tasks"] if t["payload"] == {"order": 43}]


async def test_callbacks_are_signed_and_verify_with_standardwebhooks(cluster: Cluster,
                                                                     receiver: WebhookTarget) -> None:
    status, t = await cluster.request("POST", "/api/tasks", {
        "type": "fail.until", "payload": {"succeed_on": 2}, "max_attempts": 3, "retry_backoff_s": 0,
        "retry_jitter": False, "callbacks": [{"url": receiver.url("/events"), "headers": {"X-Team": "ops"}}]})
    assert status == 201, t
    assert (await cluster.wait_task(t["id"]))["state"] == "succeeded"

    async def three() -> bool:
        return len(receiver.on("/events")) >= 3

    from tests.conftest import wait_until

    await wait_until(three, 30, what="three callback deliveries")
    hits = receiver.on("/events")
    events = [json.loads(h.body)["type"] for h in hits]
    assert sorted(events) == ["skiplock.task.recovered", "skiplock.task.retrying", "skiplock.task.succeeded"]
    wh = Webhook(SECRET)
    for h in hits:
        headers = {k.lower(): v for k, v in h.headers.items()}
        assert headers["x-team"] == "ops" and headers["webhook-id"]
        wh.verify(h.body, headers)  # raises if the signature does not hold
        body = json.loads(h.body)
        assert body["task"]["id"] == t["id"]
        with pytest.raises(WebhookVerificationError):
            wh.verify(h.body.replace(b'"attempt"', b'"attempts"'), headers)
    # The deliveries are tasks in the history like any other. The receiver can answer before
    # the worker's result for its delivery is written, so wait for the three to end.
    async def delivered() -> list[dict]:
        status, page = await cluster.request("GET", "/api/tasks?name=callback&limit=50")
        return page["tasks"] if all(x["state"] not in ("pending", "running") for x in page["tasks"]) else []

    tasks = await wait_until(delivered, 30, what="the deliveries' tasks to end")
    assert len(tasks) == 3 and {x["state"] for x in tasks} == {"succeeded"}
