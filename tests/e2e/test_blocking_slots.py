"""A worker's slots are generous for http calls and async handlers, but shell commands and
plain handlers run at most --blocking-slots at a time: a host is never handed a hundred
processes because the default slots are a hundred."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.e2e


async def test_shell_runs_never_exceed_the_blocking_slots_while_async_ones_overlap(
        cluster: Cluster, tmp_path: Path) -> None:
    await cluster.api()
    await cluster.coordinator()
    await cluster.worker("--import", "e2e_handlers", "--allow-shell", "--slots", "20", "--blocking-slots", "1")
    lock = tmp_path / "lock"
    # A run that finds another holding the lock directory fails: two at once cannot both succeed.
    serial = {"type": "shell", "max_attempts": 1,
              "payload": {"command": ["sh", "-c", f"mkdir {lock} || exit 7; sleep 0.3; rmdir {lock}"]}}
    status, body = await cluster.request("POST", "/api/tasks/batch", {"tasks": [serial] * 4 + [
        {"type": "sleep.span", "payload": {"s": 0.5, "dir": str(tmp_path)}} for _ in range(6)]})
    assert status == 201, body
    tasks = body["tasks"]
    for t in tasks:
        done = await cluster.wait_task(t["id"], timeout=30)
        assert done["state"] == "succeeded", done["last_run"]
    # The async runs overlapped (all six slept at once), and no shell run ever waited for a
    # slot on the worker past its timeout.
    marks = sorted(tmp_path.glob("*.mark"))
    assert len(marks) == 6
    spans = [tuple(map(float, m.read_text().split())) for m in marks]
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the async runs ran at once"
