from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cluster import Cluster


@pytest.fixture
async def cluster(db_url: str) -> AsyncIterator[Cluster]:
    c = Cluster(db_url)
    try:
        yield c
    finally:
        c.stop()


async def test_custom_task_end_to_end(cluster: Cluster) -> None:
    await cluster.api()
    await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers")
    status, task = await cluster.request("POST", "/api/tasks", {"type": "echo", "payload": {"x": 1}})
    assert status == 201, task
    done = await cluster.wait_task(task["id"])
    assert done["state"] == "succeeded", cluster.dump()
    assert done["last_run"]["result"]["payload"] == {"x": 1}
