"""structlog set-up: a human console by default, JSON with SKIPLOCK_LOG_FORMAT=json."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(service: str, fmt: str | None = None, level: str | None = None) -> None:
    fmt = (fmt or os.environ.get("SKIPLOCK_LOG_FORMAT") or "console").lower()
    level_name = (level or os.environ.get("SKIPLOCK_LOG_LEVEL") or "info").upper()
    lvl = getattr(logging, level_name, logging.INFO)
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if fmt == "json" else (lambda _l, _m, e: e),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries that log through the standard library go to the same stream.
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
