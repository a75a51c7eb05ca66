"""The coordinator's Prometheus metrics (served with --metrics-addr)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class CoordinatorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.dispatched = Counter("skiplock_runs_dispatched_total", "Runs assigned to workers", registry=r)
        self.results = Counter("skiplock_results_total", "Results applied", ["state"], registry=r)
        self.stale = Counter("skiplock_stale_results_total",
                             "Results rejected: the run was no longer held under that lease", registry=r)
        self.reaped = Counter("skiplock_runs_reaped_total", "Runs failed by the reaper", ["why"], registry=r)
        self.retries = Counter("skiplock_retries_scheduled_total", "Retries scheduled", registry=r)
        self.claims = Counter("skiplock_claims_total", "Claim statements", registry=r)
        self.lateness = Histogram(
            "skiplock_dispatch_lateness_seconds", "Claim time minus due time",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
            registry=r)
        self.workers = Gauge("skiplock_connected_workers", "Workers connected here", registry=r)
        self.db_errors = Counter("skiplock_database_errors_total", "Database errors retried", ["where"], registry=r)
        self.stale_count = 0  # the same as `stale`, readable without prometheus internals
