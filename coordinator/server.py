"""The coordinator process: gRPC (worker sessions, admin, health, reflection), dispatch,
result writing, reaping and LISTEN, with a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from skiplock.common import logs
from skiplock.common.config import CoordinatorSettings, parse_addr
from skiplock.common.errors import AddressInUse
from skiplock.common.lifecycle import cancel_and_wait, install_stop_signals, supervise
from skiplock.common.metrics import serve_metrics
from skiplock.coordinator.admin import AdminService
from skiplock.coordinator.dbwatch import DatabaseWatch
from skiplock.coordinator.dispatcher import Dispatcher
from skiplock.coordinator.leases import LeaseKeeper
from skiplock.coordinator.listener import Listener
from skiplock.coordinator.maintenance import Reaper, Retention
from skiplock.coordinator.metrics import CoordinatorMetrics
from skiplock.coordinator.registry import Registry
from skiplock.coordinator.results import ResultWriter
from skiplock.coordinator.session import WorkerSessionService
from skiplock.proto import skiplock_pb2 as pb
from skiplock.proto import skiplock_pb2_grpc as pb_grpc
from skiplock.sql import db

log = logs.get("skiplock.coordinator")

GRPC_OPTIONS = [
    # Detect half-open worker connections; let workers ping us as often as every 5 s.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),  # what recent gRPC uses for keepalive pings
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 4_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # gRPC sets SO_REUSEPORT by default on Linux: a second coordinator would bind the same
    # port without error and the kernel would split workers between two clusters.
    ("grpc.so_reuseport", 0),
]


def _credentials(settings: CoordinatorSettings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        return None
    key = Path(settings.tls_key or "").read_bytes()
    cert = Path(settings.tls_cert).read_bytes()
    ca = Path(settings.tls_ca).read_bytes() if settings.tls_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)


@dataclass
class Coordinator:
    """Everything a coordinator is made of, wired together by build() and driven by run()."""

    settings: CoordinatorSettings
    pool: asyncpg.Pool
    metrics: CoordinatorMetrics
    dispatcher: Dispatcher
    results: ResultWriter
    leases: LeaseKeeper
    sessions: WorkerSessionService
    reaper: Reaper
    retention: Retention
    listener: Listener
    watch: DatabaseWatch
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    services: tuple[str, ...]  # the names health reports for ("" is the whole server)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.services):
            await self.health.set(name, status)

    async def database_lost(self) -> None:
        self.dispatcher.paused = True
        await self.set_serving(False)
        await self.sessions.close_all("coordinator cannot reach its database")

    async def database_back(self) -> None:
        self.sessions.reopen()
        self.dispatcher.paused = False
        self.dispatcher.poke()
        await self.set_serving(True)


async def build(settings: CoordinatorSettings) -> Coordinator:
    """The pool and every component, connected; nothing runs yet."""
    pool = await db.create_pool(settings.database_url, min_size=2, max_size=10,
                                application_name=f"skiplock-coordinator {settings.coordinator_id}")
    metrics = CoordinatorMetrics()
    registry = Registry()
    dispatcher = Dispatcher(pool, settings, registry, metrics)
    results = ResultWriter(pool, settings, metrics, on_written=dispatcher.poke)
    leases = LeaseKeeper(pool, settings, metrics)
    sessions = WorkerSessionService(pool, settings, registry, dispatcher, results, leases, metrics)
    listener = Listener(settings.database_url, on_due=dispatcher.due_at, on_cancel=sessions.cancel,
                        on_reconnect=dispatcher.queues_changed, on_drain=sessions.set_drain,
                        on_queues=dispatcher.queues_changed)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    pb_grpc.add_WorkerSessionServicer_to_server(sessions, server)
    pb_grpc.add_AdminServicer_to_server(AdminService(pool, settings, registry, metrics, sessions.set_drain), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = (pb.DESCRIPTOR.services_by_name["WorkerSession"].full_name,
                pb.DESCRIPTOR.services_by_name["Admin"].full_name)
    reflection.enable_server_reflection(
        (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    c = Coordinator(settings=settings, pool=pool, metrics=metrics, dispatcher=dispatcher, results=results,
                    leases=leases, sessions=sessions, reaper=Reaper(pool, settings, metrics, on_reaped=dispatcher.poke),
                    retention=Retention(pool, settings, metrics), listener=listener,
                    # A probe a second at most: the idle cluster's statements/s are a budget.
                    watch=DatabaseWatch(pool, settings.db_cutoff_s, on_lost=lambda: c.database_lost(),
                                        on_back=lambda: c.database_back(),
                                        interval_s=min(1.0, settings.db_cutoff_s / 3)),
                    server=server, health=health_servicer, services=services)
    return c


def _bind(c: Coordinator) -> int:
    host, port = parse_addr(c.settings.grpc_addr, "SKIPLOCK_GRPC_ADDR")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    creds = _credentials(c.settings)
    try:
        bound = c.server.add_secure_port(target, creds) if creds else c.server.add_insecure_port(target)
    except RuntimeError:
        bound = 0
    if not bound:
        raise AddressInUse(f"{host}:{port} is in use; pass --grpc-addr HOST:PORT (or it is no address of this host)")
    return int(bound)


async def run(c: Coordinator, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None) -> None:
    """Listen, run the side tasks until `stop` (or one dies), then drain in order: stop
    claiming, send workers on, write every result received, close."""
    try:
        bound = _bind(c)
    except AddressInUse:
        await c.pool.close()
        raise
    await c.server.start()
    await c.set_serving(True)
    addr = c.settings.metrics_addr
    metrics_runner = await serve_metrics(addr, c.metrics.registry) if addr else None
    side = [
        asyncio.create_task(c.watch.run(), name="dbwatch"),
        asyncio.create_task(c.dispatcher.run(), name="dispatcher"),
        asyncio.create_task(c.results.run(), name="results"),
        asyncio.create_task(c.leases.run(), name="leases"),
        asyncio.create_task(c.reaper.run(), name="reaper"),
        asyncio.create_task(c.listener.run(), name="listener"),
        asyncio.create_task(c.retention.run(), name="retention"),
    ]
    host, _ = parse_addr(c.settings.grpc_addr, "SKIPLOCK_GRPC_ADDR")
    log.info("coordinator_listening", grpc=f"{host}:{bound}", coordinator_id=c.settings.coordinator_id,
             lease_s=c.settings.leases.lease_s, heartbeat_s=c.settings.leases.heartbeat_s,
             metrics=c.settings.metrics_addr)
    if on_ready:
        on_ready(bound)
    died = await supervise(side, stop)
    log.info("coordinator_draining")
    await c.health.enter_graceful_shutdown()
    c.dispatcher.stop()
    await c.sessions.close_all("coordinator shutting down")
    flushed = await c.results.flush(timeout=10)
    await c.server.stop(grace=3)
    await cancel_and_wait(side)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await c.pool.close()
    log.info("coordinator_stopped", results_flushed=flushed)
    if died:  # drained; now exit non-zero so a supervisor restarts it
        raise SystemExit(f"coordinator side task {died[0].get_name()} died: {died[0].exception()!r}")


async def serve(settings: CoordinatorSettings, *, migrate: bool = True,
                on_ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """The coordinator process: migrations, build, run until SIGTERM/SIGINT (or `stop`)."""
    if not settings.coordinator_id:
        settings = dataclasses.replace(settings, coordinator_id=f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    await db.prepare(settings.database_url, with_migrations=migrate)
    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    await run(await build(settings), stop, on_ready)
