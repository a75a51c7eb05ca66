"""Validation of task specs. Pure functions: JSON in, a TaskSpec or a list of FieldErrors out."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from skiplock.common import secrets, timeutil


@dataclass
class FieldError:
    """One refused field, named as the API names it (`payload.url`, `tasks[2].cron`)."""

    field: str
    message: str
    # Valid on its own, but not for this task's state (a cron field on a one-off task): 409.
    conflict: bool = False

TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
QUEUE_RULE = "must be 1-64 characters of letters, digits, _ . : -"
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_TIMEOUT_S = 7 * 86400.0
MAX_DELAY_S = 10 * 366 * 86400.0
# A bound the OpenAPI document can state exactly (a pattern on the year), unlike "10 years".
RUN_AT_YEARS = (1900, 2099)
MAX_DEPTH = 32
MAX_BATCH = 1000
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# An IPv6 literal, exactly as urlsplit accepts one (no embedded IPv4, no zone id).
_H = "[0-9A-Fa-f]{1,4}"
IPV6 = "(" + "|".join([
    f"({_H}:){{7}}{_H}", f"({_H}:){{1,7}}:", f"({_H}:){{1,6}}:{_H}", f"({_H}:){{1,5}}(:{_H}){{1,2}}",
    f"({_H}:){{1,4}}(:{_H}){{1,3}}", f"({_H}:){{1,3}}(:{_H}){{1,4}}", f"({_H}:){{1,2}}(:{_H}){{1,5}}",
    f"{_H}:((:{_H}){{1,6}})", f":((:{_H}){{1,7}}|:)"]) + ")"
# Whitespace spelled out: Python's \s also matches \x1c-\x1f and \x85, JSON Schema's (ECMA) not,
# and the OpenAPI document states this same pattern.
_WS = " \\t\\n\\r\\f\\v"
URL_RE = re.compile(rf"^[Hh][Tt][Tt][Pp][Ss]?://([^{_WS}/?#@\[\]]+@)?(\[{IPV6}\]|[^{_WS}/?#@:\[\]]+)"
                    rf"(:{PORT})?([/?#][^{_WS}]*)?$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

CREATE_FIELDS = frozenset({
    "name", "type", "payload", "run_at", "delay_s", "cron", "timezone", "queue", "priority",
    "max_attempts", "timeout_s", "retry_backoff_s", "retry_backoff_max_s", "retry_jitter",
    "idempotency_key", "catch_up", "overlap", "concurrency", "rate_limit", "dedup", "callbacks",
})
PATCH_FIELDS = frozenset({
    "name", "payload", "run_at", "cron", "timezone", "queue", "priority", "max_attempts",
    "timeout_s", "retry_backoff_s", "retry_backoff_max_s", "retry_jitter", "catch_up", "overlap", "concurrency",
    "rate_limit", "dedup", "callbacks",
})
# Fields a PATCH may set to null, to remove them.
NULLABLE_PATCH_FIELDS = frozenset({"concurrency", "rate_limit", "dedup", "callbacks"})
# What a callback may be told of (see coordinator/callbacks.py).
CALLBACK_EVENTS = ("succeeded", "failed", "retrying", "skipped", "recovered")
MAX_CALLBACKS = 10
HTTP_PAYLOAD_FIELDS = frozenset({"method", "url", "headers", "json", "body", "timeout_s",
                                 "expect_status", "retry_on_status"})
SHELL_PAYLOAD_FIELDS = frozenset({"command", "env", "cwd", "timeout_s"})


@dataclass
class TaskSpec:
    """A validated task, ready to insert."""

    type: str
    name: str
    payload: dict[str, Any]
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None
    delay_s: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    catch_up: str = "latest"
    overlap: str = "skip"
    max_attempts: int = 3
    timeout_s: float = 300.0
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 300.0
    retry_jitter: bool = True
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    rate_limit: str | None = None  # a rate limit's name; that it exists is checked at insert
    dedup_key: str | None = None
    dedup_while: str | None = None  # pending | active
    dedup_on_duplicate: str | None = None  # keep | replace
    callbacks: list[dict[str, Any]] | None = None  # [{"url", "events", "headers"}]

    def request_hash(self) -> str:
        """A fingerprint of what was asked (not of when): two creates with one idempotency
        key are the same request exactly when these match."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "idempotency_key"}
        fields["run_at"] = timeutil.iso(self.run_at)
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def first_fire(self, now: datetime) -> datetime:
        """When the first run belongs: run_at (even if past), now + delay_s, the next cron
        fire time, or now."""
        if self.cron is not None:
            return timeutil.cron_next(self.cron, self.timezone, now)
        if self.run_at is not None:
            return self.run_at
        if self.delay_s is not None:
            return now + timedelta(seconds=self.delay_s)
        return now


@dataclass
class Errors:
    items: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(FieldError(path, message))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _number(errs: Errors, path: str, v: Any, *, lo: float, hi: float, lo_open: bool = False) -> float | None:
    if not _is_number(v):
        errs.add(path, "must be a number")
        return None
    if (v <= lo if lo_open else v < lo) or v > hi:
        errs.add(path, f"must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g}")
        return None
    return float(v)


def _integer(errs: Errors, path: str, v: Any, *, lo: int, hi: int) -> int | None:
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # JSON has one number type: 3.0 is the integer 3 (JSON Schema agrees)
    if not isinstance(v, int) or isinstance(v, bool):
        errs.add(path, "must be an integer")
        return None
    if not lo <= v <= hi:
        errs.add(path, f"must be between {lo} and {hi}")
        return None
    return v


def _string(errs: Errors, path: str, v: Any, *, lo: int = 1, hi: int = 200) -> str | None:
    if not isinstance(v, str):
        errs.add(path, "must be a string")
        return None
    if not lo <= len(v) <= hi:
        errs.add(path, f"must be {lo} to {hi} characters long")
        return None
    if "\x00" in v:
        errs.add(path, "must not contain NUL (\\u0000) characters")
        return None
    return v


def _str_map(errs: Errors, path: str, v: Any, *, header_names: bool = False) -> None:
    """An object of strings, or of secret references ({"secret": "NAME"})."""
    if not isinstance(v, dict):
        errs.add(path, "must be an object of string values")
        return
    for k, val in v.items():
        if header_names and not HEADER_NAME_RE.match(k):
            errs.add(f"{path}.{k}", "is not a valid header name")
        if secrets.is_ref(val):
            continue  # checked with every other reference in _storable
        if not isinstance(val, str):
            errs.add(f"{path}.{k}", 'must be a string or {"secret": "NAME"}')
        elif header_names and ("\r" in val or "\n" in val):
            errs.add(f"{path}.{k}", "must not contain line breaks")


def _no_nulls(errs: Errors, prefix: str, body: dict[str, Any], allowed: frozenset[str]) -> None:
    """null is no value for any field: leave the field out for its default (a PATCH with
    overlap: null used to reset overlap to skip)."""
    for key, value in body.items():
        if value is None and key in allowed and key != "type":
            errs.add(f"{prefix}{key}", "must not be null; leave the field out to keep its default")


def _unknown(errs: Errors, prefix: str, body: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            errs.add(f"{prefix}{key}", "is not a known field")


def validate_http_payload(errs: Errors, path: str, p: dict[str, Any]) -> None:
    _unknown(errs, f"{path}.", p, HTTP_PAYLOAD_FIELDS)
    if "url" not in p:
        errs.add(f"{path}.url", "is required for an http task")
    else:
        _url(errs, f"{path}.url", p["url"])
    method = p.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        errs.add(f"{path}.method", f"must be one of {', '.join(sorted(HTTP_METHODS))}")
    if "headers" in p:
        _str_map(errs, f"{path}.headers", p["headers"], header_names=True)
    if "json" in p and "body" in p:
        errs.add(f"{path}.body", "give either json or body, not both")
    if "body" in p and not isinstance(p["body"], str) and not secrets.is_ref(p["body"]):
        errs.add(f"{path}.body", "must be a string (use json for a JSON document)")
    if "timeout_s" in p:
        _number(errs, f"{path}.timeout_s", p["timeout_s"], lo=0, hi=MAX_TIMEOUT_S, lo_open=True)
    for key in ("expect_status", "retry_on_status"):
        if key in p:
            codes = p[key] if isinstance(p[key], list) else [p[key]]
            if not codes or not all(_is_number(c) and float(c).is_integer() and 100 <= c <= 599
                                    for c in codes):  # 367.0 is the integer 367 in JSON
                errs.add(f"{path}.{key}", "must be a status code (100-599) or a list of them")


def _url(errs: Errors, path: str, url: Any) -> None:
    if not isinstance(url, str) or len(url) > 8192:
        errs.add(path, "must be a string of at most 8192 characters")
        return
    try:
        parts = urlsplit(url)
        ok = bool(URL_RE.match(url)) and parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        errs.add(path, "must be an absolute http:// or https:// URL with a host")


def validate_shell_payload(errs: Errors, path: str, p: dict[str, Any]) -> None:
    _unknown(errs, f"{path}.", p, SHELL_PAYLOAD_FIELDS)
    if "command" not in p:
        errs.add(f"{path}.command", "is required for a shell task")
    else:
        cmd = p["command"]
        if isinstance(cmd, str):
            if not cmd.strip():
                errs.add(f"{path}.command", "must not be empty")
        elif isinstance(cmd, list):
            if not cmd or not all(isinstance(a, str) for a in cmd) or not cmd[0]:
                errs.add(f"{path}.command", "must be a non-empty list of strings (argv)")
        else:
            errs.add(f"{path}.command", "must be a string (run by /bin/sh -c) or a list of strings")
    if "env" in p:
        _str_map(errs, f"{path}.env", p["env"])
    if "cwd" in p:
        _string(errs, f"{path}.cwd", p["cwd"], hi=4096)
    if "timeout_s" in p:
        _number(errs, f"{path}.timeout_s", p["timeout_s"], lo=0, hi=MAX_TIMEOUT_S, lo_open=True)


def _storable(errs: Errors, path: str, value: Any, depth: int = 0) -> None:
    """PostgreSQL text and jsonb cannot hold NUL characters; bound the nesting too. Secret
    references must name a secret the way workers' variables can."""
    if depth > MAX_DEPTH:
        errs.add(path, f"is nested more than {MAX_DEPTH} levels deep")
    elif secrets.is_ref(value) and not secrets.valid_ref(value):
        errs.add(path, f"a secret reference needs a name matching {secrets.NAME_RE.pattern} "
                       f"(the worker reads {secrets.ENV_PREFIX}<NAME>)")
    elif isinstance(value, str):
        if "\x00" in value:
            errs.add(path, "must not contain NUL (\\u0000) characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                errs.add(path, "keys must not contain NUL (\\u0000) characters")
            _storable(errs, f"{path}.{k}", v, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _storable(errs, f"{path}[{i}]", v, depth + 1)


def validate_payload(errs: Errors, path: str, type_: str | None, payload: Any) -> dict[str, Any]:
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        errs.add(path, "must be a JSON object")
        return {}
    before = len(errs.items)
    _storable(errs, path, payload)
    if len(errs.items) > before:
        return payload
    if type_ == "http":
        validate_http_payload(errs, path, payload)
    elif type_ == "shell":
        validate_shell_payload(errs, path, payload)
    return payload


def _schedule(errs: Errors, prefix: str, body: dict[str, Any], spec: TaskSpec) -> None:
    given = [k for k in ("run_at", "delay_s", "cron") if body.get(k) is not None]
    if len(given) > 1:
        errs.add(f"{prefix}{given[1]}", f"give at most one of run_at, delay_s, cron (got {', '.join(given)})")
        return
    if body.get("run_at") is not None:
        try:
            spec.run_at = timeutil.parse_rfc3339(body["run_at"])
            if not RUN_AT_YEARS[0] <= int(body["run_at"][:4]) <= RUN_AT_YEARS[1]:
                errs.add(f"{prefix}run_at", f"must be in the years {RUN_AT_YEARS[0]} to {RUN_AT_YEARS[1]}")
        except ValueError as exc:
            errs.add(f"{prefix}run_at", str(exc))
    if body.get("delay_s") is not None:
        spec.delay_s = _number(errs, f"{prefix}delay_s", body["delay_s"], lo=0, hi=MAX_DELAY_S)
    if body.get("cron") is not None:
        try:
            timeutil.validate_cron(body["cron"])
            spec.cron = " ".join(body["cron"].split())
        except ValueError as exc:
            errs.add(f"{prefix}cron", str(exc))
    if body.get("timezone") is not None:
        if spec.cron is None and "cron" not in body:
            errs.add(f"{prefix}timezone", "applies to cron tasks only (run_at carries its own offset)")
        else:
            try:
                timeutil.zone(body["timezone"])
                spec.timezone = body["timezone"]
            except ValueError as exc:
                errs.add(f"{prefix}timezone", str(exc))
    for key, allowed in (("catch_up", ("latest", "all", "none")), ("overlap", ("skip", "allow", "queue"))):
        if body.get(key) is not None:
            if "cron" not in body:
                errs.add(f"{prefix}{key}", "applies to cron tasks only")
            elif body[key] not in allowed:
                errs.add(f"{prefix}{key}", f"must be one of {', '.join(allowed)}")
            else:
                setattr(spec, key, body[key])


def _concurrency(errs: Errors, prefix: str, value: Any, spec: TaskSpec) -> None:
    """`concurrency`: {"key": 1-200 characters, "limit": 1-10,000 (default 1)}; null (PATCH) removes it."""
    if value is None:
        spec.concurrency_key, spec.concurrency_limit = None, None
        return
    if not isinstance(value, dict):
        errs.add(f"{prefix}concurrency", 'must be an object: {"key": str, "limit": int}')
        return
    _unknown(errs, f"{prefix}concurrency.", value, frozenset({"key", "limit"}))
    if "key" not in value:
        errs.add(f"{prefix}concurrency.key", "is required: the runs of tasks sharing it are limited together")
    key = _string(errs, f"{prefix}concurrency.key", value.get("key"), lo=1, hi=200) if "key" in value else None
    limit = _integer(errs, f"{prefix}concurrency.limit", value.get("limit", 1), lo=1, hi=10000)
    if key is not None and limit is not None:
        spec.concurrency_key, spec.concurrency_limit = key, limit


RATE_LIMIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
RATE_LIMIT_RULE = "must be a rate limit's name: 1-200 of A-Z a-z 0-9 . _ : -, starting with a letter or digit"


def _rate_limit(errs: Errors, prefix: str, value: Any, spec: TaskSpec) -> None:
    """`rate_limit`: a rate limit's name (that it exists is checked when the task is written)."""
    if value is None:
        spec.rate_limit = None
    elif not isinstance(value, str) or not RATE_LIMIT_RE.match(value):
        errs.add(f"{prefix}rate_limit", RATE_LIMIT_RULE)
    else:
        spec.rate_limit = value


def _dedup(errs: Errors, prefix: str, value: Any, spec: TaskSpec) -> None:
    """`dedup`: {"key": 1-200 characters, "while": pending|active, "on_duplicate": keep|replace}."""
    if value is None:
        spec.dedup_key = spec.dedup_while = spec.dedup_on_duplicate = None
        return
    if not isinstance(value, dict):
        errs.add(f"{prefix}dedup", 'must be an object: {"key": str, "while": "pending"|"active", '
                 '"on_duplicate": "keep"|"replace"}')
        return
    _unknown(errs, f"{prefix}dedup.", value, frozenset({"key", "while", "on_duplicate"}))
    if "key" not in value:
        errs.add(f"{prefix}dedup.key", "is required: creates with the same key are one task while its window is open")
    key = _string(errs, f"{prefix}dedup.key", value.get("key"), lo=1, hi=200) if "key" in value else None
    ok = True
    for name, allowed, default in (("while", ("pending", "active"), "active"),
                                   ("on_duplicate", ("keep", "replace"), "keep")):
        if value.get(name, default) not in allowed:
            errs.add(f"{prefix}dedup.{name}", f"must be one of {', '.join(allowed)}")
            ok = False
    if key is not None and ok:
        spec.dedup_key = key
        spec.dedup_while = value.get("while", "active")
        spec.dedup_on_duplicate = value.get("on_duplicate", "keep")


def _callbacks(errs: Errors, prefix: str, value: Any, spec: TaskSpec) -> None:
    """`callbacks`: [{"url": http(s) URL, "events": [...], "headers": {...}}], at most 10."""
    path = f"{prefix}callbacks"
    if value is None:
        spec.callbacks = None
        return
    if not isinstance(value, list) or len(value) > MAX_CALLBACKS:
        errs.add(path, f'must be a list of at most {MAX_CALLBACKS} {{"url", "events", "headers"}} objects')
        return
    out = []
    for i, cb in enumerate(value):
        at = f"{path}[{i}]"
        if not isinstance(cb, dict):
            errs.add(at, 'must be an object: {"url": str, "events": [...], "headers": {...}}')
            continue
        _unknown(errs, f"{at}.", cb, frozenset({"url", "events", "headers"}))
        if "url" not in cb:
            errs.add(f"{at}.url", "is required: where the event is POSTed")
        else:
            _url(errs, f"{at}.url", cb["url"])
        events = cb.get("events", list(CALLBACK_EVENTS))
        if not isinstance(events, list) or not events or not all(e in CALLBACK_EVENTS for e in events):
            errs.add(f"{at}.events", f"must be a non-empty list of {', '.join(CALLBACK_EVENTS)}")
        if "headers" in cb:
            _str_map(errs, f"{at}.headers", cb["headers"], header_names=True)
            _storable(errs, f"{at}.headers", cb["headers"])  # NUL, and secret references' names
        out.append({"url": cb.get("url"), "events": events, "headers": cb.get("headers", {})})
    spec.callbacks = out


def _policy(errs: Errors, prefix: str, body: dict[str, Any], spec: TaskSpec) -> None:
    if "callbacks" in body:
        _callbacks(errs, prefix, body["callbacks"], spec)
    if "concurrency" in body:
        _concurrency(errs, prefix, body["concurrency"], spec)
    if "rate_limit" in body:
        _rate_limit(errs, prefix, body["rate_limit"], spec)
    if "dedup" in body:
        _dedup(errs, prefix, body["dedup"], spec)
    if "queue" in body:
        q = body["queue"]
        if not isinstance(q, str) or not QUEUE_RE.match(q):
            errs.add(f"{prefix}queue", QUEUE_RULE)
        else:
            spec.queue = q
    if "priority" in body:
        v = _integer(errs, f"{prefix}priority", body["priority"], lo=-32768, hi=32767)
        spec.priority = v if v is not None else 0
    if "max_attempts" in body:
        v = _integer(errs, f"{prefix}max_attempts", body["max_attempts"], lo=1, hi=100)
        spec.max_attempts = v if v is not None else 1
    if "timeout_s" in body:
        f = _number(errs, f"{prefix}timeout_s", body["timeout_s"], lo=0, hi=MAX_TIMEOUT_S, lo_open=True)
        spec.timeout_s = f if f is not None else 1.0
    for key in ("retry_backoff_s", "retry_backoff_max_s"):
        if key in body:
            f = _number(errs, f"{prefix}{key}", body[key], lo=0, hi=86400.0 * 7)
            if f is not None:
                setattr(spec, key, f)
    if "retry_jitter" in body:
        if not isinstance(body["retry_jitter"], bool):
            errs.add(f"{prefix}retry_jitter", "must be true or false")
        else:
            spec.retry_jitter = body["retry_jitter"]


def validate_create(
    body: Any, prefix: str = "", header_key: str | None = None
) -> tuple[TaskSpec | None, list[FieldError]]:
    errs = Errors()
    if not isinstance(body, dict):
        errs.add(prefix.rstrip(".") or "body", "must be a JSON object")
        return None, errs.items
    _unknown(errs, prefix, body, CREATE_FIELDS)
    _no_nulls(errs, prefix, body, CREATE_FIELDS)
    type_ = body.get("type")
    if type_ is None:
        errs.add(f"{prefix}type", "is required")
    elif not isinstance(type_, str) or not TYPE_RE.match(type_):
        errs.add(f"{prefix}type", "must match ^[a-z][a-z0-9_.-]{0,63}$ (http, shell, or a custom handler name)")
        type_ = None
    payload = validate_payload(errs, f"{prefix}payload", type_, body.get("payload"))
    name = body.get("name")
    if name is not None:
        name = _string(errs, f"{prefix}name", name, lo=1, hi=200)
    spec = TaskSpec(type=type_ or "", name=name or type_ or "task", payload=payload)
    _schedule(errs, prefix, body, spec)
    spec.max_attempts = 1 if spec.cron else 3  # defaults before _policy overrides them
    _policy(errs, prefix, body, spec)
    if header_key is not None and "idempotency_key" in body:
        _string(errs, "Idempotency-Key", header_key, lo=1, hi=200)  # ignored, but must be well-formed
    key = body.get("idempotency_key", header_key)
    if key is not None:  # the body's key wins over the header's (README: Idempotency)
        spec.idempotency_key = _string(errs, f"{prefix}idempotency_key", key, lo=1, hi=200)
    # retry_backoff_max_s below retry_backoff_s is no error: the cap applies to every delay.
    if errs.items:
        return None, errs.items
    return spec, []


def validate_batch(body: Any) -> tuple[list[TaskSpec], list[FieldError]]:
    if not isinstance(body, dict) or set(body) - {"tasks"}:
        return [], [FieldError("tasks", 'body must be {"tasks": [...]}')]
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        return [], [FieldError("tasks", "must be a non-empty list")]
    if len(tasks) > MAX_BATCH:
        return [], [FieldError("tasks", f"at most {MAX_BATCH} tasks per batch, got {len(tasks)}")]
    specs: list[TaskSpec] = []
    errors: list[FieldError] = []
    for i, item in enumerate(tasks):
        spec, errs = validate_create(item, prefix=f"tasks[{i}].")
        errors.extend(errs)
        if spec is not None:
            specs.append(spec)
    return specs, errors


def validate_patch(body: Any, current_type: str, current_cron: str | None) -> tuple[dict[str, Any], list[FieldError]]:
    """A PATCH body → the columns to change."""
    errs = Errors()
    if not isinstance(body, dict) or not body:
        errs.add("body", "must be a non-empty JSON object")
        return {}, errs.items
    if "type" in body:
        errs.add("type", "cannot be changed; create a new task")
    _unknown(errs, "", {k: v for k, v in body.items() if k != "type"}, PATCH_FIELDS)
    _no_nulls(errs, "", body, PATCH_FIELDS - NULLABLE_PATCH_FIELDS)  # null removes these
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _string(errs, "name", body["name"])
    if "payload" in body:
        # What an http or shell payload needs depends on the task, not on the request: 409.
        own = Errors()
        changes["payload"] = validate_payload(own, "payload", current_type, body["payload"])
        errs.items += [FieldError(e.field, e.message, conflict=isinstance(body["payload"], dict)) for e in own.items]
    sched = {k: body[k] for k in ("run_at", "cron", "timezone", "catch_up", "overlap") if k in body}
    # Fields this task's kind does not have: valid requests, wrong task (409, not 400).
    if current_cron is not None and "run_at" in body:
        errs.items.append(FieldError("run_at", "a cron task has no run_at; change cron instead", conflict=True))
        del sched["run_at"]
    if current_cron is None:
        for key in ("cron", "timezone", "catch_up", "overlap"):
            if key in body:
                why = ("a one-off task cannot become a cron task; create a new task" if key == "cron"
                       else "applies to cron tasks only; this task is one-off")
                errs.items.append(FieldError(key, why, conflict=True))
                del sched[key]
    probe = TaskSpec(type=current_type, name="x", payload={})
    if sched:  # checked even when other fields are wrong: every wrong field is named at once
        if current_cron is not None and sched.get("cron") is None:
            sched["cron"] = current_cron  # timezone/policy changes are checked as cron fields
        _schedule(errs, "", sched, probe)
        for key in ("run_at", "cron", "timezone", "catch_up", "overlap"):
            if key in body:
                changes[key] = getattr(probe, key)
    _policy(errs, "", body, probe)
    for key in ("queue", "priority", "max_attempts", "timeout_s", "retry_backoff_s",
                "retry_backoff_max_s", "retry_jitter"):
        if key in body:
            changes[key] = getattr(probe, key)
    if "concurrency" in body:
        changes["concurrency"] = (None if probe.concurrency_key is None else
                                  {"key": probe.concurrency_key, "limit": probe.concurrency_limit})
    if "rate_limit" in body:
        changes["rate_limit"] = probe.rate_limit
    if "callbacks" in body:
        changes["callbacks"] = probe.callbacks
    if "dedup" in body:
        changes["dedup"] = (None if probe.dedup_key is None else
                            {"key": probe.dedup_key, "while": probe.dedup_while,
                             "on_duplicate": probe.dedup_on_duplicate})
    if errs.items:
        return {}, errs.items
    return changes, []


MIN_RATE, MAX_RATE = 0.001, 1_000_000.0  # a token every ~17 minutes .. a million a second


def validate_rate_limit(body: Any) -> tuple[tuple[float, int] | None, list[FieldError]]:
    """A PUT /api/rate-limits/{name} body → (per_second, burst)."""
    errs = Errors()
    if not isinstance(body, dict):
        errs.add("body", 'must be a JSON object: {"per_second": number, "burst": int}')
        return None, errs.items
    _unknown(errs, "", body, frozenset({"per_second", "burst"}))
    rate = None
    if "per_second" not in body:
        errs.add("per_second", "is required: the tokens added each second")
    else:
        rate = _number(errs, "per_second", body["per_second"], lo=MIN_RATE, hi=MAX_RATE)
    burst = _integer(errs, "burst", body.get("burst", 1), lo=1, hi=1_000_000)
    if errs.items or rate is None or burst is None:
        return None, errs.items
    return (rate, burst), []


BULK_ACTIONS = ("cancel", "pause", "resume", "trigger")
BULK_MAX_LIMIT = 1000
BULK_FILTERS = frozenset({"state", "type", "queue", "name", "created_after", "created_before"})
TASK_LIST_STATES = ("scheduled", "running", "paused", "succeeded", "failed", "cancelled")


@dataclass
class BulkRequest:
    action: str
    ids: list[uuid.UUID] | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    cursor: str | None = None
    limit: int = 200  # tasks per request; a dry run counts up to this many
    dry_run: bool = False


def validate_bulk(body: Any) -> tuple[BulkRequest | None, list[FieldError]]:
    """POST /api/tasks/bulk: {"action", "ids": [...]} or {"action", "filter": {...}, "cursor",
    "limit", "dry_run"}."""
    errs = Errors()
    if not isinstance(body, dict):
        errs.add("body", 'must be a JSON object: {"action": ..., "ids": [...]} or {"action": ..., "filter": {...}}')
        return None, errs.items
    _unknown(errs, "", body, frozenset({"action", "ids", "filter", "cursor", "limit", "dry_run"}))
    action = body.get("action")
    if action not in BULK_ACTIONS:
        errs.add("action", f"must be one of {', '.join(BULK_ACTIONS)}")
    req = BulkRequest(action=str(action))
    if ("ids" in body) == ("filter" in body):
        errs.add("ids", 'give either "ids" (up to 500 task ids) or "filter" (the list filters of GET /api/tasks)')
    elif "ids" in body:
        ids = body["ids"]
        if not isinstance(ids, list) or not 1 <= len(ids) <= 500:
            errs.add("ids", "must be a list of 1 to 500 task ids")
        else:
            req.ids = []
            for i, v in enumerate(ids):
                try:
                    req.ids.append(uuid.UUID(v) if isinstance(v, str) else uuid.UUID(int=-1))
                except ValueError:
                    errs.add(f"ids[{i}]", "must be a task id (a UUID)")
                    continue
            for k in ("cursor", "limit", "dry_run"):
                if k in body:
                    errs.add(k, 'applies to "filter" only')
    else:
        flt = body["filter"]
        if not isinstance(flt, dict):
            errs.add("filter", "must be an object of list filters: state, type, queue, name, created_after, "
                     "created_before")
        else:
            _unknown(errs, "filter.", flt, BULK_FILTERS)
            for k, v in flt.items():
                if k not in BULK_FILTERS:
                    continue
                if _string(errs, f"filter.{k}", v, lo=1, hi=200) is None:
                    continue
                if k == "state" and v not in TASK_LIST_STATES:
                    errs.add("filter.state", f"must be one of {', '.join(TASK_LIST_STATES)}")
                elif k in ("created_after", "created_before"):
                    try:
                        req.filter[k] = timeutil.parse_rfc3339(v)
                    except ValueError as exc:
                        errs.add(f"filter.{k}", str(exc))
                else:
                    req.filter[k] = v
        if "cursor" in body:
            req.cursor = _string(errs, "cursor", body["cursor"], lo=1, hi=100)
        if "limit" in body:
            req.limit = _integer(errs, "limit", body["limit"], lo=1, hi=BULK_MAX_LIMIT) or 1
        if "dry_run" in body:
            if not isinstance(body["dry_run"], bool):
                errs.add("dry_run", "must be true or false")
            else:
                req.dry_run = body["dry_run"]
    if errs.items:
        return None, errs.items
    return req, []
