"""The suite's cluster: skiplock.testing's, with the test handlers (tests/) importable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from skiplock import testing
from skiplock.testing import Proc

__all__ = ["Cluster", "Proc", "running_cluster"]

HERE = Path(__file__).resolve().parent


class Cluster(testing.Cluster):
    def __init__(self, db_url: str, lease_s: float = 10.0, heartbeat_s: float = 2.0) -> None:
        super().__init__(db_url, lease_s=lease_s, heartbeat_s=heartbeat_s, pythonpath=[HERE])


@asynccontextmanager
async def running_cluster(db_url: str, lease_s: float = 10.0, heartbeat_s: float = 2.0) -> AsyncIterator[testing.Cluster]:
    async with testing.running_cluster(db_url, lease_s, heartbeat_s, pythonpath=[HERE]) as c:
        yield c
