"""Run a worker process until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from skiplock.common.config import WorkerSettings
from skiplock.common.lifecycle import install_stop_signals
from skiplock.common.metrics import serve_metrics
from skiplock.worker.handlers import HandlerFn
from skiplock.worker.worker import Worker


def _registry(worker: Worker) -> CollectorRegistry:
    registry = worker.metrics.registry
    Gauge("skiplock_worker_running_runs", "Runs executing", registry=registry).set_function(lambda: len(worker.running))
    Gauge("skiplock_worker_slots", "Slots", registry=registry).set(worker.settings.slots)
    Gauge("skiplock_worker_connected", "1 when a session is up", registry=registry).set_function(
        lambda: 1 if worker.connected.is_set() else 0)
    return registry


async def run_worker(settings: WorkerSettings, handlers: dict[str, HandlerFn]) -> None:
    worker = Worker(settings, handlers)
    stop = asyncio.Event()
    # A second signal: hand the runs back now instead of waiting out the grace.
    install_stop_signals(stop, on_repeat=worker.hurry)
    runner = await serve_metrics(settings.metrics_addr, _registry(worker)) if settings.metrics_addr else None
    try:
        await worker.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
