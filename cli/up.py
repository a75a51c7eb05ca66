"""`skiplock up`: PostgreSQL (embedded unless a URL is set), migrations, the API, a
coordinator and N workers as child processes. Ctrl-C or SIGTERM stops them in order —
workers drain, then the coordinator, then the API, then the database — leaving no orphans."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from skiplock.common import config, logs
from skiplock.common.errors import AddressInUse
from skiplock.sql import db
from skiplock.sql.embedded import EmbeddedPostgres

log = logs.get("skiplock.up")

LOCAL_NETS = "127.0.0.0/8,::1/128"


def _die_with_parent() -> None:
    """Child side: get SIGTERM if `skiplock up` itself is killed, so nothing is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("child_killed", child=self.name, why=f"no exit {timeout:g}s after SIGTERM")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _wait_healthy(url: str, deadline_s: float, children: list[Child]) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not all(c.alive() for c in children):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _wait_port(host: str, port: int, deadline_s: float, children: list[Child]) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and all(c.alive() for c in children):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# A child that exits with this code was misconfigured (ConfigError): restarting cannot help.
CONFIG_EXIT = 2


def up(args: argparse.Namespace, leases: config.LeaseSettings) -> int:
    stop: dict[str, int | None] = {"signal": None}
    signals = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal signals
        stop["signal"] = signum
        signals += 1
        if signals > 1:
            hurry()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    workers = int(config.parse_positive(args.workers or 1, "--workers", integer=True))
    api_host, api_port = config.parse_addr(args.api_addr, "--api-addr")
    grpc_host, grpc_port = config.parse_addr(args.grpc_addr, "--grpc-addr")
    # Checked before anything starts: a port held by another cluster would otherwise answer
    # our health check for us while our own child crash-loops.
    for host, port, flag in ((api_host, api_port, "--api-addr"), (grpc_host, grpc_port, "--grpc-addr")):
        if _port_taken(host, port):
            raise AddressInUse(f"{host}:{port} is in use; pass {flag} HOST:PORT")
    children: list[Child] = []

    def hurry() -> None:
        """A second Ctrl-C: workers stop waiting for their runs and hand them back now."""
        for c in children:
            if c.name.startswith("worker") and c.alive() and c.proc is not None:
                c.proc.send_signal(signal.SIGTERM)
    embedded: EmbeddedPostgres | None = None
    url = args.database_url or config.database_url()
    if not url:
        data_dir = config.default_data_dir() if not args.data_dir else Path(args.data_dir).expanduser()
        embedded = EmbeddedPostgres(data_dir / "postgres")
        print(f"skiplock: starting embedded PostgreSQL in {embedded.data_dir} ...", flush=True)
        url = embedded.start()
    try:
        asyncio.run(db.prepare(url, deadline_s=60))
        env = {**os.environ, "SKIPLOCK_DATABASE_URL": url}
        me = [sys.executable, "-m", "skiplock"]
        lease_flags = ["--lease-s", str(leases.lease_s), "--heartbeat-s", str(leases.heartbeat_s)]
        allow_net = ",".join(x for x in (LOCAL_NETS, args.allow_net) if x)
        worker_argv = [*me, "worker", "--coordinator", args.grpc_addr, "--allow-net", allow_net]
        if args.slots:
            worker_argv += ["--slots", str(args.slots)]
        if args.blocking_slots:
            worker_argv += ["--blocking-slots", str(args.blocking_slots)]
        if args.imports:
            worker_argv += ["--import", args.imports]
        if args.queues:
            worker_argv += ["--queues", args.queues]
        if args.allow_shell:
            worker_argv.append("--allow-shell")
        children += [
            Child("api", [*me, "api", "--api-addr", args.api_addr, "--no-migrate", "--lease-s", str(leases.lease_s)]),
            Child("coordinator", [*me, "coordinator", "--grpc-addr", args.grpc_addr, "--no-migrate", *lease_flags]),
            *[Child(f"worker-{i + 1}", [*worker_argv, "--name", f"up-worker-{i + 1}"]) for i in range(workers)],
        ]
        failed = False
        services, workers_ = children[:2], children[2:]
        for c in services:
            c.start(env)
        # Workers start once the coordinator listens, so their first connect succeeds.
        _wait_port(grpc_host, grpc_port, 60, services)
        for c in workers_:
            c.start(env)
        health = f"http://{api_host}:{api_port}/api/healthz"
        if not _wait_healthy(health, 60, children):
            dead = [c.name for c in children if not c.alive()]
            print(f"skiplock: the cluster did not come up (exited: {', '.join(dead) or 'none'}); "
                  "see the log lines above", file=sys.stderr)
            stop["signal"] = signal.SIGTERM
            failed = True
        else:
            print("\nskiplock is up:\n"
                  f"  dashboard    http://{api_host}:{api_port}/\n"
                  f"  REST API     http://{api_host}:{api_port}/api/tasks   (docs: http://{api_host}:{api_port}/docs)\n"
                  f"  gRPC         {args.grpc_addr}   (grpcurl -plaintext {args.grpc_addr} list)\n"
                  f"  PostgreSQL   {url}" + ("   (embedded)" if embedded else "") + "\n"
                  f"  workers      {workers} x {args.slots or config.WorkerSettings().slots} slots "
                  f"({args.blocking_slots or config.WorkerSettings().blocking_slots} for shell and plain handlers)"
                  + (", shell allowed" if args.allow_shell else "") + "\n"
                  "Press Ctrl-C to stop.\n", flush=True)
        while stop["signal"] is None:
            for c in children:
                if not c.alive() and stop["signal"] is None:
                    code = c.proc.returncode if c.proc else None
                    if code == CONFIG_EXIT:
                        print(f"skiplock: {c.name} cannot run as configured (its message is above); stopping",
                              file=sys.stderr, flush=True)
                        stop["signal"], failed = signal.SIGTERM, True
                        break
                    c.restarts += 1
                    delay = min(30.0, 0.5 * 2 ** min(c.restarts, 6))
                    if time.monotonic() - c.started_at > 60:
                        c.restarts, delay = 1, 0.5
                    log.error("child_exited", child=c.name, code=code, restart_in_s=delay)
                    time.sleep(delay)
                    c.start(env)
            time.sleep(0.2)
        print("\nskiplock: stopping ...", flush=True)
        for group, timeout in (([c for c in children if c.name.startswith("worker")], 40.0),
                               ([c for c in children if c.name == "coordinator"], 20.0),
                               ([c for c in children if c.name == "api"], 15.0)):
            alive = [c for c in group if c.alive() and c.proc is not None]
            if alive and group[0].name.startswith("worker"):
                grace = getattr(args, "drain_grace_s", None) or config.WorkerSettings().drain_grace_s
                print(f"skiplock: waiting for {len(alive)} worker(s) to finish their runs (up to {grace:g} s); "
                      "Ctrl-C again hands them back for a retry now", flush=True)
            for c in alive:
                assert c.proc is not None
                c.proc.send_signal(signal.SIGTERM)
            for c in group:
                c.stop(timeout)
        return 1 if failed else 0
    finally:
        if embedded is not None and embedded.started_here:
            embedded.stop()
            print("skiplock: embedded PostgreSQL stopped", flush=True)

