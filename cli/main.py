"""The `skiplock` command. Every flag mirrors a SKIPLOCK_* variable; --help names it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from skiplock import __version__
from skiplock.common import config, lifecycle, logs
from skiplock.common.errors import ConfigError, SkiplockError


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _flag(p: argparse.ArgumentParser, flag: str, var: str | None, help_: str, **kw: Any) -> None:
    if var:
        help_ = f"{help_} [env {var}]"
        if "default" not in kw and kw.get("action") not in ("store_true",):
            kw["default"] = env(var)
    p.add_argument(flag, help=help_, **kw)


def _common_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=None,
                   help="PostgreSQL URL [env SKIPLOCK_DATABASE_URL, else DATABASE_URL]")


def _lease_flags(p: argparse.ArgumentParser) -> None:
    _flag(p, "--lease-s", "SKIPLOCK_LEASE_S", "seconds a run's lease lasts without a heartbeat (default 10)")
    _flag(p, "--heartbeat-s", "SKIPLOCK_HEARTBEAT_S", "seconds between worker heartbeats (default 2)")


def _worker_flags(p: argparse.ArgumentParser, *, standalone: bool) -> None:
    _flag(p, "--slots", "SKIPLOCK_SLOTS", "runs a worker executes at once (default 300)")
    _flag(p, "--blocking-slots", "SKIPLOCK_BLOCKING_SLOTS",
          "of those, shell commands and plain (non-async) handlers at once (default: the CPU count)")
    _flag(p, "--import", "SKIPLOCK_IMPORT", "modules with @handler functions, comma-separated",
          dest="imports")
    _flag(p, "--allow-shell", None, "run shell tasks (off by default)", action="store_true",
          default=env("SKIPLOCK_ALLOW_SHELL", "") in ("1", "true", "yes"))
    _flag(p, "--allow-net", "SKIPLOCK_ALLOW_NET", "CIDRs http tasks may reach despite being private/loopback")
    _flag(p, "--queues", "SKIPLOCK_QUEUES", "only take runs of these queues (default: all)")
    if standalone:
        _flag(p, "--coordinator", "SKIPLOCK_COORDINATORS", "coordinator HOST:PORT[,HOST:PORT...]",
              dest="coordinators")
        _flag(p, "--types", "SKIPLOCK_TYPES", "advertise only these types (default: http, imported, shell if allowed)")
        _flag(p, "--name", "SKIPLOCK_WORKER_NAME", "a name for this worker (default host-pid)")
        _flag(p, "--drain-grace-s", "SKIPLOCK_DRAIN_GRACE_S", "on SIGTERM, seconds runs may finish (default 30)")
        _flag(p, "--metrics-addr", "SKIPLOCK_METRICS_ADDR", "serve Prometheus metrics here (off when unset)")
        _flag(p, "--tls-ca", "SKIPLOCK_TLS_CA", "CA certificate to verify a TLS coordinator")
        _flag(p, "--tls-cert", "SKIPLOCK_TLS_CERT", "client certificate (PEM), for mutual TLS")
        _flag(p, "--tls-key", "SKIPLOCK_TLS_KEY", "client private key (PEM), for mutual TLS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiplock", description="A distributed task scheduler on PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"skiplock {__version__}")
    parser.add_argument("--log-format", default=None, choices=["console", "json"],
                        help="log format [env SKIPLOCK_LOG_FORMAT]")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="the whole cluster in one process tree (embedded PostgreSQL when no URL is set)")
    _common_db(up)
    _flag(up, "--workers", "SKIPLOCK_WORKERS", "worker processes (default 1)", default=env("SKIPLOCK_WORKERS", "1"))
    _worker_flags(up, standalone=False)
    _lease_flags(up)
    _flag(up, "--api-addr", "SKIPLOCK_API_ADDR", "REST API HOST:PORT",
          default=env("SKIPLOCK_API_ADDR", config.DEFAULT_API_ADDR))
    _flag(up, "--grpc-addr", "SKIPLOCK_GRPC_ADDR", "coordinator gRPC HOST:PORT",
          default=env("SKIPLOCK_GRPC_ADDR", config.DEFAULT_GRPC_ADDR))
    _flag(up, "--data-dir", "SKIPLOCK_DATA_DIR", "where the embedded PostgreSQL keeps its data")

    api = sub.add_parser("api", help="the REST API")
    _common_db(api)
    _flag(api, "--api-addr", "SKIPLOCK_API_ADDR", "HOST:PORT to listen on",
          default=env("SKIPLOCK_API_ADDR", config.DEFAULT_API_ADDR))
    _flag(api, "--lease-s", "SKIPLOCK_LEASE_S", "a worker without a heartbeat this long is not listed")
    _flag(api, "--max-body-bytes", "SKIPLOCK_MAX_BODY_BYTES", "largest request body (default 4194304, 4 MiB)")
    api.add_argument("--no-migrate", action="store_true", help="do not apply migrations on start")

    co = sub.add_parser("coordinator", help="a coordinator: claims due runs and streams them to workers")
    _common_db(co)
    _flag(co, "--grpc-addr", "SKIPLOCK_GRPC_ADDR", "HOST:PORT to listen on",
          default=env("SKIPLOCK_GRPC_ADDR", config.DEFAULT_GRPC_ADDR))
    _lease_flags(co)
    _flag(co, "--metrics-addr", "SKIPLOCK_METRICS_ADDR", "serve Prometheus metrics here (off when unset)")
    _flag(co, "--coordinator-id", "SKIPLOCK_COORDINATOR_ID", "a stable name (default host-random)")
    _flag(co, "--retention-s", "SKIPLOCK_RETENTION_S",
          "keep succeeded and skipped runs this long (default 604800, a week)")
    _flag(co, "--retention-failed-s", "SKIPLOCK_RETENTION_FAILED_S",
          "keep failed and cancelled runs this long (default 2592000, 30 days)")
    _flag(co, "--tls-cert", "SKIPLOCK_TLS_CERT", "TLS certificate (PEM)")
    _flag(co, "--tls-key", "SKIPLOCK_TLS_KEY", "TLS private key (PEM)")
    _flag(co, "--tls-ca", "SKIPLOCK_TLS_CA", "CA for client certificates (mutual TLS)")
    co.add_argument("--no-migrate", action="store_true", help="do not apply migrations on start")

    wk = sub.add_parser("worker", help="a worker: connects to coordinators and executes runs")
    _worker_flags(wk, standalone=True)

    mg = sub.add_parser("migrate", help="apply database migrations and exit")
    _common_db(mg)

    from skiplock.commands import add_client_commands

    add_client_commands(sub)
    comp = sub.add_parser("completion", help="print a shell completion script: eval \"$(skiplock completion bash)\"")
    comp.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    return parser


def _db_url(args: argparse.Namespace) -> str:
    url = args.database_url or config.database_url()
    if not url:
        raise ConfigError("no database: pass --database-url or set SKIPLOCK_DATABASE_URL "
                          "(or use `skiplock up`, which starts an embedded PostgreSQL)")
    return url


def _leases(args: argparse.Namespace) -> config.LeaseSettings:
    return config.LeaseSettings(**given(lease_s=(args.lease_s, "--lease-s"),
                                        heartbeat_s=(args.heartbeat_s, "--heartbeat-s")))


def given(**pairs: tuple[Any, str]) -> dict[str, Any]:
    """The settings a user gave (by flag or variable), parsed; the others keep the defaults
    declared once, on the settings dataclasses in common/config.py."""
    return {key: config.parse_positive(value, flag) for key, (value, flag) in pairs.items()
            if value not in (None, "")}


def import_handlers(modules: Sequence[str]) -> dict[str, Any]:
    from skiplock.worker.handlers import registered

    sys.path.insert(0, os.getcwd())  # `--import myapp.tasks` from the project directory
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"--import {name}: {exc}") from None
    return registered()


def worker_settings(args: argparse.Namespace, coordinators: Sequence[str] | None = None) -> config.WorkerSettings:
    if bool(getattr(args, "tls_cert", None)) != bool(getattr(args, "tls_key", None)):
        raise ConfigError("--tls-cert and --tls-key go together")
    if getattr(args, "tls_cert", None) and not getattr(args, "tls_ca", None):
        raise ConfigError("--tls-cert needs --tls-ca (the CA that signed the coordinator's certificate)")
    coords = tuple(coordinators or config.parse_list(getattr(args, "coordinators", None))
                   or (config.DEFAULT_GRPC_ADDR,))
    for c in coords:
        config.parse_addr(c, "--coordinator")
    return config.WorkerSettings(
        coordinators=coords,
        name=getattr(args, "name", None) or "",
        **({"slots": int(config.parse_positive(args.slots, "--slots", integer=True))} if args.slots else {}),
        **({"blocking_slots": int(config.parse_positive(args.blocking_slots, "--blocking-slots", integer=True))}
           if getattr(args, "blocking_slots", None) else {}),
        types=config.parse_list(getattr(args, "types", None)),
        queues=config.parse_list(args.queues),
        imports=config.parse_list(args.imports),
        allow_shell=bool(args.allow_shell),
        allow_net=config.parse_networks(args.allow_net, "--allow-net"),
        worker_token=env("SKIPLOCK_WORKER_TOKEN"),
        webhook_secret=_webhook_secret(),
        metrics_addr=getattr(args, "metrics_addr", None),
        **given(drain_grace_s=(getattr(args, "drain_grace_s", None), "--drain-grace-s")),
        tls_ca=getattr(args, "tls_ca", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
    )


def _webhook_secret() -> str | None:
    from skiplock.worker.signing import key

    secret = env("SKIPLOCK_WEBHOOK_SECRET")
    if secret is not None:
        try:
            key(secret)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return secret


def cmd_migrate(args: argparse.Namespace) -> int:
    from skiplock.sql import db

    applied = asyncio.run(db.prepare(_db_url(args), deadline_s=60))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "; up to date"))
    return 0


def _serve(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived process. The default event loop: under uvloop, grpc.aio's streams
    stalled (a drain of 20,000 no-ops ran at half the rate in two of three runs)."""
    lifecycle.tune_gc()
    asyncio.run(main)


def cmd_api(args: argparse.Namespace) -> int:
    from skiplock.api.server import run_api

    settings = config.ApiSettings(
        database_url=_db_url(args), api_addr=args.api_addr, api_token=env("SKIPLOCK_API_TOKEN"),
        api_read_token=env("SKIPLOCK_API_READ_TOKEN"),
        **given(lease_s=(args.lease_s, "--lease-s")),
        **({"max_body_bytes": int(config.parse_positive(args.max_body_bytes, "--max-body-bytes", integer=True))}
           if args.max_body_bytes else {}))
    config.parse_addr(settings.api_addr, "--api-addr")
    _serve(run_api(settings, migrate=not args.no_migrate))
    return 0


def cmd_coordinator(args: argparse.Namespace) -> int:
    from skiplock.coordinator.server import serve

    config.parse_addr(args.grpc_addr, "--grpc-addr")
    if args.metrics_addr:
        config.parse_addr(args.metrics_addr, "--metrics-addr")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    settings = config.CoordinatorSettings(
        database_url=_db_url(args), grpc_addr=args.grpc_addr, coordinator_id=args.coordinator_id or "",
        leases=_leases(args), metrics_addr=args.metrics_addr, worker_token=env("SKIPLOCK_WORKER_TOKEN"),
        admin_token=env("SKIPLOCK_ADMIN_TOKEN"),
        **given(retention_s=(args.retention_s, "--retention-s"),
                retention_failed_s=(args.retention_failed_s, "--retention-failed-s")),
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca)
    _serve(serve(settings, migrate=not args.no_migrate))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from skiplock.worker.main import run_worker

    settings = worker_settings(args)
    handlers = import_handlers(settings.imports)
    _serve(run_worker(settings, handlers))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from skiplock.up import up

    return up(args, _leases(args))


def cmd_completion(args: argparse.Namespace) -> int:
    # shtab writes the script from the parser itself, so it never drifts from the flags.
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "migrate": cmd_migrate, "api": cmd_api, "coordinator": cmd_coordinator, "worker": cmd_worker,
    "up": cmd_up, "completion": cmd_completion,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.command, fmt=args.log_format)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        return int(args.func(args))
    except SkiplockError as exc:
        if args.command in COMMANDS:
            print(f"skiplock: {exc}", file=sys.stderr)
        else:  # a client command: one message, JSON under --json
            from skiplock.commands import report

            report(args, exc)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
