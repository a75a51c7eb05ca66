"""`skiplock up`: embedded PostgreSQL, migrations, API, coordinator and workers from one
command; a task runs; Ctrl-C stops everything in order, the database last, with no orphans."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from skiplock.sql.embedded import free_port
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


async def test_up_runs_a_cluster_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path
    api_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SKIPLOCK_DATABASE_URL", "DATABASE_URL")}
    env.update(SKIPLOCK_DATA_DIR=str(data), PYTHONPATH=str(Path(__file__).parents[1]))
    log = data / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "skiplock", "up", "--workers", "2", "--allow-shell",
                                 "--import", "e2e_handlers", "--api-addr", f"127.0.0.1:{api_port}",
                                 "--grpc-addr", f"127.0.0.1:{grpc_port}"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await wait_until(lambda: "skiplock is up" in log.read_text() or proc.poll() is not None, 120,
                         what="skiplock up to be ready")
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        assert f"http://127.0.0.1:{api_port}" in text and f"127.0.0.1:{grpc_port}" in text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # api, coordinator, 2 workers (+ postgres, started detached)
        base = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession() as s:
            async def workers_up() -> bool:
                async with s.get(f"{base}/api/workers") as r:
                    return len((await r.json())["workers"]) == 2

            await wait_until(workers_up, 30, what="both workers")
            async with s.post(f"{base}/api/tasks", json={"type": "shell", "payload": {"command": ["echo", "up"]}}) as r:
                assert r.status == 201
                task = await r.json()

            async def done() -> dict | None:
                async with s.get(f"{base}/api/tasks/{task['id']}") as r:
                    t = await r.json()
                    return t if t["state"] == "succeeded" else None

            finished = await wait_until(done, 30, what="the shell task")
            assert finished["last_run"]["result"]["stdout"] == "up\n"
        postgres = [p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])]
        assert postgres, "the embedded PostgreSQL should run from the data dir"
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
        text = log.read_text()
        assert text.index("worker_stopped") < text.index("embedded_postgres_stopped"), \
            "workers drain before the database stops"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                                                  for c in children + postgres):
            time.sleep(0.1)
        left = [c.pid for c in children + postgres if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"orphans left behind: {left}\n{log.read_text()}"
        assert (data / "postgres" / "PG_VERSION").exists(), "the data dir is kept so tasks survive restarts"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(data / "postgres", ignore_errors=True)  # tens of MB per run


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skiplock", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


async def test_a_taken_port_is_one_sentence_and_a_non_zero_exit(db_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        addr = f"127.0.0.1:{port}"
        up = _run(["up", "--api-addr", addr, "--grpc-addr", f"127.0.0.1:{free_port()}"])
        assert up.returncode == 2 and f"{addr} is in use; pass --api-addr" in up.stderr, up.stderr
        api = _run(["api", "--api-addr", addr, "--database-url", db_url])
        assert api.returncode == 2 and "--api-addr" in api.stderr and "Traceback" not in api.stderr, api.stderr
        up = _run(["up", "--api-addr", f"127.0.0.1:{free_port()}", "--grpc-addr", addr])
        assert up.returncode == 2 and "--grpc-addr" in up.stderr, up.stderr


async def test_two_coordinators_never_share_a_grpc_port(db_url: str) -> None:
    from tests.cluster import running_cluster

    async with running_cluster(db_url) as cluster:
        first = await cluster.coordinator()
        second = _run(["coordinator", "--grpc-addr", f"127.0.0.1:{first.port}", "--database-url", db_url])
        # Without SO_REUSEPORT off, the second bound too and the kernel split workers between them.
        assert second.returncode == 2 and "is in use; pass --grpc-addr" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert first.alive()
