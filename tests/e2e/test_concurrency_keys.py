"""Concurrency keys through real processes: two coordinators and two workers never run more
than the limit of a key at once, and a worker killed with its runs does not keep their slots."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster_leases() -> tuple[float, float]:
    return 2.0, 0.5  # a lost worker's runs come back within seconds


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, d in edges:
        now += d
        peak = max(peak, now)
    return peak


async def start(cluster: Cluster) -> None:
    await cluster.api()
    a = await cluster.coordinator()
    b = await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers", "--slots", "8", name="w1", coordinators=[a, b])
    await cluster.worker("--import", "e2e_handlers", "--slots", "8", name="w2", coordinators=[b, a])


async def test_two_coordinators_two_workers_never_pass_the_limit(cluster: Cluster, tmp_path: Path) -> None:
    await start(cluster)
    task = {"type": "sleep.span", "payload": {"s": 0.3, "dir": str(tmp_path)},
            "concurrency": {"key": "partner-42", "limit": 2}}
    status, body = await cluster.request("POST", "/api/tasks/batch", {"tasks": [task] * 10})
    assert status == 201, body
    for t in body["tasks"]:
        assert (await cluster.wait_task(t["id"], timeout=60))["state"] == "succeeded"
    spans = [tuple(map(float, m.read_text().split())) for m in tmp_path.glob("*.mark")]
    assert len(spans) == 10
    assert max_overlap(spans) == 2, "two at once, never three"  # type: ignore[arg-type]


async def test_a_killed_workers_slots_come_back(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.api()
    coord = await cluster.coordinator()
    victim = await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="victim")
    key = {"key": "one-at-a-time", "limit": 1}
    status, first = await cluster.request("POST", "/api/tasks", {"type": "sleep", "payload": {"s": 30},
                                                                  "concurrency": key})
    assert status == 201

    async def running() -> bool:
        _, t = await cluster.request("GET", f"/api/tasks/{first['id']}")
        return t["state"] == "running"

    await wait_until(running, 10, what="the first run on the victim")
    status, second = await cluster.request("POST", "/api/tasks", {"type": "noop", "concurrency": key})
    _, waiting = await cluster.request("GET", f"/api/tasks/{second['id']}")
    _, holder = await cluster.request("GET", f"/api/tasks/{first['id']}")
    assert waiting["waiting"]["reason"] == "concurrency", waiting["waiting"]
    assert holder["last_run"]["id"] in waiting["waiting"]["detail"], "it names the run holding the slot"
    victim.signal(signal.SIGKILL)
    await cluster.worker("--import", "e2e_handlers", "--slots", "4", name="survivor", coordinators=[coord])
    # The victim's run is failed when its lease runs out, giving the slot back; the waiting
    # task runs (and the first one's retry after it).
    assert (await cluster.wait_task(second["id"], timeout=30))["state"] == "succeeded"
