"""What the dashboard needs of the API, which anyone may use: the read-only token, /api/me,
per-minute figures, bulk commands, long-polls, and the UI's own pages and assets."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from skiplock.ui import ASSETS
from skiplock.ui.vendoring import FILES, locked_versions, sha256
from tests.integration.helpers import claim, create, finish
from tests.integration.test_api import Client, _client

WRITE, READ = "write-token", "read-token"


@pytest.fixture
async def guarded(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async for c in _client(db_url, pool, api_token=WRITE, api_read_token=READ):
        yield c


@pytest.fixture
async def api(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async for c in _client(db_url, pool):
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_read_only_token_reads_and_is_refused_every_write(guarded: Client) -> None:
    status, _, _ = await guarded("POST", "/api/tasks", {"type": "x"}, headers=bearer(WRITE))
    assert status == 201
    status, page, _ = await guarded("GET", "/api/tasks", headers=bearer(READ))
    assert status == 200 and len(page["tasks"]) == 1
    for method, path in (("POST", "/api/tasks"), ("POST", "/api/queues/default/pause"),
                         ("PUT", "/api/rate-limits/x"), ("POST", "/api/tasks/bulk")):
        status, problem, _ = await guarded(method, path, {"type": "x"}, headers=bearer(READ))
        assert status == 403 and problem["title"] == "Forbidden", (method, path)
    status, _, _ = await guarded("GET", "/api/tasks")
    assert status == 401, "no token at all"
    status, me, _ = await guarded("GET", "/api/me", headers=bearer(READ))
    assert me == {"access": "read", "token_required": True}
    status, me, _ = await guarded("GET", "/api/me", headers=bearer(WRITE))
    assert me["access"] == "write"
    # The UI's pages and assets load without a token; they hold no data.
    status, text, resp = await guarded("GET", "/ui/tasks?state=failed")
    assert status == 200 and "<div id=\"app\">" in text and resp.headers["Content-Type"].startswith("text/html")


async def test_ui_routes_serve_assets_and_pages(api: Client) -> None:
    status, _, resp = await api("GET", "/")
    assert status == 200 and str(resp.url).endswith("/ui/"), "/ redirects to the UI"
    status, js, resp = await api("GET", "/ui/app.js")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/javascript") and "render(" in js
    status, _, resp = await api("GET", "/ui/vendor/preact.module.js")
    assert status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"
    for page in ("/ui/", "/ui/tasks/0190", "/ui/runs?state=failed", "/ui/vendor/x/../../package.json"):
        status, text, _ = await api("GET", page)
        assert status == 200 and "<div id=\"app\">" in text, page  # a page, never a file outside the assets
    for outside in ("/ui/../pyproject.toml", "/ui/%2E%2E/%2E%2E/pyproject.toml", "/ui/vendor/%2E%2E/__init__.py"):
        status, text, _ = await api("GET", outside)
        assert "[project]" not in text and "ASSETS" not in text, outside
    status, me, _ = await api("GET", "/api/me")
    assert me == {"access": "write", "token_required": False}


def test_vendored_libraries_match_their_pins() -> None:
    record = json.loads((ASSETS / "vendor" / "VERSIONS.json").read_text())
    assert {p: r["version"] for p, r in record.items()} == locked_versions(), "make ui-vendor after changing pins"
    for package, files in FILES.items():
        for _, name in files:
            assert sha256(ASSETS / "vendor" / name) == record[package]["files"][name], f"{name} was edited by hand"


async def test_minutes_count_ended_runs_and_their_lateness(api: Client, pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for _ in range(3):
        await create(pool, now - timedelta(seconds=1))
    rows = await claim(pool, now, 10)
    for r, state in zip(rows, ("succeeded", "succeeded", "failed"), strict=True):
        await finish(pool, r, state, retryable=False, at=now + timedelta(seconds=2))
    status, body, _ = await api("GET", "/api/stats/minutes?minutes=5")
    assert status == 200 and len(body["minutes"]) == 5
    got = {m["at"]: m for m in body["minutes"]}
    minute = (now + timedelta(seconds=2)).replace(second=0)
    m = got[minute.isoformat().replace("+00:00", "Z")]
    assert (m["succeeded"], m["failed"]) == (2, 1)
    # Claimed at `now`, due a second before: 1,000 ms late, in the bucket up to 2,000 ms.
    assert m["lateness_p50_ms"] == 2000 and m["lateness_p99_ms"] == 2000
    assert m["run_ms_mean"] == 2000.0
    status, problem, _ = await api("GET", "/api/stats/minutes?minutes=0")
    assert status == 400 and problem["errors"][0]["field"] == "minutes"


async def test_bulk_by_ids_and_by_filter_with_a_dry_run(api: Client, pool: asyncpg.Pool) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    made = [await create(pool, later, name=f"bulk-{i}") for i in range(7)]
    other = await create(pool, later, name="other")
    status, r, _ = await api("POST", "/api/tasks/bulk", {"action": "pause", "ids": [made[0]["id"], made[1]["id"]]})
    assert status == 200 and (r["applied"], r["refused"]) == (2, 0)
    status, r, _ = await api("POST", "/api/tasks/bulk", {"action": "pause", "ids": [made[0]["id"]]})
    assert r["refused"] == 0 and r["applied"] == 1, "pausing a paused task is allowed (idempotent)"
    status, r, _ = await api("POST", "/api/tasks/bulk", {"action": "resume", "ids": [made[2]["id"], str(uuid.uuid4())]})
    assert (r["applied"], r["refused"], r["not_found"]) == (0, 1, 1), "a scheduled task cannot be resumed"
    flt = {"name": "bulk-"}
    status, r, _ = await api("POST", "/api/tasks/bulk", {"action": "cancel", "filter": flt, "dry_run": True})
    assert (r["matched"], r["applied"], r["more"]) == (7, 0, False)
    cursor, cancelled = None, 0
    while True:  # in pages of 3, as a client walks a big filter
        status, r, _ = await api("POST", "/api/tasks/bulk", {"action": "cancel", "filter": flt, "limit": 3,
                                                              **({"cursor": cursor} if cursor else {})})
        assert status == 200, r
        cancelled += r["applied"]
        cursor = r["next_cursor"]
        if not cursor:
            break
    assert cancelled == 7
    status, t, _ = await api("GET", f"/api/tasks/{other['id']}")
    assert t["state"] == "scheduled", "the filter held"
    for bad, field in (({"action": "explode", "ids": [made[0]["id"]]}, "action"), ({"action": "cancel"}, "ids"),
                       ({"action": "cancel", "ids": ["nope"]}, "ids[0]"),
                       ({"action": "cancel", "filter": {"state": "weird"}}, "filter.state"),
                       ({"action": "cancel", "filter": {}, "cursor": "zzz"}, "cursor")):
        status, problem, _ = await api("POST", "/api/tasks/bulk", bad)
        assert status == 400 and field in [e["field"] for e in problem["errors"]], (bad, problem)


async def test_a_long_poll_answers_when_the_run_ends(api: Client, pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    task = await create(pool, now - timedelta(seconds=1))
    [run] = await claim(pool, now, 1)

    async def finish_soon() -> None:
        await asyncio.sleep(0.3)
        await finish(pool, run, "succeeded", at=datetime.now(UTC))

    began = time.monotonic()
    ender = asyncio.create_task(finish_soon())
    status, got, _ = await api("GET", f"/api/tasks/{task['id']}?wait_s=20")
    waited = time.monotonic() - began
    await ender
    assert status == 200 and got["state"] == "succeeded"
    assert waited < 10, "answered by the NOTIFY, not at the end of the wait"
    assert await pool.fetchval("SELECT count(*) FROM skiplock_waiters") == 0, "the wait unregistered itself"
    status, r, _ = await api("GET", f"/api/runs/{run['id']}?wait_s=5")
    assert status == 200 and r["state"] == "succeeded", "already final: at once"
    pending = await create(pool, now + timedelta(hours=1))
    status, t, _ = await api("GET", f"/api/tasks/{pending['id']}?wait_s=0.2")
    assert status == 200 and t["state"] == "scheduled", "not final within the wait: its state then"
    for bad in ("-1", "61", "soon"):
        status, problem, _ = await api("GET", f"/api/tasks/{pending['id']}?wait_s={bad}")
        assert status == 400 and problem["errors"][0]["field"] == "wait_s"
