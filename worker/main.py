"""Run a worker process until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from skiplock.common.config import WorkerSettings, parse_addr
from skiplock.worker.client import Worker
from skiplock.worker.handlers import HandlerFn


async def _metrics(addr: str, worker: Worker) -> web.AppRunner:
    registry = CollectorRegistry()
    Gauge("skiplock_worker_running_runs", "Runs executing", registry=registry).set_function(lambda: len(worker.running))
    Gauge("skiplock_worker_slots", "Slots", registry=registry).set(worker.settings.slots)
    Gauge("skiplock_worker_connected", "1 when a session is up", registry=registry).set_function(
        lambda: 1 if worker.connected.is_set() else 0)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_addr(addr, "SKIPLOCK_METRICS_ADDR")
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_worker(settings: WorkerSettings, handlers: dict[str, HandlerFn]) -> None:
    worker = Worker(settings, handlers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = await _metrics(settings.metrics_addr, worker) if settings.metrics_addr else None
    try:
        await worker.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
