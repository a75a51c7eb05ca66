"""Real PostgreSQL for every test: SKIPLOCK_TEST_DATABASE_URL when set, else an embedded
server this session starts (and stops). One migrated template; a cheap copy per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from skiplock.sql import db
from skiplock.sql.embedded import EmbeddedPostgres
from skiplock.testing import wait_until  # noqa: F401  (tests import it from here)

TEMPLATE = "skiplock_test_template"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("SKIPLOCK_TEST_DATABASE_URL")
    if url:
        yield url
        return
    tmp = Path(tempfile.mkdtemp(prefix="skiplock-test-pg-"))
    server = EmbeddedPostgres(tmp / "data")
    url = server.start()
    try:
        yield url
    finally:
        server.remove()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_pg_factory() -> Iterator[list[EmbeddedPostgres]]:
    """Servers a test starts for itself (to restart them); removed at the end."""
    made: list[EmbeddedPostgres] = []
    yield made
    for server in made:
        server.remove()
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_url(pg_admin_url: str) -> str:
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    url = with_database(pg_admin_url, TEMPLATE)
    await db.migrate(url)
    return url


@pytest.fixture
async def db_url(pg_admin_url: str, template_url: str) -> AsyncIterator[str]:
    url = await _new_database(pg_admin_url)
    yield url
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(db_url, min_size=1, max_size=5)
    yield p
    await p.close()


async def _new_database(pg_admin_url: str) -> str:
    name = f"skiplock_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await conn.close()
    return with_database(pg_admin_url, name)


@pytest.fixture(scope="module")
async def module_db_url(pg_admin_url: str, template_url: str) -> str:
    """A database shared by the tests of one module (for a cluster they share)."""
    return await _new_database(pg_admin_url)


@pytest.fixture
async def webhook() -> AsyncIterator[object]:
    from tests.webhook import WebhookTarget

    target = await WebhookTarget().start()
    yield target
    await target.close()
