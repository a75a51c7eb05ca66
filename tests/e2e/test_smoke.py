from __future__ import annotations

import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.e2e


async def test_custom_task_end_to_end(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers")
    status, task = await cluster.request("POST", "/api/tasks", {"type": "echo", "payload": {"x": 1}})
    assert status == 201, task
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "succeeded", cluster.dump()
    assert done["last_run"]["result"]["payload"] == {"x": 1}
