"""The OpenAPI 3 description of the REST API, and Swagger UI served from local files."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from skiplock.api.views import CURSOR_PATTERN
from skiplock.api.waiting import REASONS
from skiplock.common import secrets
from skiplock.common.states import RunState, TaskState
from skiplock.common.validation import (
    CALLBACK_EVENTS,
    HEADER_NAME_RE,
    HTTP_METHODS,
    MAX_CALLBACKS,
    MAX_DELAY_S,
    MAX_RATE,
    MAX_TIMEOUT_S,
    MIN_RATE,
    NULLABLE_PATCH_FIELDS,
    QUEUE_RE,
    RATE_LIMIT_RE,
    TYPE_RE,
    URL_RE,
)
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


# Strings are stored in PostgreSQL, which holds no NUL character.
NO_NUL = "^[^\\u0000]*$"
JSON_STRING = {"type": "string", "pattern": NO_NUL}
SECRET_REF = {"type": "object", "required": ["secret"], "additionalProperties": False,
              "properties": {"secret": {"type": "string", "pattern": secrets.NAME_RE.pattern}},
              "description": "resolved on the worker from its SKIPLOCK_SECRET_<NAME>; never stored"}
HEADER_VALUE = {"oneOf": [{"type": "string", "pattern": "^[^\\u0000\\r\\n]*$"}, SECRET_REF]}
HTTP_PAYLOAD = {
    "type": "object", "required": ["url"], "additionalProperties": False,
    "not": {"required": ["json", "body"]},
    "properties": {
        "method": {"type": "string", "enum": sorted(HTTP_METHODS), "description": "POST when absent"},
        "url": {"type": "string", "maxLength": 8192, "pattern": URL_RE.pattern},
        "headers": {"type": "object", "additionalProperties": HEADER_VALUE,
                    "propertyNames": {"pattern": HEADER_NAME_RE.pattern}},
        "json": {"$ref": "#/components/schemas/JsonValue"},
        "body": {"oneOf": [JSON_STRING, SECRET_REF]},
        "timeout_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": MAX_TIMEOUT_S},
        "expect_status": {"oneOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                                    {"type": "array", "minItems": 1,
                                     "items": {"type": "integer", "minimum": 100, "maximum": 599}}]},
        "retry_on_status": {"oneOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                                      {"type": "array", "minItems": 1,
                                       "items": {"type": "integer", "minimum": 100, "maximum": 599}}]},
    }}
SHELL_PAYLOAD = {
    "type": "object", "required": ["command"], "additionalProperties": False,
    "properties": {
        "command": {"oneOf": [{"type": "string", "pattern": "^[^\\u0000]*\\S[^\\u0000]*$",
                               "description": "run by /bin/sh -c"},
                              {"type": "array", "minItems": 1, "description": "argv",
                               "items": {"type": "string", "pattern": NO_NUL, "minLength": 1}}]},
        "env": {"type": "object", "additionalProperties": {"oneOf": [JSON_STRING, SECRET_REF]}},
        "cwd": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": NO_NUL},
        "timeout_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": MAX_TIMEOUT_S},
    }}
TASK_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL,
             "description": "the type when absent"},
    "type": {"type": "string", "pattern": TYPE_RE.pattern},
    "payload": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
                "description": "http: HttpPayload; shell: ShellPayload; custom types: any object. A value "
                               "may be {\"secret\": \"NAME\"}"},
    "run_at": {**TS, "pattern": "^(19|20)[0-9]{2}-", "description": "RFC 3339 with an offset, before 2100; "
                                                                   "in the past: now"},
    "delay_s": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S},
    "cron": {"type": "string", "format": "cron", "maxLength": 200,
             "description": "a cron expression: 5 fields (minute hour day-of-month month day-of-week), or 6 "
                            "with seconds first; names (MON, JAN) and ranges allowed; it must fire at least once"},
    # No `default` on the cron-only fields: a client that filled one in would be refused for a
    # one-off task. The defaults are in the descriptions.
    # A format, not an enum of the ~600 zones: generated clients make one enum member per
    # zone, and names like GMT0 and GMT-0 collide there.
    "timezone": {"type": "string", "format": "iana-time-zone", "minLength": 1, "maxLength": 64,
                 "description": "IANA zone of the cron expression (cron tasks only; UTC when absent)"},
    "catch_up": {"type": "string", "enum": ["latest", "all", "none"],
                 "description": "missed fire times (cron tasks only; latest when absent)"},
    "overlap": {"type": "string", "enum": ["skip", "allow", "queue"],
                "description": "a fire time while a run is going (cron tasks only; skip when absent)"},
    "queue": {"type": "string", "pattern": QUEUE_RE.pattern, "description": "default when absent"},
    "priority": {"type": "integer", "minimum": -32768, "maximum": 32767, "description": "higher runs first; 0"},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100,
                     "description": "3 for one-off tasks, 1 for cron tasks when absent"},
    "timeout_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": MAX_TIMEOUT_S,
                  "description": "bounds the whole run; 300 when absent"},
    "retry_backoff_s": {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT_S, "description": "1 when absent"},
    "retry_backoff_max_s": {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT_S,
                            "description": "caps each retry's delay; 300 when absent"},
    "retry_jitter": {"type": "boolean", "description": "true when absent"},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
    "concurrency": {"type": "object", "required": ["key"], "additionalProperties": False,
                    "description": "at most `limit` runs of tasks sharing `key` are running at once, cluster-wide",
                    "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
                                   "limit": {"type": "integer", "minimum": 1, "maximum": 10000,
                                             "description": "1 when absent"}}},
    "rate_limit": {"type": "string", "pattern": RATE_LIMIT_RE.pattern, "format": "rate-limit",
                   "description": "the name of a rate limit (PUT /api/rate-limits/{name}); its runs start no "
                                  "faster than its bucket allows, fleet-wide. Must exist (400 otherwise)"},
    "dedup": {"type": "object", "required": ["key"], "additionalProperties": False,
              "description": "while a task with this key has a pending run (`pending`), or a pending or running "
                             "one (`active`), a create with the key answers 200 with that task and "
                             "`deduplicated: true`; `replace` first gives it this create's payload (and run_at)",
              "properties": {"key": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
                             "while": {"type": "string", "enum": ["pending", "active"],
                                       "description": "active when absent"},
                             "on_duplicate": {"type": "string", "enum": ["keep", "replace"],
                                              "description": "keep when absent"}}},
    "callbacks": {"type": "array", "maxItems": MAX_CALLBACKS,
                  "description": "POST an event to each url when a run raises one of its events: succeeded, failed "
                                 "(a one-off task failed for good), retrying, skipped (a cron slot did not run), "
                                 "recovered (a success right after a failure); delivered at least once as http tasks",
                  "items": {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
                      "url": {"type": "string", "pattern": URL_RE.pattern, "maxLength": 8192},
                      "events": {"type": "array", "minItems": 1, "uniqueItems": False,
                                 "items": {"type": "string", "enum": list(CALLBACK_EVENTS)},
                                 "description": "every event when absent"},
                      "headers": {"type": "object", "additionalProperties": HEADER_VALUE,
                                  "propertyNames": {"pattern": HEADER_NAME_RE.pattern}}}}},
}
RATE_LIMIT_NAME = [{"name": "name", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": RATE_LIMIT_RE.pattern}}]
# The payload a type needs: http and shell have theirs; any other type takes any object.
BY_TYPE = {"anyOf": [
    {"properties": {"type": {"not": {"enum": ["http", "shell"]}}}},
    {"required": ["payload"], "properties": {"type": {"enum": ["http"]}, "payload": {"$ref": "#/components/schemas/HttpPayload"}}},
    {"required": ["payload"], "properties": {"type": {"enum": ["shell"]}, "payload": {"$ref": "#/components/schemas/ShellPayload"}}},
]}
# The exclusivity rules, in JSON Schema: at most one schedule, cron-only fields with cron.
ONE_SCHEDULE = {"not": {"anyOf": [{"required": ["run_at", "delay_s"]}, {"required": ["run_at", "cron"]},
                                  {"required": ["delay_s", "cron"]}]}}
CRON_ONLY = [{"anyOf": [{"not": {"required": [k]}}, {"required": ["cron"]}]} for k in ("timezone", "catch_up", "overlap")]
RUN_STATE = {"type": "string", "enum": [s.value for s in RunState]}
TASK_STATE = {"type": "string", "enum": [s.value for s in TaskState]}

PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": CURSOR_PATTERN},
     "description": "opaque: the next_cursor of the previous page, passed back unchanged (keyset paging, stable "
                    "under inserts); absent for the first page"},
]
CREATED = [
    {"name": "created_after", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "created at or after this instant (RFC 3339 with an offset)"},
    {"name": "created_before", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "created before this instant (RFC 3339 with an offset)"},
]
ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
WID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
WAIT = [{"name": "wait_s", "in": "query", "schema": {"type": "number", "minimum": 0, "maximum": 60},
         "description": "answer as soon as it is final, or after this many seconds with its state then"}]
QNAME = [{"name": "name", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": QUEUE_RE.pattern}}]


@cache
def spec() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        # Deliberately not recursive (generated clients cannot read a recursive union); the
        # rule it cannot state is in its description.
        "JsonValue": {"description": "any JSON value; strings and keys hold no NUL character (\\u0000), "
                                     "which PostgreSQL cannot store"},
        "HttpPayload": HTTP_PAYLOAD,
        "ShellPayload": SHELL_PAYLOAD,
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}}}},
        "TaskCreate": {"type": "object", "required": ["type"], "additionalProperties": False,
                       "description": "At most one of run_at, delay_s, cron (none: run now); timezone, catch_up "
                                      "and overlap only with cron.",
                       "properties": TASK_FIELDS, "allOf": [ONE_SCHEDULE, *CRON_ONLY, BY_TYPE],
                       "example": {"name": "Website health check", "type": "http",
                                   "payload": {"method": "POST", "url": "https://example.com/hook",
                                               "json": {"key": "value"}},
                                   "cron": "*/5 * * * *", "timezone": "Europe/Berlin", "max_attempts": 3}},
        "TaskPatch": {"type": "object", "minProperties": 1, "additionalProperties": False,
                      "description": "Absent fields keep their value; cron only for cron tasks, run_at only for one-off tasks",
                      "properties": {**{k: v for k, v in TASK_FIELDS.items()
                                        if k not in ("type", "delay_s", "idempotency_key", *NULLABLE_PATCH_FIELDS)},
                                     **{k: {**TASK_FIELDS[k], "nullable": True,
                                            "description": TASK_FIELDS[k]["description"] + "; null removes it"}
                                        for k in sorted(NULLABLE_PATCH_FIELDS)}},
                      "not": {"required": ["run_at", "cron"]}},
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
            "state": TASK_STATE,
            "next_run_at": NTS, "next_runs": {"type": "array", "items": TS},
            "max_attempts": {"type": "integer"}, "timeout_s": {"type": "number"},
            "retry_backoff_s": {"type": "number"}, "retry_backoff_max_s": {"type": "number"},
            "retry_jitter": {"type": "boolean"}, "idempotency_key": {"type": "string", "nullable": True},
            "concurrency": {"type": "object", "nullable": True, "properties": {
                "key": {"type": "string"}, "limit": {"type": "integer"}}},
            "rate_limit": {"type": "string", "nullable": True},
            "callbacks": {"type": "array", "nullable": True, "items": {"type": "object"}},
            "dedup": {"type": "object", "nullable": True, "properties": {
                "key": {"type": "string"}, "while": {"type": "string"}, "on_duplicate": {"type": "string"}}},
            "deduplicated": {"type": "boolean",
                             "description": "on create only: true when a dedup window answered with this task"},
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
        "Queue": {"type": "object", "required": ["name", "paused", "pending", "running", "due_backlog",
                                                 "oldest_due_at", "workers"], "properties": {
            "name": {"type": "string"}, "paused": {"type": "boolean"},
            "paused_at": {**TS, "nullable": True},
            "pending": {"type": "integer", "description": "every pending run of the queue"},
            "running": {"type": "integer"},
            "due_backlog": {"type": "integer", "description": "pending runs whose due time has passed"},
            "oldest_due_at": {**TS, "nullable": True, "description": "the due time of the longest-waiting due run"},
            "workers": {"type": "integer", "description": "connected workers that take the queue"}}},
        "BulkRequest": {"type": "object", "required": ["action"], "additionalProperties": False, "properties": {
            "action": {"type": "string", "enum": ["cancel", "pause", "resume", "trigger"]},
            "ids": {"type": "array", "minItems": 1, "maxItems": 500, "items": {"type": "string", "format": "uuid"}},
            "filter": {"type": "object", "additionalProperties": False, "properties": {
                "state": TASK_STATE, "type": {"type": "string", "minLength": 1, "pattern": NO_NUL},
                "queue": {"type": "string", "minLength": 1, "pattern": NO_NUL},
                "name": {"type": "string", "minLength": 1, "pattern": NO_NUL},
                "created_after": {"type": "string", "format": "date-time"},
                "created_before": {"type": "string", "format": "date-time"}}},
            "cursor": {"type": "string", "pattern": CURSOR_PATTERN},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200,
                      "description": "tasks this request handles (or, with dry_run, counts); the rest by next_cursor"},
            "dry_run": {"type": "boolean"}},
            "oneOf": [{"required": ["ids"], "not": {"anyOf": [{"required": ["filter"]}, {"required": ["cursor"]},
                                                                {"required": ["limit"]}, {"required": ["dry_run"]}]}},
                      {"required": ["filter"], "not": {"required": ["ids"]}}]},
        "BulkResult": {"type": "object", "required": ["action", "matched", "applied", "refused", "not_found",
                                                      "next_cursor", "more"], "properties": {
            "action": {"type": "string"}, "matched": {"type": "integer"},
            "applied": {"type": "integer"}, "refused": {"type": "integer",
                                                         "description": "tasks whose state does not allow the action"},
            "not_found": {"type": "integer"},
            "next_cursor": {"type": "string", "nullable": True, "description": "more match: send it back as cursor"},
            "more": {"type": "boolean"}}},
        "Minutes": {"type": "object", "required": ["minutes", "queue", "bucket_s"], "properties": {
            "bucket_s": {"type": "integer"}, "queue": {"type": "string", "nullable": True},
            "minutes": {"type": "array", "items": {"type": "object", "properties": {
                "at": TS, **{s: {"type": "integer"} for s in ("succeeded", "failed", "cancelled", "skipped")},
                "lateness_p50_ms": {"type": "number", "nullable": True,
                                    "description": "upper bound of the lateness bucket holding the median"},
                "lateness_p99_ms": {"type": "number", "nullable": True},
                "run_ms_mean": {"type": "number", "nullable": True}}}}}},
        "RateLimit": {"type": "object", "required": ["name", "per_second", "burst", "paused_until"], "properties": {
            "name": {"type": "string"}, "per_second": {"type": "number"}, "burst": {"type": "integer"},
            "tokens": {"type": "number", "description": "tokens in the bucket now"},
            "paused_until": {**TS, "nullable": True,
                             "description": "set by a 429/503 with Retry-After: no run of it starts before"},
            "created_at": TS, "updated_at": TS}},
        "RateLimitPut": {"type": "object", "required": ["per_second"], "additionalProperties": False, "properties": {
            "per_second": {"type": "number", "minimum": MIN_RATE, "maximum": MAX_RATE},
            "burst": {"type": "integer", "minimum": 1, "maximum": 1000000,
                      "description": "the bucket's size: starts at most this many at once; 1 when absent"}}},
        "Stats": {"type": "object", "required": ["runs", "tasks", "queues", "due_backlog", "workers", "at"],
                  "description": "Kept counts (updated by the statements that move runs, never counted over "
                                 "history): runs live and within retention, by state and by queue; tasks by state.",
                  "properties": {
            "runs": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "runs by state: pending, running, succeeded, failed, cancelled, skipped"},
            "tasks": {"type": "object", "additionalProperties": {"type": "integer"},
                      "description": "tasks by state: scheduled, running, paused, succeeded, failed, cancelled"},
            "queues": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "runs": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
            "due_backlog": {"type": "integer", "description": "pending runs already due"},
            "workers": {"type": "integer", "description": "connected workers"},
            "at": TS}},
    }
    task_page = {"type": "object", "properties": {"tasks": {"type": "array", "items": _ref("Task")},
                                                  "next_cursor": {"type": "string", "nullable": True}}}
    run_page = {"type": "object", "properties": {"runs": {"type": "array", "items": _ref("Run")},
                                                 "next_cursor": {"type": "string", "nullable": True}}}
    body = {"required": True, "content": {"application/json": {"schema": _ref("TaskCreate")}}}
    paths: dict[str, Any] = {
        "/api/tasks": {
            "post": {"summary": "Create a task", "requestBody": body,
                     "parameters": [{"name": "Idempotency-Key", "in": "header",
                                     "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
                                     "description": "the same as idempotency_key in the body (the body's wins)"}],
                     "responses": {**_ok(_ref("Task"), 201, "created"), **_ok(_ref("Task"), 200, "an earlier task with that idempotency key"),
                                   **_problem_responses(400, 401, 409, 413, 503)}},
            "get": {"summary": "List tasks, newest first", "parameters": [
                {"name": "state", "in": "query", "schema": TASK_STATE},
                {"name": "type", "in": "query", "schema": {"type": "string"}},
                {"name": "queue", "in": "query", "schema": {"type": "string"}},
                {"name": "name", "in": "query", "schema": {"type": "string"}, "description": "prefix"},
                *CREATED, *PAGING], "responses": {**_ok(task_page), **_problem_responses(400, 401, 503)}}},
        "/api/tasks/batch": {"post": {
            "summary": "Create up to 1,000 tasks, all or nothing",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["tasks"], "additionalProperties": False,
                "properties": {"tasks": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("TaskCreate")}}},
                "example": {"tasks": [{"type": "http", "payload": {"url": "https://example.com/a"}},
                                      {"type": "http", "payload": {"url": "https://example.com/b"}, "delay_s": 60}]}}}},
            "responses": {**_ok({"type": "object", "properties": {"tasks": {"type": "array", "items": _ref("Task")}}}, 201),
                          **_problem_responses(400, 401, 409, 413, 503)}}},
        "/api/tasks/{id}": {
            "parameters": ID,
            "get": {"summary": "One task, with last_run; with wait_s, once it is final (a long-poll)", "parameters": WAIT,
                    "responses": {**_ok(_ref("Task")), **_problem_responses(400, 404)}},
            "patch": {"summary": "Change a task from its next run on",
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": _ref("TaskPatch"), "example": {"priority": 5, "timeout_s": 60}}}},
                      "responses": {**_ok(_ref("Task")), **_problem_responses(400, 404),
                                    "409": {"description": "a field this task's kind lacks (cron on a one-off "
                                                           "task, run_at on a cron task), or the task is finished",
                                            "content": {"application/problem+json": {"schema": _ref("Problem")}}}}},
            "delete": {"summary": "Cancel: pending runs cancelled, a running run stopped",
                       "responses": {**_ok(_ref("Task")), **_problem_responses(404)}}},
        "/api/tasks/{id}/pause": {"parameters": ID, "post": {"summary": "Stop new runs", "responses": {**_ok(_ref("Task")), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/resume": {"parameters": ID, "post": {"summary": "Restart new runs", "responses": {**_ok(_ref("Task")), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/trigger": {"parameters": ID, "post": {"summary": "One extra run now", "responses": {**_ok(_ref("Run"), 201), **_problem_responses(404, 409)}}},
        "/api/tasks/{id}/runs": {"parameters": ID, "get": {"summary": "The task's runs, newest first", "parameters": [
            {"name": "state", "in": "query", "schema": RUN_STATE}, *CREATED, *PAGING],
            "responses": {**_ok(run_page), **_problem_responses(400, 404)}}},
        "/api/runs": {"get": {"summary": "All runs, newest first", "parameters": [
            {"name": "state", "in": "query", "schema": RUN_STATE},
            {"name": "type", "in": "query", "schema": {"type": "string"}},
            {"name": "task_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
            {"name": "worker_id", "in": "query", "schema": {"type": "string"}},
            *CREATED, *PAGING], "responses": {**_ok(run_page), **_problem_responses(400)}}},
        "/api/runs/{id}": {"parameters": ID, "get": {"summary": "One run; with wait_s, once it ended (a long-poll)", "parameters": WAIT,
                                                     "responses": {**_ok(_ref("Run")), **_problem_responses(400, 404)}}},
        "/api/tasks/bulk": {"post": {
            "summary": "Cancel, pause, resume or trigger many tasks: listed ids, or every task matching a filter "
                       "(paged with next_cursor; dry_run counts without changing anything)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("BulkRequest")}}},
            "responses": {**_ok(_ref("BulkResult")), **_problem_responses(400)}}},
        "/api/me": {"get": {"summary": "What this request's token may do: write, or read only",
                            "responses": {**_ok({"type": "object", "required": ["access", "token_required"], "properties": {
                                "access": {"type": "string", "enum": ["read", "write"]},
                                "token_required": {"type": "boolean"}}})}}},
        "/api/stats/minutes": {"get": {
            "summary": "Per minute, the last N minutes: runs ended by state, start lateness p50/p99, mean run time",
            "parameters": [{"name": "minutes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60}},
                           {"name": "queue", "in": "query", "schema": {"type": "string", "pattern": QUEUE_RE.pattern}}],
            "responses": {**_ok(_ref("Minutes")), **_problem_responses(400)}}},
        "/api/workers": {"get": {"summary": "Connected workers", "responses": _ok(
            {"type": "object", "required": ["workers"],
             "properties": {"workers": {"type": "array", "items": _ref("Worker")}}})}},
        "/api/workers/{id}/drain": {"parameters": WID, "post": {
            "summary": "Stop a connected worker taking new runs (it finishes what it has)",
            "responses": {**_ok(_ref("Worker")), **_problem_responses(404)}}},
        "/api/workers/{id}/undrain": {"parameters": WID, "post": {
            "summary": "Let a drained worker take runs again",
            "responses": {**_ok(_ref("Worker")), **_problem_responses(404)}}},
        "/api/queues": {"get": {"summary": "Queues: paused, pending, running, due backlog, oldest due, workers",
                                "responses": {**_ok({"type": "object", "required": ["queues"], "properties": {
                                    "queues": {"type": "array", "items": _ref("Queue")}}}),
                                    **_problem_responses(400)}}},
        "/api/queues/{name}/pause": {"parameters": QNAME, "post": {
            "summary": "Dispatch nothing new from the queue (running runs finish); a queue no task uses yet may be paused",
            "responses": {**_ok(_ref("Queue")), **_problem_responses(400)}}},
        "/api/queues/{name}/resume": {"parameters": QNAME, "post": {
            "summary": "Let the queue's runs be claimed again",
            "responses": {**_ok(_ref("Queue")), **_problem_responses(400)}}},
        "/api/rate-limits": {"get": {"summary": "Every rate limit", "responses": {**_ok(
            {"type": "object", "required": ["rate_limits"],
             "properties": {"rate_limits": {"type": "array", "items": _ref("RateLimit")}}}),
            **_problem_responses(400)}}},
        "/api/rate-limits/{name}": {
            "parameters": RATE_LIMIT_NAME,
            "put": {"summary": "Create or change a rate limit (a token bucket; a new one starts full)",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("RateLimitPut")}}},
                    "responses": {**_ok(_ref("RateLimit")), **_problem_responses(400)}},
            "get": {"summary": "One rate limit", "responses": {**_ok(_ref("RateLimit")),
                                                                **_problem_responses(400, 404)}},
            "delete": {"summary": "Delete a rate limit no unfinished task uses",
                       "responses": {"204": {"description": "deleted"}, **_problem_responses(400, 404, 409)}}},
        "/api/stats": {"get": {"summary": "Counts: runs and tasks by state, runs by queue, due backlog, workers",
                               "responses": {**_ok(_ref("Stats")), **_problem_responses(400)}}},
        "/api/healthz": {"get": {"summary": "Liveness and database reachability", "security": [],
                                 "responses": {**_ok({"type": "object"}), "503": {"description": "database unreachable"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text format"}}}},
    }
    _finish(schemas, paths, task_page, run_page)
    return _to_31({
        "openapi": "3.1.0",
        "info": {"title": "skiplock", "version": __version__,
                 "description": "Schedule HTTP calls, shell commands and Python handlers: once or on cron, with retries, timeouts and history."},
        "servers": [{"url": "/"}],
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
        "paths": paths,
    })


OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("/api/tasks", "post"): ("create_task", "tasks"),
    ("/api/tasks", "get"): ("list_tasks", "tasks"),
    ("/api/tasks/batch", "post"): ("create_tasks", "tasks"),
    ("/api/tasks/{id}", "get"): ("get_task", "tasks"),
    ("/api/tasks/{id}", "patch"): ("update_task", "tasks"),
    ("/api/tasks/{id}", "delete"): ("cancel_task", "tasks"),
    ("/api/tasks/{id}/pause", "post"): ("pause_task", "tasks"),
    ("/api/tasks/{id}/resume", "post"): ("resume_task", "tasks"),
    ("/api/tasks/{id}/trigger", "post"): ("trigger_task", "tasks"),
    ("/api/tasks/{id}/runs", "get"): ("list_task_runs", "runs"),
    ("/api/runs", "get"): ("list_runs", "runs"),
    ("/api/runs/{id}", "get"): ("get_run", "runs"),
    ("/api/workers", "get"): ("list_workers", "workers"),
    ("/api/workers/{id}/drain", "post"): ("drain_worker", "workers"),
    ("/api/workers/{id}/undrain", "post"): ("undrain_worker", "workers"),
    ("/api/stats", "get"): ("get_stats", "operations"),
    ("/api/queues", "get"): ("list_queues", "queues"),
    ("/api/queues/{name}/pause", "post"): ("pause_queue", "queues"),
    ("/api/queues/{name}/resume", "post"): ("resume_queue", "queues"),
    ("/api/tasks/bulk", "post"): ("bulk_tasks", "tasks"),
    ("/api/me", "get"): ("get_me", "operations"),
    ("/api/stats/minutes", "get"): ("get_minutes", "operations"),
    ("/api/rate-limits", "get"): ("list_rate_limits", "rate-limits"),
    ("/api/rate-limits/{name}", "put"): ("put_rate_limit", "rate-limits"),
    ("/api/rate-limits/{name}", "get"): ("get_rate_limit", "rate-limits"),
    ("/api/rate-limits/{name}", "delete"): ("delete_rate_limit", "rate-limits"),
    ("/api/healthz", "get"): ("health", "operations"),
    ("/metrics", "get"): ("metrics", "operations"),
}


def _to_31(node: Any) -> Any:
    """Written in the 3.0 dialect, served as 3.1 (JSON Schema 2020-12): nullable becomes a
    null alternative, a boolean exclusiveMinimum a number, and every object with free keys
    says its keys hold no NUL character (propertyNames exists only in 3.1)."""
    if isinstance(node, list):
        return [_to_31(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_31(v) for k, v in node.items() if k != "nullable"}
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if "example" in out and ("type" in out or "properties" in out):
        out["examples"] = [out.pop("example")]
    if "additionalProperties" in out and out["additionalProperties"] is not False:
        out.setdefault("propertyNames", {"pattern": NO_NUL})
    if node.get("nullable"):
        if isinstance(out.get("type"), str) and "anyOf" not in out and "allOf" not in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _finish(schemas: dict[str, Any], paths: dict[str, Any], *pages: dict[str, Any]) -> None:
    """What generated clients need: operationIds and tags on every operation, and `required`
    on every response field that is always present (so they are not typed as optional)."""
    for (path, method), (op_id, tag) in OPERATIONS.items():
        paths[path][method].update(operationId=op_id, tags=[tag])
    for name in ("Run", "Waiting", "Worker"):
        schemas[name]["required"] = list(schemas[name]["properties"])
    schemas["Task"]["required"] = [k for k in schemas["Task"]["properties"] if k not in ("warnings", "deduplicated")]
    for page in pages:
        page["required"] = list(page["properties"])


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
