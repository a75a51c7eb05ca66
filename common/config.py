"""Settings: one frozen object per process, from flags, else SKIPLOCK_* environment variables.

Every flag mirrors a variable (cli/main.py `_flag` names it in --help), and a bad value fails at start with a
sentence that names the setting.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from skiplock.common.errors import ConfigError

DEFAULT_API_ADDR = "127.0.0.1:8080"
DEFAULT_GRPC_ADDR = "127.0.0.1:50051"


def parse_addr(value: str, setting: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{setting} must be HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def parse_positive(value: str | float, setting: str, *, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} must be a positive number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{setting} must be a positive number, got {value!r}")
    return number


def parse_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_networks(value: str | None, setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in parse_list(value):
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{setting}: {part!r} is not a CIDR like 10.0.0.0/8") from None
    return tuple(nets)


def database_url(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("SKIPLOCK_DATABASE_URL") or env.get("DATABASE_URL") or None


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SKIPLOCK_DATA_DIR"):
        return Path(env["SKIPLOCK_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiplock"


@dataclass(frozen=True)
class LeaseSettings:
    """How long a run's lease lasts without a heartbeat, and how often workers heartbeat."""

    lease_s: float = 10.0
    heartbeat_s: float = 0.0  # 0: a fifth of the lease, at most 2 s

    def __post_init__(self) -> None:
        if not self.heartbeat_s:
            object.__setattr__(self, "heartbeat_s", min(2.0, self.lease_s / 5))
        if self.heartbeat_s >= self.lease_s:
            raise ConfigError(
                f"the heartbeat interval ({self.heartbeat_s}s) must be shorter than the lease "
                f"({self.lease_s}s), or every run would be lost between two heartbeats"
            )


@dataclass(frozen=True)
class CoordinatorSettings:
    database_url: str
    grpc_addr: str = DEFAULT_GRPC_ADDR
    coordinator_id: str = ""
    leases: LeaseSettings = field(default_factory=LeaseSettings)
    metrics_addr: str | None = None
    worker_token: str | None = None
    # Admin RPCs need this token (else the worker token, when one is set).
    admin_token: str | None = None
    # The deadline backstop: a run with no result this long after timeout_s is failed.
    timeout_grace_s: float = 5.0
    # Runs due within this are claimed now and held by their worker until due: a claim of a
    # few hundred cron slots (and the next slots it inserts) takes tens of ms, paid ahead.
    claim_ahead_s: float = 0.1
    # Safety-net poll; the real wake-ups are NOTIFY and the next-due timer.
    poll_interval_s: float = 5.0
    # Results are written in batches: at most this many, or after this long.
    result_batch: int = 500
    result_flush_s: float = 0.005
    max_lost_runs: int = 3
    # History retention by state: succeeded and skipped runs, then failed and cancelled ones
    # (dropped a day's partition at a time; each task's latest run is always kept).
    retention_s: float = 7 * 86400.0
    retention_failed_s: float = 30 * 86400.0
    # Unable to reach the database this long, the coordinator stops serving and sends its
    # workers on; 0 picks a third of the lease (at most 3 s), well before leases run out.
    db_cutoff_s: float = 0.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None


    def __post_init__(self) -> None:
        if not self.db_cutoff_s:
            object.__setattr__(self, "db_cutoff_s", min(3.0, self.leases.lease_s / 3))


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    api_addr: str = DEFAULT_API_ADDR
    api_token: str | None = None
    # May only read (GET): the dashboard for people who look but do not change anything.
    api_read_token: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    lease_s: float = 10.0
    # A request's database work must end within this, or it answers 503 with Retry-After:
    # statement_timeout cannot fire on a server that is frozen or cut off.
    request_db_timeout_s: float = 3.0


@dataclass(frozen=True)
class WorkerSettings:
    coordinators: tuple[str, ...] = (DEFAULT_GRPC_ADDR,)
    name: str = ""
    # Runs at once. An http call or an async handler costs a coroutine, so the default is
    # generous (on 2 cores the drain rate rises to about 300 in flight, then stays flat);
    # shell commands and plain (non-async) handlers take a process or a thread each and are
    # held to blocking_slots (default: the CPU count) within it.
    slots: int = 300
    blocking_slots: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    types: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    allow_shell: bool = False
    allow_net: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    worker_token: str | None = None
    # Standard Webhooks secret (whsec_...): outbound http requests are signed with it.
    webhook_secret: str | None = None
    metrics_addr: str | None = None
    drain_grace_s: float = 30.0
    output_cap_bytes: int = 64 * 1024
    tls_ca: str | None = None
    tls_cert: str | None = None  # a client certificate, for coordinators that require one
    tls_key: str | None = None
