"""A local skiplock cluster of real processes on free ports: api, coordinators and workers
against one database, stopped together. skiplock's own end-to-end tests and `make bench` use
it, and so can yours:

    async with running_cluster(db_url, pythonpath=["."]) as c:
        await c.api(); await c.coordinator(); await c.worker("--import", "myapp.handlers")
        status, task = await c.request("POST", "/api/tasks", {"type": "myapp.email", ...})
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from skiplock.sql.embedded import free_port


async def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
                     what: str = "condition") -> Any:
    """Poll an (async or plain) predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    last = None
    while loop.time() < end:
        last = predicate()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    role: str = ""
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="skiplock-e2e-", suffix=".log")[1]))

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


class Cluster:
    """Starts api / coordinator / worker processes against one database and stops them all."""

    def __init__(self, db_url: str, lease_s: float = 10.0, heartbeat_s: float = 2.0,
                 pythonpath: Sequence[str | Path] = ()) -> None:
        self.db_url = db_url
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.procs: list[Proc] = []
        self.env = {**os.environ, "SKIPLOCK_DATABASE_URL": db_url, "SKIPLOCK_LOG_FORMAT": "json",
                    "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
        self.env.pop("SKIPLOCK_API_TOKEN", None)
        self.env.pop("SKIPLOCK_WORKER_TOKEN", None)
        self.api_url = ""
        self.coordinators: list[Proc] = []

    def _spawn(self, name: str, args: list[str], port: int | None = None, env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, [sys.executable, "-m", "skiplock", *args], {**self.env, **(env or {})}, port,
                 role=args[0]).start()
        self.procs.append(p)
        return p

    async def api(self, env: dict[str, str] | None = None) -> Proc:
        port = free_port()
        p = self._spawn("api", ["api", "--api-addr", f"127.0.0.1:{port}", "--lease-s", str(self.lease_s)], port,
                        env=env)
        self.api_url = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            if not p.alive():
                raise AssertionError(f"api exited:\n{p.output()}")
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.api_url}/api/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, 30, what="api healthz")
        return p

    async def coordinator(self, extra: list[str] | None = None, port: int | None = None,
                          env: dict[str, str] | None = None) -> Proc:
        port = port or free_port()
        p = self._spawn("coordinator", ["coordinator", "--grpc-addr", f"127.0.0.1:{port}",
                                        "--lease-s", str(self.lease_s), "--heartbeat-s", str(self.heartbeat_s),
                                        *(extra or [])], port, env=env)
        await wait_until(lambda: _listening(p), 30, what="coordinator listening")
        self.coordinators.append(p)
        return p

    async def worker(self, *args: str, coordinators: list[Proc] | None = None, name: str | None = None,
                     env: dict[str, str] | None = None, wait: bool = True) -> Proc:
        coords = ",".join(f"127.0.0.1:{c.port}" for c in (coordinators or self.coordinators))
        argv = ["worker", "--coordinator", coords, "--allow-net", "127.0.0.0/8", *args]
        if "--metrics-addr" in args:
            metrics_port = int(args[args.index("--metrics-addr") + 1].rpartition(":")[2])
        else:  # tests read what a worker did from its metrics, not its log
            metrics_port = free_port()
            argv += ["--metrics-addr", f"127.0.0.1:{metrics_port}"]
        if name:
            argv += ["--name", name]
        p = self._spawn(name or "worker", argv, env=env)
        p.metrics_port = metrics_port
        if wait:
            await wait_until(lambda: self.metric(p, "skiplock_worker_sessions_total"), 30,
                             what=f"worker {name} connected")
        return p

    async def metric(self, p: Proc, name: str, **labels: str) -> float:
        """A worker's metric (summed over the series matching `labels`); 0 before it serves."""
        if not p.alive():
            raise AssertionError(f"{p.name} exited:\n{p.output()}")
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{p.metrics_port}/metrics") as r:
                text = await r.text()
        except aiohttp.ClientError:
            return 0.0
        return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    async def request(self, method: str, path: str, body: Any = None,
                      headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.request(method, f"{self.api_url}{path}", json=body,
                                                           headers=headers) as r:
            ctype = r.headers.get("Content-Type", "")
            data = await r.json(content_type=None) if "json" in ctype else await r.text()
            return r.status, data

    async def wait_task(self, task_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
                        timeout: float = 30) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            status, task = await self.request("GET", f"/api/tasks/{task_id}")
            assert status == 200, task
            return task if task["state"] in states else None

        return await wait_until(done, timeout, what=f"task {task_id} in {states}")

    async def runs(self, task_id: str) -> list[dict[str, Any]]:
        status, page = await self.request("GET", f"/api/tasks/{task_id}/runs?limit=500")
        assert status == 200, page
        return page["runs"]

    def stop(self) -> None:
        # Workers first, so they drain against a live coordinator.
        for p in sorted(self.procs, key=lambda p: 0 if p.role == "worker" else 1):
            p.stop()
        for p in self.procs:  # logs were dumped already if the test failed
            p.log_path.unlink(missing_ok=True)

    def dump(self) -> str:
        return "\n".join(f"===== {p.name} (pid {p.proc.pid if p.proc else '-'}) =====\n{p.output()[-6000:]}"
                         for p in self.procs)


@asynccontextmanager
async def running_cluster(db_url: str, lease_s: float = 10.0, heartbeat_s: float = 2.0,
                          pythonpath: Sequence[str | Path] = ()) -> AsyncIterator[Cluster]:
    """A Cluster whose processes are stopped at the end and whose logs print on failure."""
    c = Cluster(db_url, lease_s=lease_s, heartbeat_s=heartbeat_s, pythonpath=pythonpath)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()


def _listening(p: Proc) -> bool:
    if not p.alive():
        raise AssertionError(f"{p.name} exited:\n{p.output()}")
    return '"event": "coordinator_listening"' in p.output()
