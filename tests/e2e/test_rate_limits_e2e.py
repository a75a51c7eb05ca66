"""Rate limits through real processes: two coordinators and two workers start a limit's runs
no faster than its bucket, and a target's 429 with Retry-After pauses the whole limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from tests.cluster import Cluster
from tests.conftest import wait_until
from tests.webhook import WebhookTarget

pytestmark = pytest.mark.e2e


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookTarget]:
    target = await WebhookTarget().start()
    yield target
    await target.close()


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def start(cluster: Cluster) -> None:
    await cluster.api()
    a = await cluster.coordinator()
    b = await cluster.coordinator()
    await cluster.worker("--slots", "8", name="w1", coordinators=[a, b])
    await cluster.worker("--slots", "8", name="w2", coordinators=[b, a])


async def test_starts_never_outrun_the_bucket_across_coordinators(cluster: Cluster,
                                                                  webhook: WebhookTarget) -> None:
    await start(cluster)
    rate, burst = 10.0, 3
    status, _ = await cluster.request("PUT", "/api/rate-limits/partner", {"per_second": rate, "burst": burst})
    assert status == 200
    task = {"type": "http", "payload": {"url": webhook.url("/rl")}, "rate_limit": "partner"}
    status, body = await cluster.request("POST", "/api/tasks/batch", {"tasks": [task] * 20})
    assert status == 201, body
    starts: list[float] = []
    for t in body["tasks"]:
        done = await cluster.wait_task(t["id"], timeout=60)
        assert done["state"] == "succeeded", done
        starts.append(ts(done["last_run"]["started_at"]))
    starts.sort()
    # Any window [starts[i], starts[j]] holds at most burst + rate * its length starts (the
    # times are the claims' own instants, printed to the millisecond).
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            allowed = burst + rate * (starts[j] - starts[i] + 0.002)
            assert j - i + 1 <= allowed, (i, j, starts[j] - starts[i])
    assert len(webhook.on("/rl")) == 20


async def test_a_429_with_retry_after_pauses_the_limit_for_every_task(cluster: Cluster,
                                                                      webhook: WebhookTarget) -> None:
    await start(cluster)
    status, _ = await cluster.request("PUT", "/api/rate-limits/partner", {"per_second": 100, "burst": 100})
    assert status == 200
    webhook.scripts["/slow-down"] = [429]
    webhook.retry_after["/slow-down"] = "6"  # room for the reads below
    status, first = await cluster.request("POST", "/api/tasks", {
        "type": "http", "payload": {"url": webhook.url("/slow-down")}, "rate_limit": "partner",
        "retry_backoff_s": 0, "retry_jitter": False})
    assert status == 201, first

    async def paused() -> dict | None:
        _, rl = await cluster.request("GET", "/api/rate-limits/partner")
        return rl if rl["paused_until"] else None

    rl = await wait_until(paused, 20, what="the 429 to pause the rate limit")
    until = ts(rl["paused_until"])
    status, other = await cluster.request("POST", "/api/tasks", {
        "type": "http", "payload": {"url": webhook.url("/other")}, "rate_limit": "partner"})
    assert status == 201
    _, seen = await cluster.request("GET", f"/api/tasks/{other['id']}")
    assert seen["state"] == "scheduled", "read while the pause holds"
    assert seen["waiting"]["reason"] == "rate_limit" and ts(seen["waiting"]["until"]) == until
    for tid in (first["id"], other["id"]):
        done = await cluster.wait_task(tid, timeout=30)
        assert done["state"] == "succeeded", done
        assert ts(done["last_run"]["started_at"]) >= until - 0.001, "nothing of the limit started while paused"
    runs = await cluster.runs(first["id"])
    assert [r["state"] for r in runs] == ["succeeded", "failed"], "the 429, then the retry after the pause"
