"""The REST gateway: `create_app(settings)` builds the aiohttp application."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from skiplock.api import bulk, dashboard, longpoll, openapi, store
from skiplock.api.problems import FieldError, Problem, invalid, not_found
from skiplock.api.views import decode_cursor
from skiplock.common import jsontext, logs, timeutil
from skiplock.common.config import ApiSettings
from skiplock.common.metrics import render
from skiplock.common.states import FINAL_RUN_STATES, FINAL_TASK_STATES, RunState, TaskState
from skiplock.common.validation import (
    QUEUE_RE,
    QUEUE_RULE,
    RATE_LIMIT_RE,
    RATE_LIMIT_RULE,
    validate_batch,
    validate_bulk,
    validate_create,
    validate_patch,
    validate_rate_limit,
)
from skiplock.sql import db

log = logs.get("skiplock.api")

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
METRICS = web.AppKey("metrics", dict)
REGISTRY = web.AppKey("registry", CollectorRegistry)
WAITS = web.AppKey("waits", longpoll.Waits)
MAX_WAIT_S = 60.0
ACCESS = web.RequestKey("access", str)  # what the request's token may do: write | read

RUN_STATES = tuple(RunState)
TASK_STATES = tuple(TaskState)

HEALTH_TIMEOUT_S = 1.5  # healthz answers within 2 s, however busy or stuck the pool is

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=jsontext.dumps_bytes(data), status=status, content_type="application/json",
                        headers=headers)


def _db_down(exc: BaseException) -> Problem:
    return Problem(503, "Database unavailable",
                   f"the database cannot be reached ({type(exc).__name__}); retry shortly",
                   headers={"Retry-After": "2"})


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    metrics = request.app[METRICS]
    status = 500
    try:
        if request.body_exists:
            await request.read()  # a slow upload is not the database's time (aiohttp caches the body)
        # A long-poll's wait is not database time: its budget is the wait plus the usual.
        async with asyncio.timeout(request.app[SETTINGS].request_db_timeout_s + _wait_budget(request)):
            response = await handler(request)
        status = response.status
        return response
    except TimeoutError:
        status = 503
        budget = request.app[SETTINGS].request_db_timeout_s
        log.warning("database_timeout", path=request.path, budget_s=budget)
        return Problem(503, "Database unavailable",
                       f"the database did not answer within {budget:g}s; nothing was changed unless a "
                       "retry says so (creates with an idempotency key are safe to retry)",
                       headers={"Retry-After": "2"}).response()
    except Problem as p:
        status = p.status
        return p.response()
    except store.NotFound as exc:
        status = 404
        return not_found(exc.what).response()
    except store.Invalid as exc:
        status = 400
        return invalid([FieldError(f, m) for f, m in exc.errors]).response()
    except store.Conflict as exc:
        status = 409
        return Problem(409, "Conflict", str(exc)).response()
    except web.HTTPRequestEntityTooLarge:
        status = 413
        limit = request.app[SETTINGS].max_body_bytes
        return Problem(413, "Request too large", f"the body is over the API's limit of {limit:,} bytes "
                       "(SKIPLOCK_MAX_BODY_BYTES); send fewer tasks per batch or a smaller payload").response()
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return Problem(exc.status, exc.reason, exc.text or exc.reason, headers=keep).response()
    except db.TRANSIENT_ERRORS as exc:
        status = 503
        log.warning("database_unavailable", error=str(exc), path=request.path)
        return _db_down(exc).response()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return Problem(500, "Internal error", "the server failed; the error is logged").response()
    finally:
        metrics["requests"].labels(request.method, route, str(status)).inc()
        metrics["latency"].labels(request.method, route).observe(time.perf_counter() - started)


READS = frozenset({"GET", "HEAD", "OPTIONS"})


BULK_BUDGET_S = 30.0  # a bulk command is up to 1,000 task commands, each its own transaction


def _wait_budget(request: web.Request) -> float:
    if request.method == "POST" and request.path == "/api/tasks/bulk":
        return BULK_BUDGET_S
    try:
        value = float(request.query.get("wait_s", "0")) if request.method == "GET" else 0.0
    except ValueError:
        return 0.0
    return min(max(value, 0.0), MAX_WAIT_S) if value == value else 0.0  # NaN: no wait


def _wait_s(request: web.Request) -> float:
    """`wait_s` (0-60): how long a GET of a task or run may wait for it to be final."""
    raw = request.query.get("wait_s")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_S:
        raise invalid([FieldError("wait_s", f"must be a number of seconds from 0 to {MAX_WAIT_S:g}")])
    return value


def _bearer(request: web.Request, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                                     f"Bearer {token}".encode())


def auth_middleware(token: str | None, read_token: str | None = None) -> Any:
    """SKIPLOCK_API_TOKEN may do anything; SKIPLOCK_API_READ_TOKEN only read (a write with it
    is 403). Without SKIPLOCK_API_TOKEN, a request with no token may do anything too. The
    dashboard's assets and /api/healthz need no token."""
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[ACCESS] = "write"
        if not request.path.startswith("/api/") or request.path == "/api/healthz":
            return await handler(request)
        if _bearer(request, token):
            return await handler(request)
        if _bearer(request, read_token):
            request[ACCESS] = "read"
            if request.method not in READS:
                raise Problem(403, "Forbidden", "this token may only read (SKIPLOCK_API_READ_TOKEN); "
                              "writes need SKIPLOCK_API_TOKEN")
            return await handler(request)
        if token is not None:
            raise Problem(401, "Unauthorized", "send Authorization: Bearer <SKIPLOCK_API_TOKEN> "
                          "(or the read-only SKIPLOCK_API_READ_TOKEN)", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str) -> Any:
    """json.loads without NaN/Infinity (PostgreSQL's jsonb rejects them)."""
    return json.loads(text, parse_constant=_no_constants)


async def _body(request: web.Request) -> Any:
    if not request.body_exists:
        raise invalid([FieldError("body", "a JSON body is required")])
    try:
        data = await request.json(loads=strict_loads)
        # "\ud800" is valid JSON but no text: a lone surrogate cannot be stored (UTF-8), and
        # writing the body as UTF-8 finds one (UnicodeEncodeError).
        jsontext.dumps_bytes(data)
        return data
    except RecursionError:
        raise invalid([FieldError("body", "is nested too deeply")]) from None
    except UnicodeEncodeError:
        raise invalid([FieldError("body", "holds a lone UTF-16 surrogate escape (like \\ud800), which is not "
                                          "text")]) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, NaN, 5,000-digit numbers
        raise invalid([FieldError("body", f"is not valid JSON: {exc}")]) from None


def _header_text(request: web.Request, name: str) -> str | None:
    """A header as text. aiohttp keeps bytes that are not UTF-8 as surrogates, which
    PostgreSQL cannot take; such a value is read as ISO-8859-1, as HTTP/1.1 historically is."""
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        value.encode()
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")


def _uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found(f"{name.replace('_', ' ')} {request.match_info[name]!r}") from None


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise invalid([FieldError("limit", "must be an integer from 1 to 500")])
    return int(raw)


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise invalid([FieldError(name, f"must be one of {', '.join(allowed)}")])
    return value


def _cursor(request: web.Request) -> str | None:
    cursor = request.query.get("cursor")
    if cursor is not None:  # given but empty is a malformed cursor, not "the first page"
        try:
            decode_cursor(cursor)
        except ValueError as exc:
            raise invalid([FieldError("cursor", str(exc))]) from None
    return cursor or None


def _check_query(request: web.Request, allowed: set[str]) -> None:
    unknown = [k for k in request.query if k not in allowed]
    if unknown:
        raise invalid([FieldError(k, "is not a known query parameter") for k in unknown])
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:  # never silently the first value
        raise invalid([FieldError(k, "is given more than once; each filter takes one value") for k in repeated])
    bad = [k for k, v in request.query.items() if "\x00" in v or len(v) > 1000]
    if bad:
        raise invalid([FieldError(k, "must be at most 1000 characters, without NUL") for k in bad])


def _created_range(request: web.Request) -> dict[str, datetime | None]:
    """`created_after` (inclusive) and `created_before` (exclusive), RFC 3339 with an offset."""
    out: dict[str, datetime | None] = {}
    errors = []
    for name in ("created_after", "created_before"):
        value = request.query.get(name)
        try:
            out[name] = timeutil.parse_rfc3339(value) if value is not None else None
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    if errors:
        raise invalid(errors)
    return out


RANGE = {"created_after", "created_before"}


# ---- tasks ----

async def create_task(request: web.Request) -> web.Response:
    body = await _body(request)
    spec, errors = validate_create(body, header_key=_header_text(request, "Idempotency-Key"))
    if spec is None:
        raise invalid(errors)
    [(task, created)] = await store.create_tasks(request.app[POOL], [spec], timeutil.utcnow(),
                                                 request.app[SETTINGS].lease_s)
    request.app[METRICS]["created"].inc(1 if created else 0)
    return _json(task, status=201 if created else 200,
                 headers={"Location": f"/api/tasks/{task['id']}"})


async def create_batch(request: web.Request) -> web.Response:
    specs, errors = validate_batch(await _body(request))
    if errors:
        raise invalid(errors)
    results = await store.create_tasks(request.app[POOL], specs, timeutil.utcnow(), request.app[SETTINGS].lease_s,
                                       batch=True)
    request.app[METRICS]["created"].inc(sum(1 for _, c in results if c))
    return _json({"tasks": [t for t, _ in results]}, status=201)


async def list_tasks(request: web.Request) -> web.Response:
    _check_query(request, {"state", "type", "queue", "name", "limit", "cursor", *RANGE})
    page = await store.list_tasks(
        request.app[POOL], state=_choice(request, "state", TASK_STATES),
        type_=request.query.get("type"), queue=request.query.get("queue"),
        name=request.query.get("name"), limit=_limit(request), cursor=_cursor(request),
        lease_s=request.app[SETTINGS].lease_s, **_created_range(request))
    return _json({"tasks": page.items, "next_cursor": page.next_cursor})


async def get_task(request: web.Request) -> web.Response:
    task_id, wait_s = _uuid(request), _wait_s(request)
    pool, lease_s = request.app[POOL], request.app[SETTINGS].lease_s
    task = await store.get_task(pool, task_id, lease_s)
    if task is None:
        raise not_found("task with that id")
    if wait_s and task["state"] not in FINAL_TASK_STATES:
        async def final() -> dict[str, Any] | None:
            t = await store.get_task(pool, task_id, lease_s)
            return t if t is None or t["state"] in FINAL_TASK_STATES else None

        task = await request.app[WAITS].until(pool, task_id, wait_s, final) or await store.get_task(
            pool, task_id, lease_s)
    return _json(task)


def _task_action(fn: Callable[..., Awaitable[dict[str, Any]]], status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _json(await fn(request.app[POOL], _uuid(request), timeutil.utcnow()), status=status)

    return handler


async def patch_task(request: web.Request) -> web.Response:
    body = await _body(request)

    def validate(b: Any, type_: str, cron: str | None) -> dict[str, Any]:
        changes, errors = validate_patch(b, type_, cron)
        if errors and all(e.conflict for e in errors):
            raise Problem(409, "Conflict", "; ".join(f"{e.field}: {e.message}" for e in errors), errors)
        if errors:
            raise invalid(errors)
        return changes

    return _json(await store.patch_task(request.app[POOL], _uuid(request), body, timeutil.utcnow(), validate))


async def task_runs(request: web.Request) -> web.Response:
    _check_query(request, {"state", "limit", "cursor", *RANGE})
    task_id = _uuid(request)
    page = await store.list_runs(request.app[POOL], state=_choice(request, "state", RUN_STATES),
                                 type_=None, task_id=task_id, worker_id=None,
                                 limit=_limit(request), cursor=_cursor(request),
                                 lease_s=request.app[SETTINGS].lease_s, **_created_range(request))
    if not page.items and await store.get_task(request.app[POOL], task_id) is None:
        raise not_found("task with that id")
    return _json({"runs": page.items, "next_cursor": page.next_cursor})


# ---- runs, workers, health ----

async def list_runs(request: web.Request) -> web.Response:
    _check_query(request, {"state", "type", "task_id", "worker_id", "limit", "cursor", *RANGE})
    task_id = None
    if "task_id" in request.query:
        try:
            task_id = uuid.UUID(request.query["task_id"])
        except ValueError:
            raise invalid([FieldError("task_id", "must be a task id (UUID)")]) from None
    page = await store.list_runs(request.app[POOL], state=_choice(request, "state", RUN_STATES),
                                 type_=request.query.get("type"), task_id=task_id,
                                 worker_id=request.query.get("worker_id"),
                                 limit=_limit(request), cursor=_cursor(request),
                                 lease_s=request.app[SETTINGS].lease_s, **_created_range(request))
    return _json({"runs": page.items, "next_cursor": page.next_cursor})


async def get_run(request: web.Request) -> web.Response:
    run_id, wait_s = _uuid(request), _wait_s(request)
    pool, lease_s = request.app[POOL], request.app[SETTINGS].lease_s
    run = await store.get_run(pool, run_id, lease_s)
    if run is None:
        raise not_found("run with that id")
    if wait_s and run["state"] not in FINAL_RUN_STATES:
        async def ended() -> dict[str, Any] | None:
            r = await store.get_run(pool, run_id, lease_s)
            return r if r is None or r["state"] in FINAL_RUN_STATES else None

        run = await request.app[WAITS].until(pool, run_id, wait_s, ended) or await store.get_run(pool, run_id, lease_s)
    return _json(run)


async def get_me(request: web.Request) -> web.Response:
    """What this request's token may do (the dashboard hides the buttons a read-only one
    may not press)."""
    return _json({"access": request[ACCESS], "token_required": request.app[SETTINGS].api_token is not None})


async def get_minutes(request: web.Request) -> web.Response:
    _check_query(request, {"minutes", "queue"})
    raw = request.query.get("minutes", "60")
    if not raw.isdigit() or not 1 <= int(raw) <= store.MAX_MINUTES:
        raise invalid([FieldError("minutes", f"must be an integer from 1 to {store.MAX_MINUTES}")])
    queue = request.query.get("queue")
    if queue is not None and not QUEUE_RE.match(queue):
        raise invalid([FieldError("queue", QUEUE_RULE)])
    return _json(await store.minutes(request.app[POOL], timeutil.utcnow(), int(raw), queue))


async def bulk_tasks(request: web.Request) -> web.Response:
    body = await _body(request)
    req, errors = validate_bulk(body)
    if req is None:
        raise invalid(errors)
    pool, now = request.app[POOL], timeutil.utcnow()
    if req.ids is not None:
        return _json(await bulk.by_ids(pool, req.action, req.ids, now))
    try:
        return _json(await bulk.by_filter(pool, req.action, req.filter, now, cursor=req.cursor, limit=req.limit,
                                          dry_run=req.dry_run))
    except ValueError as exc:  # a cursor not of our making
        raise invalid([FieldError("cursor", str(exc))]) from None


async def get_stats(request: web.Request) -> web.Response:
    _check_query(request, set())
    return _json(await store.stats(request.app[POOL], timeutil.utcnow(), request.app[SETTINGS].lease_s))


async def list_queues(request: web.Request) -> web.Response:
    _check_query(request, set())
    return _json({"queues": await store.list_queues(request.app[POOL], timeutil.utcnow(),
                                                    request.app[SETTINGS].lease_s)})


def _queue_action(paused: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not QUEUE_RE.match(name):
            raise invalid([FieldError("name", QUEUE_RULE)])
        return _json(await store.set_queue_paused(request.app[POOL], name, paused, timeutil.utcnow(),
                                                  request.app[SETTINGS].lease_s))

    return handler


def _rate_limit_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not RATE_LIMIT_RE.match(name):
        raise invalid([FieldError("name", RATE_LIMIT_RULE)])
    return name


async def put_rate_limit(request: web.Request) -> web.Response:
    name = _rate_limit_name(request)
    limit, errors = validate_rate_limit(await _body(request))
    if limit is None:
        raise invalid(errors)
    per_second, burst = limit
    return _json(await store.put_rate_limit(request.app[POOL], name, per_second, burst, timeutil.utcnow()))


async def list_rate_limits(request: web.Request) -> web.Response:
    _check_query(request, set())
    return _json({"rate_limits": await store.list_rate_limits(request.app[POOL], timeutil.utcnow())})


async def get_rate_limit(request: web.Request) -> web.Response:
    found = await store.list_rate_limits(request.app[POOL], timeutil.utcnow(), _rate_limit_name(request))
    if not found:
        raise not_found("rate limit with that name")
    return _json(found[0])


async def delete_rate_limit(request: web.Request) -> web.Response:
    await store.delete_rate_limit(request.app[POOL], _rate_limit_name(request))
    return web.Response(status=204)


async def list_workers(request: web.Request) -> web.Response:
    workers = await store.list_workers(request.app[POOL], timeutil.utcnow(),
                                       request.app[SETTINGS].lease_s)
    return _json({"workers": workers})


def _drain(drain: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _json(await store.drain_worker(request.app[POOL], request.match_info["id"], drain, timeutil.utcnow(),
                                              request.app[SETTINGS].lease_s))

    return handler


async def healthz(request: web.Request) -> web.Response:
    try:
        await db.probe(request.app[POOL], HEALTH_TIMEOUT_S)
    except db.TRANSIENT_ERRORS as exc:  # TimeoutError among them
        return _json({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}: {exc}"},
                     status=503, headers={"Retry-After": "2"})
    return _json({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    now = timeutil.utcnow()
    try:
        st = await store.stats(request.app[POOL], now, request.app[SETTINGS].lease_s)
        for state, n in st["runs"].items():
            m["runs"].labels(state).set(n)
        for state, n in st["tasks"].items():
            m["tasks"].labels(state).set(n)
        m["due"].set(st["due_backlog"])
        m["workers"].set(st["workers"])
        m["db_up"].set(1)
    except db.TRANSIENT_ERRORS:
        m["db_up"].set(0)  # still answer: the request counters are worth having in an outage
    return render(request.app[REGISTRY])


async def openapi_json(request: web.Request) -> web.Response:
    return _json(openapi.spec())


def _metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "requests": Counter("skiplock_api_requests_total", "API requests",
                            ["method", "route", "status"], registry=registry),
        "latency": Histogram("skiplock_api_request_seconds", "API request latency",
                             ["method", "route"], registry=registry),
        "created": Counter("skiplock_tasks_created_total", "Tasks created", registry=registry),
        "runs": Gauge("skiplock_runs", "Runs by state: live, and ended within retention (kept counts)", ["state"],
                      registry=registry),
        "tasks": Gauge("skiplock_tasks", "Tasks by state (kept counts)", ["state"], registry=registry),
        "due": Gauge("skiplock_due_backlog", "Pending runs already due (waiting for a slot)", registry=registry),
        "workers": Gauge("skiplock_workers_connected", "Workers with a recent heartbeat", registry=registry),
        "db_up": Gauge("skiplock_database_up", "1 when the API reached the database at this scrape",
                       registry=registry),
    }


def create_app(settings: ApiSettings, pool: asyncpg.Pool | None = None) -> web.Application:
    """The application. Pass `pool` to share one (tests); else it is made and closed here
    (run_api has waited for the database by then)."""
    app = web.Application(
        middlewares=[problems_middleware, auth_middleware(settings.api_token, settings.api_read_token)],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    registry = CollectorRegistry()
    app[REGISTRY] = registry
    app[METRICS] = _metrics(registry)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        if pool is not None:
            app[POOL] = pool
            yield
            return
        app[POOL] = await db.create_pool(settings.database_url, min_size=2, max_size=10,
                                         application_name="skiplock-api",
                                         acquire_timeout_s=settings.request_db_timeout_s)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool_ctx)

    async def waits_ctx(app: web.Application) -> AsyncIterator[None]:
        app[WAITS] = longpoll.Waits(settings.database_url)
        yield
        await app[WAITS].close()

    app.cleanup_ctx.append(waits_ctx)
    r = app.router
    # Ids are UUIDs in the route itself, so /api/tasks/batch is never taken for a task id (a
    # PATCH to it is a 405 with Allow, as for any path that lacks the method).
    tid = "{id:[0-9a-fA-F-]{32,36}}"
    r.add_post("/api/tasks", create_task)
    r.add_post("/api/tasks/batch", create_batch)
    r.add_get("/api/tasks", list_tasks)
    r.add_get(f"/api/tasks/{tid}", get_task)
    r.add_patch(f"/api/tasks/{tid}", patch_task)
    r.add_delete(f"/api/tasks/{tid}", _task_action(store.cancel_task))
    r.add_post(f"/api/tasks/{tid}/pause", _task_action(store.pause_task))
    r.add_post(f"/api/tasks/{tid}/resume", _task_action(store.resume_task))
    r.add_post(f"/api/tasks/{tid}/trigger", _task_action(store.trigger_task, status=201))
    r.add_get(f"/api/tasks/{tid}/runs", task_runs)
    r.add_get("/api/runs", list_runs)
    r.add_get(f"/api/runs/{tid}", get_run)
    r.add_get("/api/workers", list_workers)
    r.add_get("/api/stats", get_stats)
    r.add_get("/api/queues", list_queues)
    r.add_post("/api/queues/{name}/pause", _queue_action(True))
    r.add_post("/api/queues/{name}/resume", _queue_action(False))
    r.add_post("/api/tasks/bulk", bulk_tasks)
    r.add_get("/api/me", get_me)
    r.add_get("/api/stats/minutes", get_minutes)
    r.add_get("/api/rate-limits", list_rate_limits)
    r.add_put("/api/rate-limits/{name}", put_rate_limit)
    r.add_get("/api/rate-limits/{name}", get_rate_limit)
    r.add_delete("/api/rate-limits/{name}", delete_rate_limit)
    r.add_post("/api/workers/{id}/drain", _drain(True))
    r.add_post("/api/workers/{id}/undrain", _drain(False))
    r.add_get("/api/healthz", healthz)
    r.add_get("/api/openapi.json", openapi_json)
    r.add_get("/metrics", metrics)
    openapi.add_docs_routes(app)
    dashboard.add_routes(app)
    return app
