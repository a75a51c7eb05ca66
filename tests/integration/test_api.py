"""The REST API on real PostgreSQL: shapes, paging, idempotency, and problem+json for bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from skiplock.api.app import create_app
from skiplock.common.config import ApiSettings


class Client:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    async def __call__(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                       headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
        kw: dict[str, Any] = {"headers": headers or {}}
        if raw is not None:
            kw["data"] = raw
            kw["headers"].setdefault("Content-Type", "application/json")
        elif body is not None:
            kw["json"] = body
        async with self.session.request(method, self.base + path, **kw) as r:
            data = await r.json(content_type=None) if r.content_type.endswith("json") else await r.text()
            return r.status, data, r


async def _client(db_url: str, pool: asyncpg.Pool, **settings: Any) -> AsyncIterator[Client]:
    server = TestServer(create_app(ApiSettings(database_url=db_url, **settings), pool=pool), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Client(str(server.make_url("")), session)
    await server.close()


@pytest.fixture
async def api(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async for c in _client(db_url, pool):
        yield c


async def test_create_and_read_a_task(api: Client) -> None:
    status, task, resp = await api("POST", "/api/tasks", {
        "name": "hook", "type": "http", "payload": {"url": "https://example.com/h", "json": {"a": 1}},
        "run_at": "2030-01-01T10:00:00+01:00", "priority": 3})
    assert status == 201, task
    assert resp.headers["Location"] == f"/api/tasks/{task['id']}"
    assert task["state"] == "scheduled" and task["next_run_at"] == "2030-01-01T09:00:00Z"
    assert task["run_at"] == "2030-01-01T09:00:00Z" and task["last_run"] is None
    assert (task["max_attempts"], task["timeout_s"], task["queue"]) == (3, 300, "default")
    status, got, _ = await api("GET", f"/api/tasks/{task['id']}")
    assert status == 200 and got["id"] == task["id"] and got["payload"]["json"] == {"a": 1}
    status, runs, _ = await api("GET", f"/api/tasks/{task['id']}/runs")
    assert status == 200 and [r["state"] for r in runs["runs"]] == ["pending"]
    assert runs["runs"][0]["scheduled_for"] == "2030-01-01T09:00:00Z"
    status, run, _ = await api("GET", f"/api/runs/{runs['runs'][0]['id']}")
    assert status == 200 and run["task_id"] == task["id"] and run["attempt"] == 1


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), [
    ("POST", "/api/tasks", {"type": "http", "payload": {"url": "nope"}}, 400, "payload.url"),
    ("POST", "/api/tasks", {"type": "x", "run_at": "2026-01-01 10:00"}, 400, "run_at"),
    ("POST", "/api/tasks", {"type": "x", "cron": "* * *"}, 400, "cron"),
    ("POST", "/api/tasks", {"type": "x", "cron": "* * * * *", "timezone": "Moon/Base"}, 400, "timezone"),
    ("POST", "/api/tasks", [1, 2], 400, "body"),
    ("POST", "/api/tasks/batch", {"tasks": [{"type": "x"}, {"type": "BAD"}]}, 400, "tasks[1].type"),
    ("GET", "/api/tasks?limit=0", None, 400, "limit"),
    ("GET", "/api/tasks?limit=501", None, 400, "limit"),
    ("GET", "/api/tasks?limit=ten", None, 400, "limit"),
    ("GET", "/api/tasks?state=sleeping", None, 400, "state"),
    ("GET", "/api/tasks?cursor=garbage!!", None, 400, "cursor"),
    ("GET", "/api/tasks?colour=red", None, 400, "colour"),
    ("GET", "/api/runs?task_id=nope", None, 400, "task_id"),
    ("GET", "/api/runs?state=done", None, 400, "state"),
])
async def test_bad_input_is_a_problem_naming_the_field(api: Client, method: str, path: str, body: Any,
                                                       status: int, field: str) -> None:
    got, problem, resp = await api(method, path, body)
    assert got == status, problem
    assert resp.content_type == "application/problem+json"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert field in [e["field"] for e in problem["errors"]]


async def test_malformed_json_and_unknown_ids(api: Client) -> None:
    status, problem, resp = await api("POST", "/api/tasks", raw=b"{not json")
    assert status == 400 and problem["errors"][0]["field"] == "body"
    for path in ("/api/tasks/not-a-uuid", "/api/tasks/00000000-0000-0000-0000-000000000000",
                 "/api/runs/00000000-0000-0000-0000-000000000000", "/api/nothing-here"):
        status, problem, resp = await api("GET", path)
        assert status == 404 and resp.content_type == "application/problem+json", path
    status, problem, _ = await api("DELETE", "/api/tasks/00000000-0000-0000-0000-000000000000")
    assert status == 404
    status, problem, _ = await api("PUT", "/api/tasks")
    assert status == 405 and problem["status"] == 405


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"type": "x", "payload": {"n": NaN}}', "body"),
    (b'{"type": "x", "payload": {"n": Infinity}}', "body"),
    (b'{"type": "x", "payload": {"n": ' + b"9" * 5000 + b"}}", "body"),
    (b"[" * 100_000, "body"),
    (b'{"type": "x", "payload": {"s": "a\\u0000b"}}', "payload.s"),
    (b'{"type": "x", "payload": {"a\\u0000": 1}}', "payload"),
    (b'{"type": "x", "name": "nul\\u0000"}', "name"),
    (b'{"type": "x", "payload": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "payload.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"),
    (b'{"type": "x", "run_at": "9999-12-31T23:59:59Z"}', "run_at"),
    (b'{"type": "x", "run_at": "2026-12-31T23:59:60Z"}', "run_at"),
    (b'{"type": "x", "run_at": 1767225600}', "run_at"),
    (b'{"type": "x", "cron": "0 0 30 2 *"}', "cron"),
    (b'{"type": "x", "cron": "' + b"1 " * 3000 + b'"}', "cron"),
    (b'{"type": "x", "cron": "\xd9\xa1 * * * *"}', "cron"),
    (b"\xff\xfe not utf-8", "body"),
    (b'{"type": "x", "payload": "\'; DROP TABLE skiplock_tasks;--"}', "payload"),
])
async def test_hostile_bodies_are_400_never_500(api: Client, pool: asyncpg.Pool, raw: bytes, field: str) -> None:
    status, problem, resp = await api("POST", "/api/tasks", raw=raw)
    assert status == 400, problem
    assert resp.content_type == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 0


async def test_nul_in_query_is_400(api: Client) -> None:
    for path in ("/api/tasks?name=a%00b", "/api/runs?worker_id=%00", "/api/tasks?type=" + "x" * 2000):
        status, problem, _ = await api("GET", path)
        assert status == 400, (path, problem)


async def test_strings_round_trip_byte_identical(api: Client) -> None:
    odd = "'; DROP TABLE skiplock_tasks;-- \u202e RTL 🦊 zero\u200bwidth %s {} \U0001d518"
    status, task, _ = await api("POST", "/api/tasks", {"type": "x", "name": odd, "payload": {odd: [odd]}})
    assert status == 201
    _, got, _ = await api("GET", f"/api/tasks/{task['id']}")
    assert got["name"] == odd and got["payload"] == {odd: [odd]}


async def test_body_limit(db_url: str, pool: asyncpg.Pool) -> None:
    async for api in _client(db_url, pool, max_body_bytes=1024):
        status, problem, resp = await api("POST", "/api/tasks", {"type": "x", "payload": {"blob": "x" * 4096}})
        assert status == 413 and resp.content_type == "application/problem+json" and "1,024 bytes" in problem["detail"]
        assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 0


async def test_idempotent_create(api: Client, pool: asyncpg.Pool) -> None:
    s1, first, _ = await api("POST", "/api/tasks", {"type": "x"}, headers={"Idempotency-Key": "order-42"})
    s2, second, _ = await api("POST", "/api/tasks", {"type": "x"}, headers={"Idempotency-Key": "order-42"})
    s3, third, _ = await api("POST", "/api/tasks", {"type": "x", "idempotency_key": "order-42"})
    assert (s1, s2, s3) == (201, 200, 200)
    assert first["id"] == second["id"] == third["id"]
    assert await pool.fetchval("SELECT count(*) FROM skiplock_all_runs") == 1


async def test_one_idempotency_key_for_a_different_request_is_a_conflict(api: Client, pool: asyncpg.Pool) -> None:
    s1, first, _ = await api("POST", "/api/tasks", {"type": "x", "payload": {"n": 1}, "idempotency_key": "k1"})
    s2, problem, resp = await api("POST", "/api/tasks", {"type": "x", "payload": {"n": 2}, "idempotency_key": "k1"})
    assert (s1, s2) == (201, 409) and resp.content_type == "application/problem+json"
    assert "different request" in problem["detail"] and first["id"] in problem["detail"]
    # The same request again is still the first answer; a batch that reuses the key wrongly
    # fails whole.
    s3, again, _ = await api("POST", "/api/tasks", {"type": "x", "payload": {"n": 1}, "idempotency_key": "k1"})
    assert (s3, again["id"]) == (200, first["id"])
    s4, _, _ = await api("POST", "/api/tasks/batch", {"tasks": [
        {"type": "y"}, {"type": "x", "payload": {"n": 3}, "idempotency_key": "k1"}]})
    assert s4 == 409
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 1


async def test_batch_is_ordered_all_or_nothing_and_idempotent_inside(api: Client, pool: asyncpg.Pool) -> None:
    status, body, _ = await api("POST", "/api/tasks/batch", {"tasks": [
        {"type": "a", "name": "one"}, {"type": "b", "name": "two", "idempotency_key": "k"},
        {"type": "b", "name": "two", "idempotency_key": "k"}]})
    assert status == 201
    assert [t["name"] for t in body["tasks"]] == ["one", "two", "two"]
    assert body["tasks"][1]["id"] == body["tasks"][2]["id"]
    # Retrying the whole batch (what keys are for) returns the same tasks, makes none.
    status, again, _ = await api("POST", "/api/tasks/batch", {"tasks": [
        {"type": "b", "name": "two", "idempotency_key": "k"}, {"type": "b", "name": "two", "idempotency_key": "k"}]})
    assert status == 201 and [t["id"] for t in again["tasks"]] == [body["tasks"][1]["id"]] * 2
    assert again["tasks"][0]["name"] == "two"
    status, _, _ = await api("POST", "/api/tasks/batch", {"tasks": [{"type": "a"}, {"type": "http", "payload": {}}]})
    assert status == 400
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 2, "a bad batch must write nothing"


async def test_list_filters_and_cursor_paging(api: Client) -> None:
    status, body, _ = await api("POST", "/api/tasks/batch", {"tasks": [
        {"type": "report", "name": f"report-{i:02d}", "queue": "q1" if i % 2 else "q2"} for i in range(25)]})
    assert status == 201
    await api("POST", "/api/tasks", {"type": "other", "name": "zzz"})
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/tasks?type=report&limit=10" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await api("GET", path)
        assert status == 200
        seen += [t["name"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and len(set(seen)) == 25
    status, page, _ = await api("GET", "/api/tasks?queue=q1&limit=500")
    assert {t["queue"] for t in page["tasks"]} == {"q1"} and len(page["tasks"]) == 12
    status, page, _ = await api("GET", "/api/tasks?name=report-1")
    assert sorted(t["name"] for t in page["tasks"]) == [f"report-1{i}" for i in range(10)]
    status, page, _ = await api("GET", "/api/tasks?state=scheduled&limit=500")
    assert len(page["tasks"]) == 26


async def test_queue_endpoints(api: Client) -> None:
    await api("POST", "/api/tasks", {"type": "x", "queue": "bulk"})
    status, q, _ = await api("POST", "/api/queues/bulk/pause")
    assert status == 200 and q["paused"] and q["pending"] == 1
    status, body, _ = await api("GET", "/api/queues")
    assert status == 200 and [x["name"] for x in body["queues"]] == ["bulk"]
    _, task_page, _ = await api("GET", "/api/tasks?queue=bulk")
    assert task_page["tasks"][0]["waiting"]["reason"] == "queue_paused"
    status, q, _ = await api("POST", "/api/queues/bulk/resume")
    assert status == 200 and not q["paused"]
    status, problem, _ = await api("POST", "/api/queues/-bad/pause")
    assert status == 400 and problem["errors"][0]["field"] == "name"
    status, spec, _ = await api("GET", "/api/openapi.json")
    assert {"/api/queues", "/api/queues/{name}/pause", "/api/queues/{name}/resume"} <= set(spec["paths"])


async def test_rate_limit_endpoints(api: Client) -> None:
    status, rl, _ = await api("PUT", "/api/rate-limits/partner-api", {"per_second": 5, "burst": 10})
    assert status == 200 and rl["name"] == "partner-api" and rl["tokens"] == 10 and rl["paused_until"] is None
    status, body, _ = await api("GET", "/api/rate-limits")
    assert status == 200 and [r["name"] for r in body["rate_limits"]] == ["partner-api"]
    status, one, _ = await api("GET", "/api/rate-limits/partner-api")
    assert status == 200 and one["per_second"] == 5
    for bad, field in (({"per_second": 0}, "per_second"), ({"burst": 2}, "per_second"),
                       ({"per_second": 1, "burst": 0}, "burst"), ({"per_second": 1, "rate": 2}, "rate"),
                       ({"per_second": True}, "per_second")):
        status, problem, _ = await api("PUT", "/api/rate-limits/x", bad)
        assert status == 400 and field in [e["field"] for e in problem["errors"]], (bad, problem)
    status, problem, _ = await api("PUT", "/api/rate-limits/-x", {"per_second": 1})
    assert status == 400 and problem["errors"][0]["field"] == "name"
    status, problem, _ = await api("POST", "/api/tasks", {"type": "x", "rate_limit": "missing"})
    assert status == 400 and problem["errors"][0]["field"] == "rate_limit"
    status, problem, _ = await api("POST", "/api/tasks/batch", {"tasks": [{"type": "x"},
                                                                         {"type": "x", "rate_limit": "missing"}]})
    assert status == 400 and problem["errors"][0]["field"] == "tasks[1].rate_limit"
    status, task, _ = await api("POST", "/api/tasks", {"type": "x", "rate_limit": "partner-api",
                                                       "run_at": "2030-01-01T00:00:00Z"})
    assert status == 201 and task["rate_limit"] == "partner-api"
    status, problem, _ = await api("DELETE", "/api/rate-limits/partner-api")
    assert status == 409 and task["id"] in problem["detail"]
    status, patched, _ = await api("PATCH", f"/api/tasks/{task['id']}", {"rate_limit": None})
    assert status == 200 and patched["rate_limit"] is None
    status, problem, _ = await api("PATCH", f"/api/tasks/{task['id']}", {"rate_limit": "missing"})
    assert status == 400 and problem["errors"][0]["field"] == "rate_limit"
    status, _, _ = await api("DELETE", "/api/rate-limits/partner-api")
    assert status == 204
    status, _, _ = await api("GET", "/api/rate-limits/partner-api")
    assert status == 404


async def test_dedup_over_http(api: Client) -> None:
    body = {"type": "x", "payload": {"v": 1}, "dedup": {"key": "report-7"}}
    status, first, _ = await api("POST", "/api/tasks", body)
    assert status == 201 and first["deduplicated"] is False
    status, again, _ = await api("POST", "/api/tasks", {**body, "payload": {"v": 2}})
    assert status == 200 and again["deduplicated"] is True and again["id"] == first["id"]
    status, got, _ = await api("GET", f"/api/tasks/{first['id']}")
    assert got["payload"] == {"v": 1} and got["dedup"]["while"] == "active" and "deduplicated" not in got
    status, problem, _ = await api("POST", "/api/tasks", {"type": "x", "dedup": {"key": "k", "while": "ever"}})
    assert status == 400 and problem["errors"][0]["field"] == "dedup.while"
    status, problem, _ = await api("POST", "/api/tasks", {"type": "x", "dedup": {"while": "pending"}})
    assert status == 400 and problem["errors"][0]["field"] == "dedup.key"


async def test_lists_filter_by_creation_time(api: Client, pool: asyncpg.Pool) -> None:
    _, body, _ = await api("POST", "/api/tasks/batch", {"tasks": [{"type": "report", "name": f"r{i}"}
                                                                  for i in range(3)]})
    ids = [t["id"] for t in body["tasks"]]
    # Spread the three over a day, as if made at 00:00, 12:00 and 23:00 (tasks and runs).
    for tid, hour in zip(ids, (0, 12, 23), strict=True):
        at = f"2026-11-20T{hour:02d}:00:00Z"
        await pool.execute("UPDATE skiplock_tasks SET created_at = $2::text::timestamptz WHERE id = $1::text::uuid",
                           tid, at)
        await pool.execute("UPDATE skiplock_runs SET created_at = $2::text::timestamptz "
                           "WHERE task_id = $1::text::uuid", tid, at)
    window = "created_after=2026-11-20T06:00:00Z&created_before=2026-11-20T23:00:00%2B00:00"
    status, page, _ = await api("GET", f"/api/tasks?{window}")
    assert status == 200 and [t["name"] for t in page["tasks"]] == ["r1"], "after is inclusive, before exclusive"
    status, page, _ = await api("GET", f"/api/runs?{window}")
    assert status == 200 and [r["task_id"] for r in page["runs"]] == [ids[1]]
    status, page, _ = await api("GET", f"/api/tasks/{ids[2]}/runs?created_after=2026-11-20T23:00:00Z")
    assert status == 200 and len(page["runs"]) == 1
    status, problem, _ = await api("GET", "/api/runs?created_after=2026-11-20T06:00:00")
    assert status == 400 and problem["errors"][0]["field"] == "created_after", "an instant needs its offset"


async def test_cancel_pause_resume_trigger_patch(api: Client) -> None:
    _, task, _ = await api("POST", "/api/tasks", {"type": "x", "cron": "0 9 * * *", "timezone": "Europe/Berlin"})
    tid = task["id"]
    status, paused, _ = await api("POST", f"/api/tasks/{tid}/pause")
    assert status == 200 and paused["state"] == "paused" and paused["next_run_at"] is None
    status, problem, _ = await api("POST", f"/api/tasks/{tid}/trigger")
    assert status == 409
    status, resumed, _ = await api("POST", f"/api/tasks/{tid}/resume")
    assert status == 200 and resumed["state"] == "scheduled" and resumed["next_run_at"].endswith(":00Z")
    status, problem, _ = await api("POST", f"/api/tasks/{tid}/resume")
    assert status == 409 and "paused" in problem["detail"], "resuming a task that is not paused is a conflict"
    status, patched, _ = await api("PATCH", f"/api/tasks/{tid}", {"cron": "30 6 * * *", "priority": 7})
    assert status == 200 and patched["cron"] == "30 6 * * *" and patched["priority"] == 7
    assert patched["next_run_at"][11:16] in ("05:30", "04:30")  # 06:30 Berlin in UTC
    assert len(patched["next_runs"]) == 5
    _, runs, _ = await api("GET", f"/api/tasks/{tid}/runs?state=pending")
    assert len(runs["runs"]) == 1, "the old schedule's slot must be gone"
    status, run, _ = await api("POST", f"/api/tasks/{tid}/trigger")
    assert status == 201 and run["reason"] == "trigger" and run["state"] == "pending"
    status, problem, _ = await api("PATCH", f"/api/tasks/{tid}", {"type": "http"})
    assert status == 400 and problem["errors"][0]["field"] == "type"
    status, cancelled, _ = await api("DELETE", f"/api/tasks/{tid}")
    assert status == 200 and cancelled["state"] == "cancelled" and cancelled["next_run_at"] is None
    _, runs, _ = await api("GET", f"/api/tasks/{tid}/runs")
    assert {r["state"] for r in runs["runs"]} == {"cancelled"}
    status, _, _ = await api("POST", f"/api/tasks/{tid}/pause")
    assert status == 409


async def test_a_repeated_filter_is_a_400_not_its_first_value(api: Client) -> None:
    status, problem, _ = await api("GET", "/api/runs?state=failed&state=succeeded")
    assert status == 400 and [e["field"] for e in problem["errors"]] == ["state"]
    status, problem, _ = await api("GET", "/api/tasks?type=a&type=b&limit=5")
    assert status == 400 and [e["field"] for e in problem["errors"]] == ["type"]


async def test_auth_token(db_url: str, pool: asyncpg.Pool) -> None:
    async for api in _client(db_url, pool, api_token="s3cret"):
        status, problem, resp = await api("GET", "/api/tasks")
        assert status == 401 and resp.content_type == "application/problem+json"
        status, _, _ = await api("GET", "/api/tasks", headers={"Authorization": "Bearer s3cret"})
        assert status == 200
        status, _, _ = await api("GET", "/api/healthz")
        assert status == 200


async def test_health_metrics_openapi_docs(api: Client) -> None:
    status, health, _ = await api("GET", "/api/healthz")
    assert (status, health) == (200, {"status": "ok", "database": "ok"})
    await api("POST", "/api/tasks/batch", {"tasks": [{"type": "x"}, {"type": "x"}, {"type": "x", "delay_s": 3600}]})
    status, text, _ = await api("GET", "/metrics")
    assert status == 200 and "skiplock_api_requests_total" in text
    assert 'skiplock_runs{state="pending"} 3.0' in text and "skiplock_due_backlog 2.0" in text
    assert "skiplock_database_up 1.0" in text and 'skiplock_tasks{state="scheduled"} 3.0' in text
    status, stats, _ = await api("GET", "/api/stats")
    assert status == 200 and stats["runs"]["pending"] == 3 and stats["runs"]["succeeded"] == 0
    assert stats["tasks"] == {"scheduled": 3, "running": 0, "paused": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert stats["queues"] == [{"name": "default", "runs": {**stats["runs"], "pending": 3}}]
    assert stats["due_backlog"] == 2
    status, problem, _ = await api("GET", "/api/stats?state=x")
    assert status == 400 and problem["errors"][0]["field"] == "state"
    status, spec, _ = await api("GET", "/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    for path in ("/api/tasks", "/api/tasks/batch", "/api/tasks/{id}", "/api/tasks/{id}/runs", "/api/runs",
                 "/api/runs/{id}", "/api/workers", "/api/stats", "/api/healthz", "/metrics"):
        assert path in spec["paths"], path
    status, html, _ = await api("GET", "/docs")
    assert status == 200 and "swagger-ui-bundle.js" in html
    status, js, _ = await api("GET", "/docs/static/swagger-ui-bundle.js")
    assert status == 200 and len(js) > 100_000


async def test_concurrent_creates_with_one_idempotency_key_make_one_task(db_url: str, pool: asyncpg.Pool) -> None:
    import asyncio

    from skiplock.sql import db

    big = await db.create_pool(db_url, min_size=10, max_size=10)
    try:
        async for api in _client(db_url, big):
            results = await asyncio.gather(*(api("POST", "/api/tasks", {"type": "x"}, headers={"Idempotency-Key": "once"})
                                             for _ in range(30)))
    finally:
        await big.close()
    assert sorted(s for s, _, _ in results).count(201) == 1
    assert {t["id"] for _, t, _ in results} == {results[0][1]["id"]}
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 1
    assert await pool.fetchval("SELECT count(*) FROM skiplock_all_runs") == 1


async def _worker_row(pool: asyncpg.Pool, types: list[str], slots: int = 2, running: int = 0) -> None:
    await pool.execute(
        "INSERT INTO skiplock_workers (id, name, host, types, queues, slots, running, coordinator_id) "
        "VALUES ($1, $1, 'h', $2, '{}', $3, $4, 'c')", f"w-{'-'.join(types)}", types, slots, running)


async def test_a_typo_in_the_type_is_warned_about_and_its_run_says_why_it_waits(api: Client,
                                                                               pool: asyncpg.Pool) -> None:
    await _worker_row(pool, ["email", "http"])
    status, typo, _ = await api("POST", "/api/tasks", {"type": "emial"})
    assert status == 201 and len(typo["warnings"]) == 1 and "'emial'" in typo["warnings"][0]
    assert typo["waiting"]["reason"] == "no_worker"
    status, fine, _ = await api("POST", "/api/tasks", {"type": "email"})
    assert status == 201 and fine["warnings"] == []
    status, body, _ = await api("POST", "/api/tasks/batch", {"tasks": [{"type": "email"}, {"type": "emial"}]})
    assert [bool(t["warnings"]) for t in body["tasks"]] == [False, True]
    _, runs, _ = await api("GET", f"/api/tasks/{typo['id']}/runs")
    assert runs["runs"][0]["waiting"]["reason"] == "no_worker" and "emial" in runs["runs"][0]["waiting"]["detail"]
    _, one, _ = await api("GET", f"/api/runs/{runs['runs'][0]['id']}")
    assert one["waiting"] == runs["runs"][0]["waiting"]
    _, got, _ = await api("GET", f"/api/tasks/{typo['id']}")
    assert got["waiting"]["reason"] == "no_worker"


async def test_waiting_names_the_first_reason_that_applies(api: Client, pool: asyncpg.Pool) -> None:
    await _worker_row(pool, ["email"], slots=1, running=1)
    _, later, _ = await api("POST", "/api/tasks", {"type": "email", "delay_s": 3600})
    assert later["waiting"]["reason"] == "not_due" and later["waiting"]["until"] == later["next_run_at"]
    _, busy, _ = await api("POST", "/api/tasks", {"type": "email"})
    assert busy["waiting"]["reason"] == "no_worker" and "busy" in busy["waiting"]["detail"]
    status, paused, _ = await api("POST", f"/api/tasks/{later['id']}/pause")
    assert status == 200 and paused["waiting"]["reason"] == "task_paused" and paused["waiting"]["until"] is None
    _, runs, _ = await api("GET", f"/api/tasks/{later['id']}/runs")
    assert runs["runs"][0]["waiting"]["reason"] == "task_paused", "paused beats not_due"
    await api("DELETE", f"/api/tasks/{busy['id']}")
    _, runs, _ = await api("GET", f"/api/tasks/{busy['id']}/runs")
    assert runs["runs"][0]["state"] == "cancelled" and runs["runs"][0]["waiting"] is None


async def test_text_that_postgresql_cannot_store_is_a_400_not_a_500(api: Client, pool: asyncpg.Pool) -> None:
    status, problem, _ = await api("POST", "/api/tasks", raw=b'{"type": "x", "name": "\\ud800"}')
    assert status == 400 and problem["errors"][0]["field"] == "body"
    status, problem, _ = await api("POST", "/api/tasks", raw=b'{"type": "x", "payload": {"k": ["\\udfff"]}}')
    assert status == 400
    assert await pool.fetchval("SELECT count(*) FROM skiplock_tasks") == 0


async def test_a_header_that_is_not_utf8_is_read_as_latin1(db_url: str, pool: asyncpg.Pool) -> None:
    async for api in _client(db_url, pool):
        host, port = api.base.split("//")[1].rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        body = b'{"type": "x"}'
        writer.write(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Idempotency-Key: caf\xe9\r\nContent-Length: " + str(len(body)).encode() +
                     b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        assert await pool.fetchval("SELECT idempotency_key FROM skiplock_tasks") == "café"


async def test_patch_run_at_moves_the_pending_run(api: Client) -> None:
    """Found by schemathesis: the statement's types were left to inference and it failed."""
    _, task, _ = await api("POST", "/api/tasks", {"type": "x", "run_at": "2030-01-01T00:00:00Z"})
    status, patched, _ = await api("PATCH", f"/api/tasks/{task['id']}", {"run_at": "2000-01-01T00:00:00Z",
                                                                         "priority": 5})
    assert status == 200 and patched["run_at"] == "2000-01-01T00:00:00Z"
    _, runs, _ = await api("GET", f"/api/tasks/{task['id']}/runs")
    assert runs["runs"][0]["scheduled_for"] == "2000-01-01T00:00:00Z"
