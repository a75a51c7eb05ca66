"""schemathesis against a real API with every check: the document says exactly what the
server accepts (valid requests are never refused, invalid ones never accepted), every answer
matches it, and the stateful phase walks create → read → change → cancel."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parents[1]
SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
# DELETE cancels a task: the task and its runs stay readable as history, by contract, so
# "a deleted resource is gone" (use_after_free) does not apply. Every other check runs.
EXCLUDED = ["use_after_free"]


@pytest.mark.timeout(480)  # a fuzzing run: about a minute here, more on a loaded machine
async def test_schemathesis_finds_nothing_with_every_check(cluster: Cluster) -> None:
    api = await cluster.api()
    status, _ = await cluster.request("PUT", "/api/rate-limits/fuzz", {"per_second": 1000, "burst": 1000})
    assert status == 200
    # In use by a task that stays scheduled, so a DELETE the fuzzer sends is refused (409).
    status, _ = await cluster.request("POST", "/api/tasks", {"type": "x", "rate_limit": "fuzz",
                                                             "run_at": "2099-01-01T00:00:00Z"})
    assert status == 201
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    out = await asyncio.to_thread(
        subprocess.run,
        [SCHEMATHESIS, "run", f"{cluster.api_url}/api/openapi.json", "--checks", "all",
         "--exclude-checks", ",".join(EXCLUDED), "--max-examples", "25", "--seed", "20261201",
         "--workers", "2", "--no-color"],
        capture_output=True, text=True, timeout=600, env=env, cwd=HERE)
    tail = out.stdout[-6000:]
    print(tail)
    assert out.returncode == 0, tail + out.stderr[-2000:] + "\n--- api log ---\n" + api.output()[-5000:]
