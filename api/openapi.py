"""The OpenAPI 3 description of the REST API, and Swagger UI served from local files."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from skiplock.api.waiting import REASONS
from skiplock.common.version import __version__

TS = {"type": "string", "format": "date-time", "description": "RFC 3339 with an explicit offset"}
NTS = {**TS, "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem_responses(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "problem", "content": {"application/problem+json": {"schema": _ref("Problem")}}}
            for c in codes}


def _ok(schema: dict[str, Any], code: int = 200, desc: str = "ok") -> dict[str, Any]:
    return {str(code): {"description": desc, "content": {"application/json": {"schema": schema}}}}


TASK_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "type": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,63}$"},
    "payload": {"type": "object", "description": "http: method, url, headers, json|body, timeout_s, expect_status, retry_on_status; shell: command, env, cwd, timeout_s; custom: any object"},
    "run_at": TS, "delay_s": {"type": "number", "minimum": 0},
    "cron": {"type": "string", "description": "5 fields, or 6 with seconds first"},
    "timezone": {"type": "string", "default": "UTC", "description": "IANA zone (cron only)"},
    "catch_up": {"type": "string", "enum": ["latest", "all", "none"], "default": "latest"},
    "overlap": {"type": "string", "enum": ["skip", "allow", "queue"], "default": "skip"},
    "queue": {"type": "string", "default": "default"},
    "priority": {"type": "integer", "default": 0, "description": "higher runs first"},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
    "timeout_s": {"type": "number", "default": 300},
    "retry_backoff_s": {"type": "number", "default": 1},
    "retry_backoff_max_s": {"type": "number", "default": 300},
    "retry_jitter": {"type": "boolean", "default": True},
    "idempotency_key": {"type": "string", "maxLength": 200},
}
RUN_STATE = {"type": "string", "enum": ["pending", "running", "succeeded", "failed", "cancelled", "skipped"]}

PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
]
ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]


@cache
def spec() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}}}},
        "TaskCreate": {"type": "object", "required": ["type"], "additionalProperties": False,
                       "properties": TASK_FIELDS},
        "TaskPatch": {"type": "object", "minProperties": 1, "additionalProperties": False,
                      "description": "Absent fields keep their value; cron only for cron tasks, run_at only for one-off tasks",
                      "properties": {k: v for k, v in TASK_FIELDS.items() if k not in ("type", "delay_s", "idempotency_key")}},
        "Run": {"type": "object", "properties": {
            "id": {"type": "string"}, "task_id": {"type": "string"}, "attempt": {"type": "integer"},
            "state": RUN_STATE,
            "type": {"type": "string"}, "queue": {"type": "string"}, "reason": {"type": "string"},
            "scheduled_for": TS, "due_at": NTS, "started_at": NTS, "finished_at": NTS,
            "duration_ms": {"type": "integer", "nullable": True},
            "worker_id": {"type": "string", "nullable": True},
            "result": {"nullable": True}, "error": {"type": "string", "nullable": True},
            "waiting": {"allOf": [_ref("Waiting")], "nullable": True,
                        "description": "why a pending run has not started; null unless pending"}}},
        "Waiting": {"type": "object", "required": ["reason", "detail", "until"], "properties": {
            "reason": {"type": "string", "enum": list(REASONS)},
            "detail": {"type": "string"},
            "until": {"type": "string", "format": "date-time", "nullable": True}}},
        "Task": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string"},
            "payload": {"type": "object"}, "queue": {"type": "string"}, "priority": {"type": "integer"},
            "run_at": NTS, "cron": {"type": "string", "nullable": True}, "timezone": {"type": "string"},
            "catch_up": {"type": "string", "nullable": True}, "overlap": {"type": "string", "nullable": True},
            "state": {"type": "string", "enum": ["scheduled", "running", "succeeded", "failed", "cancelled", "paused"]},
            "next_run_at": NTS, "next_runs": {"type": "array", "items": TS},
            "max_attempts": {"type": "integer"}, "timeout_s": {"type": "number"},
            "retry_backoff_s": {"type": "number"}, "retry_backoff_max_s": {"type": "number"},
            "retry_jitter": {"type": "boolean"}, "idempotency_key": {"type": "string", "nullable": True},
            "quarantined": {"type": "boolean"}, "lost_runs": {"type": "integer"},
            "created_at": TS, "updated_at": TS,
            "last_run": {"allOf": [_ref("Run")], "nullable": True},
            "waiting": {"allOf": [_ref("Waiting")], "nullable": True,
                        "description": "why the task's next (pending) run has not started"},
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "on create only: things worth knowing, e.g. no worker handles the type"}}},
        "Worker": {"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "host": {"type": "string"},
            "types": {"type": "array", "items": {"type": "string"}},
            "queues": {"type": "array", "items": {"type": "string"}},
            "slots": {"type": "integer"}, "running": {"type": "integer"}, "coordinator": {"type": "string"},
            "draining": {"type": "boolean"}, "connected_at": TS, "last_heartbeat_at": TS}},
    }
    task_page = {"type": "object", "properties": {"tasks": {"type": "array", "items": _ref("Task")},
                                                  "next_cursor": {"type": "string", "nullable": True}}}
    run_page = {"type": "object", "properties": {"runs": {"type": "array", "items": _ref("Run")},
                                                 "next_cursor": {"type": "string", "nullable": True}}}
    body = {"required": True, "content": {"application/json": {"schema": _ref("TaskCreate")}}}
    paths: dict[str, Any] = {
        "/api/tasks": {
            "post": {"summary": "Create a task", "requestBody": body,
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                     "responses": {**_ok(_ref("Task"), 201, "created"), **_ok(_ref("Task"), 200, "an earlier task with that idempotency key"),
                                   **_problem_responses(400, 401, 413, 503)}},
            "get": {"summary": "List tasks, newest first", "parameters": [
                {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["scheduled", "running", "succeeded", "failed", "cancelled", "paused"]}},
                {"name": "type", "in": "query", "schema": {"type": "string"}},
                {"name": "queue", "in": "query", "schema": {"type": "string"}},
                {"name": "name", "in": "query", "schema": {"type": "string"}, "description": "prefix"},
                *PAGING], "responses": {**_ok(task_page), **_problem_responses(400, 401, 503)}}},
        "/api/tasks/batch": {"post": {
            "summary": "Create up to 1,000 tasks, all or nothing",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["tasks"], "additionalProperties": False,
                "properties": {"tasks": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("TaskCreate")}}}}}},
            "responses": {**_ok({"type": "object", "properties": {"tasks": {"type": "array", "items": _ref("Task")}}}, 201),
                          **_problem_responses(400, 401, 413, 503)}}},
        "/api/tasks/{id}": {
            "parameters": ID,
            "get": {"summary": "One task, with last_run", "responses": {**_ok(_ref("Task")), **_problem_responses(404)}},
            "patch": {"summary": "Change a task from its next run on",
                      "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("TaskPatch")}}},
                      "responses": {**_ok(_ref("Task")), **_problem_responses(400, 404, 409)}},
            "delete": {"summary": "Cancel: pending runs cancelled, a running run stopped",
                       "responses": {**_ok(_ref("Task")), **_problem_responses(404)}}},
        "/api/tasks/{id}/pause": {"parameters": ID, "post": {"summary": "Stop new runs", "responses": {**_ok(_ref("Task")), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/resume": {"parameters": ID, "post": {"summary": "Restart new runs", "responses": {**_ok(_ref("Task")), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/trigger": {"parameters": ID, "post": {"summary": "One extra run now", "responses": {**_ok(_ref("Run"), 201), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/runs": {"parameters": ID, "get": {"summary": "The task's runs, newest first", "parameters": [
            {"name": "state", "in": "query", "schema": RUN_STATE}, *PAGING],
            "responses": {**_ok(run_page), **_problem_responses(400, 404)}}},
        "/api/runs": {"get": {"summary": "All runs, newest first", "parameters": [
            {"name": "state", "in": "query", "schema": RUN_STATE},
            {"name": "type", "in": "query", "schema": {"type": "string"}},
            {"name": "task_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
            {"name": "worker_id", "in": "query", "schema": {"type": "string"}},
            *PAGING], "responses": {**_ok(run_page), **_problem_responses(400)}}},
        "/api/runs/{id}": {"parameters": ID, "get": {"summary": "One run", "responses": {**_ok(_ref("Run")), **_problem_responses(404)}}},
        "/api/workers": {"get": {"summary": "Connected workers", "responses": _ok(
            {"type": "object", "properties": {"workers": {"type": "array", "items": _ref("Worker")}}})}},
        "/api/healthz": {"get": {"summary": "Liveness and database reachability", "security": [],
                                 "responses": {**_ok({"type": "object"}), "503": {"description": "database unreachable"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text format"}}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "skiplock", "version": __version__,
                 "description": "Schedule HTTP calls, shell commands and Python handlers: once or on cron, with retries, timeouts and history."},
        "servers": [{"url": "/"}],
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>skiplock API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


def add_docs_routes(app: web.Application) -> None:
    from swagger_ui_bundle import swagger_ui_path

    async def docs(_: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html")

    app.router.add_get("/docs", docs)
    app.router.add_static("/docs/static", Path(swagger_ui_path))
