"""Who may talk to a coordinator, and what an http task may reach."""

from __future__ import annotations

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
        await wait_until(lambda w=w: "UNAUTHENTICATED" in w.output(), 20, what=f"{w.name} to be refused")
    status, task = await cluster.request("POST", "/api/tasks", {"type": "echo"})
    assert status == 201
    await cluster.worker("--import", "e2e_handlers", name="member", env={"SKIPLOCK_WORKER_TOKEN": "s3cret"})
    done = await cluster.wait_task(task["id"])
    status, workers = await cluster.request("GET", "/api/workers")
    assert [w["name"] for w in workers["workers"]] == ["member"]
    assert done["last_run"]["worker_id"] == workers["workers"][0]["id"]
    for w in (intruder, anonymous):
        assert '"event": "connected"' not in w.output()
