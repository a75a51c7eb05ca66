"""The coordinator process: gRPC (worker sessions, admin, health, reflection), dispatch,
result writing, reaping and LISTEN, with a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from skiplock.common import db, logs
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


async def serve(settings: CoordinatorSettings, *, migrate: bool = True,
                on_ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    if not settings.coordinator_id:
        settings = CoordinatorSettings(**{**settings.__dict__,
                                          "coordinator_id": f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"})
    await db.prepare(settings.database_url, with_migrations=migrate)
    pool = await db.create_pool(settings.database_url, min_size=2, max_size=10,
                                application_name=f"skiplock-coordinator {settings.coordinator_id}")
    metrics = CoordinatorMetrics()
    registry = Registry()
    dispatcher = Dispatcher(pool, settings, registry, metrics)
    results = ResultWriter(pool, settings, metrics, on_written=dispatcher.poke)
    leases = LeaseKeeper(pool, settings, metrics)
    sessions = WorkerSessionService(pool, settings, registry, dispatcher, results, leases, metrics)
    reaper = Reaper(pool, settings, metrics, on_reaped=dispatcher.poke)
    listener = Listener(settings.database_url, on_due=dispatcher.due_at, on_cancel=sessions.cancel,
                        on_reconnect=dispatcher.poke, on_drain=sessions.set_drain)

    server = grpc.aio.server(options=GRPC_OPTIONS)
    pb_grpc.add_WorkerSessionServicer_to_server(sessions, server)
    pb_grpc.add_AdminServicer_to_server(AdminService(pool, settings, registry, metrics, sessions.set_drain), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        pb.DESCRIPTOR.services_by_name["WorkerSession"].full_name,
        pb.DESCRIPTOR.services_by_name["Admin"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    creds = _credentials(settings)
    host, port = parse_addr(settings.grpc_addr, "SKIPLOCK_GRPC_ADDR")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_secure_port(target, creds) if creds else server.add_insecure_port(target)
    except RuntimeError:
        bound = 0
    if not bound:
        await pool.close()
        raise AddressInUse(f"{host}:{port} is in use; pass --grpc-addr HOST:PORT (or it is no address of this host)")
    await server.start()
    for name in names[:2]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    metrics_runner = await serve_metrics(settings.metrics_addr, metrics.registry) if settings.metrics_addr else None

    stop = stop or asyncio.Event()
    install_stop_signals(stop)
    async def database_lost() -> None:
        dispatcher.paused = True
        for name in ("", *names[:2]):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await sessions.close_all("coordinator cannot reach its database")

    async def database_back() -> None:
        sessions.reopen()
        dispatcher.paused = False
        dispatcher.poke()
        for name in ("", *names[:2]):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    watch = DatabaseWatch(pool, settings.db_cutoff_s, on_lost=database_lost, on_back=database_back)
    side = [
        asyncio.create_task(watch.run(), name="dbwatch"),
        asyncio.create_task(dispatcher.run(), name="dispatcher"),
        asyncio.create_task(results.run(), name="results"),
        asyncio.create_task(leases.run(), name="leases"),
        asyncio.create_task(reaper.run(), name="reaper"),
        asyncio.create_task(listener.run(), name="listener"),
        asyncio.create_task(Retention(pool, settings, metrics).run(), name="retention"),
    ]
    log.info("coordinator_listening", grpc=f"{host}:{bound}", coordinator_id=settings.coordinator_id,
             lease_s=settings.leases.lease_s, heartbeat_s=settings.leases.heartbeat_s,
             metrics=settings.metrics_addr)
    if on_ready:
        on_ready(bound)
    died = await supervise(side, stop)
    # Drain: stop claiming, tell workers to move on, write every result received, close.
    log.info("coordinator_draining")
    await health_servicer.enter_graceful_shutdown()
    dispatcher.stop()
    await sessions.close_all("coordinator shutting down")
    flushed = await results.flush(timeout=10)
    await server.stop(grace=3)
    await cancel_and_wait(side)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await pool.close()
    log.info("coordinator_stopped", results_flushed=flushed)
    if died:  # drained; now exit non-zero so a supervisor restarts it
        raise SystemExit(f"coordinator side task {died[0].get_name()} died: {died[0].exception()!r}")
