"""Run the API process: migrations, then aiohttp until SIGTERM (in-flight requests finish)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from skiplock.api.app import create_app
from skiplock.common import logs
from skiplock.common.config import ApiSettings, parse_addr
from skiplock.common.errors import AddressInUse
from skiplock.common.lifecycle import install_stop_signals
from skiplock.sql import db

log = logs.get("skiplock.api")


class _BadRequestsAreWarnings(logging.Filter):
    """aiohttp logs a request it cannot parse (a client's fault) at ERROR with a traceback;
    that is one warning line here."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            log.warning("malformed_request", error=f"{type(exc).__name__}: {exc.message}")
            return False
        return True


async def run_api(settings: ApiSettings, *, migrate: bool = True) -> None:
    logging.getLogger("aiohttp.server").addFilter(_BadRequestsAreWarnings())
    await db.prepare(settings.database_url, with_migrations=migrate)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
    await runner.setup()
    host, port = parse_addr(settings.api_addr, "SKIPLOCK_API_ADDR")
    site = web.TCPSite(runner, host, port, reuse_port=False)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise AddressInUse(f"{host}:{port} is in use ({exc.strerror}); pass --api-addr HOST:PORT") from None
    log.info("api_listening", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
    stop = asyncio.Event()
    install_stop_signals(stop)
    await stop.wait()
    log.info("api_stopping")
    await runner.cleanup()
