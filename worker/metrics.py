"""The worker's Prometheus metrics (served with --metrics-addr): what it is doing, and the
events an operator (or a test) needs to see without reading logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.sessions = Counter("skiplock_worker_sessions_total", "Sessions a coordinator welcomed", registry=r)
        self.session_errors = Counter("skiplock_worker_session_errors_total",
                                      "Sessions that ended in an error or were refused", ["code"], registry=r)
        self.coordinator_drains = Counter("skiplock_worker_coordinator_drains_total",
                                          "Coordinators that sent this worker on (shutting down, or cut off "
                                          "from the database)", registry=r)
        self.abandoned = Counter("skiplock_worker_runs_abandoned_total",
                                 "Runs stopped without a result: their lease was lost or about to be",
                                 ["why"], registry=r)
