"""The database: one asyncpg pool per process, and yoyo migrations under an advisory lock."""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from skiplock.common import jsontext, logs
from skiplock.common.errors import DatabaseUnavailable
from skiplock.sql import migrations_dir

log = logs.get("skiplock.db")

# Any id fits in a bigint; this one is "skiplock" in ASCII, so it won't collide by accident.
MIGRATION_LOCK_ID = 0x736B69706C6F636B

# Statement and connect timeouts everywhere, so a hung connection can't stall dispatch.
STATEMENT_TIMEOUT_MS = 15_000
CONNECT_TIMEOUT_S = 5.0

# A transaction that lost a race with another one (deadlock victim, serialization failure):
# running it again is the whole fix.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)

# Errors that mean "the database went away, is restarting, or lost a race": retry, don't crash.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *RETRYABLE_ERRORS,
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.PostgresConnectionError,
)


P = ParamSpec("P")
T = TypeVar("T")


def retry_conflicts(fn: Callable[P, Awaitable[T]], attempts: int = 4) -> Callable[P, Awaitable[T]]:
    """Run a whole transaction again when PostgreSQL picked it as a deadlock victim or failed
    it for serialization (it was rolled back, so nothing is applied twice)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, attempts + 1):
            try:
                return await fn(*args, **kwargs)
            except RETRYABLE_ERRORS as exc:
                if attempt == attempts:
                    raise
                log.info("transaction_retried", error=type(exc).__name__, attempt=attempt)
                await asyncio.sleep(random.uniform(0, 0.02 * attempt))
        raise AssertionError("unreachable")

    return wrapper


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=jsontext.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=jsontext.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Nothing to reset: pooled connections never keep session state (no session advisory
    locks, no LISTEN, no SET outside a transaction). The default reset costs a round trip
    per release, on the hot path and at idle alike."""


class Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type information
    """asyncpg's pool, with a default acquire timeout and releases that never wait on the
    server. asyncpg's release waits for the cancellation of a query its caller abandoned (a
    request that timed out); on a frozen server that wait lasted until the server thawed.
    Such a connection is terminated instead, so it is never reused either."""

    def __init__(self, *args: Any, acquire_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        con = getattr(connection, "_con", None)
        protocol = getattr(con, "_protocol", None)
        if con is not None and protocol is not None and protocol._is_cancelling():
            # Abandoned mid-query (its caller timed out or was cancelled): do not wait for
            # the server to acknowledge the cancel, which a frozen server never does.
            con.terminate()
        await super().release(connection, timeout=timeout)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10,
                      application_name: str = "skiplock", acquire_timeout_s: float = 10.0) -> Pool:
    """A pool with statement and idle-transaction timeouts set on every connection."""
    pool = Pool(
        url,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=60,
        connect=None,
        setup=None,
        init=_init_connection,
        reset=_no_reset,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        acquire_timeout_s=acquire_timeout_s,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=STATEMENT_TIMEOUT_MS / 1000 + 5,
        server_settings={
            "application_name": application_name,
            "statement_timeout": str(STATEMENT_TIMEOUT_MS),
            "idle_in_transaction_session_timeout": "60000",
            # Our hot statements take arrays of a few hundred ids; a generic plan can't see
            # that and picked nested loops costing 70 ms a batch (a custom one: ~2 ms).
            "plan_cache_mode": "force_custom_plan",
        },
    )
    await pool
    return pool


async def probe(pool: asyncpg.Pool, timeout_s: float) -> None:
    """`SELECT 1` within `timeout_s` whatever else holds the pool; raises TimeoutError or a
    database error otherwise. A connection that did not answer is terminated, not returned."""
    async with asyncio.timeout(timeout_s):
        conn = await pool.acquire(timeout=timeout_s)
        try:
            await conn.fetchval("SELECT 1")
        except BaseException:
            conn.terminate()
            raise
        finally:
            await pool.release(conn, timeout=0.1)


async def wait_for_database(url: str, *, deadline_s: float = 60.0) -> None:
    """Wait until PostgreSQL accepts connections (it may be starting or restarting)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    delay = 0.1
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
            await conn.close()
            return
        except (*TRANSIENT_ERRORS, asyncpg.exceptions.InvalidCatalogNameError) as exc:
            if loop.time() > end:
                raise DatabaseUnavailable(f"database not reachable after {deadline_s:.0f}s: {exc}") from exc
            log.info("database_waiting", error=str(exc))
            await asyncio.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 2.0)


def yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme: use psycopg 3."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def single_host_url(url: str, host: str, port: int) -> str:
    """`url` pointed at one server. yoyo's URI parser takes one host, while libpq and asyncpg
    take the lists an HA pair is addressed with (`db1:5432,db2:5432?target_session_attrs=
    read-write`): migrations go to the server libpq picked from the list."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("target_session_attrs="))
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{where}" if userinfo else where, query=query))


def apply_migrations(url: str) -> list[str]:
    """Apply pending migrations; several services starting together serialise on an
    advisory lock, so exactly one applies each migration. Returns the ids applied."""
    import psycopg
    from yoyo import get_backend, read_migrations

    with psycopg.connect(url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            # The server libpq chose (the primary of a host list) is where yoyo must go too.
            info = lock_conn.info
            target = single_host_url(url, info.host, info.port) if info.host and "," in url else url
            backend = get_backend(yoyo_url(target))
            try:
                migrations = read_migrations(str(migrations_dir()))
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
                return [m.id for m in pending]
            finally:
                backend.connection.close()
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))


async def migrate(url: str) -> list[str]:
    applied = await asyncio.to_thread(apply_migrations, url)
    if applied:
        log.info("migrations_applied", migrations=applied)
    return applied


async def prepare(url: str, *, with_migrations: bool = True, deadline_s: float = 120.0) -> list[str]:
    """What every service does first: wait until the database answers (it may be starting),
    then apply pending migrations. Returns the ids applied."""
    await wait_for_database(url, deadline_s=deadline_s)
    return await migrate(url) if with_migrations else []
