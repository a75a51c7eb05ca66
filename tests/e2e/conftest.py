from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cluster import Cluster, running_cluster


@pytest.fixture
def cluster_leases() -> tuple[float, float]:
    """(lease_s, heartbeat_s) for the processes of a test; modules override it."""
    return 10.0, 2.0


@pytest.fixture
async def cluster(db_url: str, cluster_leases: tuple[float, float]) -> AsyncIterator[Cluster]:
    """Processes a test starts on its own database; their logs are printed if it fails."""
    async with running_cluster(db_url, *cluster_leases) as c:
        yield c
