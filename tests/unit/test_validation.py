from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skiplock.common.validation import validate_batch, validate_create, validate_patch


def fields(body: Any) -> list[str]:
    spec, errors = validate_create(body)
    assert spec is None, "expected the body to be rejected"
    return [e.field for e in errors]


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ({}, "type"),
    ({"type": "Bad Type"}, "type"),
    ({"type": "x" * 70}, "type"),
    ({"type": "http"}, "payload.url"),
    ({"type": "http", "payload": {"url": "ftp://example.com"}}, "payload.url"),
    ({"type": "http", "payload": {"url": "http://"}}, "payload.url"),
    ({"type": "http", "payload": {"url": "http://x:99999/"}}, "payload.url"),
    ({"type": "http", "payload": {"url": "http://x", "method": "BREW"}}, "payload.method"),
    ({"type": "http", "payload": {"url": "http://x", "json": {}, "body": "y"}}, "payload.body"),
    ({"type": "http", "payload": {"url": "http://x", "headers": {"X-A": 1}}}, "payload.headers.X-A"),
    ({"type": "http", "payload": {"url": "http://x", "headers": {"X-A": "a\r\nb"}}}, "payload.headers.X-A"),
    ({"type": "http", "payload": {"url": "http://x", "timeout_s": 0}}, "payload.timeout_s"),
    ({"type": "http", "payload": {"url": "http://x", "expect_status": 99}}, "payload.expect_status"),
    ({"type": "http", "payload": {"url": "http://x", "urll": "typo"}}, "payload.urll"),
    ({"type": "shell"}, "payload.command"),
    ({"type": "shell", "payload": {"command": []}}, "payload.command"),
    ({"type": "shell", "payload": {"command": [1, 2]}}, "payload.command"),
    ({"type": "shell", "payload": {"command": "  "}}, "payload.command"),
    ({"type": "shell", "payload": {"command": "ls", "env": {"A": 1}}}, "payload.env.A"),
    ({"type": "email", "payload": [1]}, "payload"),
    ({"type": "email", "name": ""}, "name"),
    ({"type": "email", "name": "x" * 201}, "name"),
    ({"type": "email", "run_at": "2026-12-01T09:00:00"}, "run_at"),
    ({"type": "email", "run_at": "tomorrow"}, "run_at"),
    ({"type": "email", "run_at": "2026-12-01T09:00:00Z", "delay_s": 3}, "delay_s"),
    ({"type": "email", "delay_s": -1}, "delay_s"),
    ({"type": "email", "delay_s": True}, "delay_s"),
    ({"type": "email", "cron": "* * *"}, "cron"),
    ({"type": "email", "cron": "61 * * * *"}, "cron"),
    ({"type": "email", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"type": "email", "timezone": "UTC"}, "timezone"),
    ({"type": "email", "cron": "* * * * *", "catch_up": "sometimes"}, "catch_up"),
    ({"type": "email", "overlap": "skip"}, "overlap"),
    ({"type": "email", "priority": 1.5}, "priority"),
    ({"type": "email", "priority": 10**9}, "priority"),
    ({"type": "email", "max_attempts": 0}, "max_attempts"),
    ({"type": "email", "max_attempts": "3"}, "max_attempts"),
    ({"type": "email", "timeout_s": -5}, "timeout_s"),
    ({"type": "email", "queue": "has space"}, "queue"),
    ({"type": "email", "retry_jitter": "no"}, "retry_jitter"),
    ({"type": "email", "run_at": "2100-01-01T00:00:00Z"}, "run_at"),
    ({"type": "email", "idempotency_key": ""}, "idempotency_key"),
    ({"type": "email", "colour": "red"}, "colour"),
])
def test_bad_input_names_the_field(body: Any, field: str) -> None:
    assert field in fields(body)


def test_every_error_is_reported_at_once() -> None:
    got = fields({"type": "http", "payload": {"url": "nope"}, "priority": "x", "max_attempts": 0})
    assert {"payload.url", "priority", "max_attempts"} <= set(got)


def test_defaults_for_one_off_and_cron() -> None:
    spec, errors = validate_create({"type": "email", "payload": {"to": "a@b"}})
    assert not errors and spec is not None
    assert (spec.name, spec.queue, spec.priority, spec.max_attempts, spec.timeout_s) == ("email", "default", 0, 3, 300)
    cron, errors = validate_create({"type": "email", "cron": "0  9 * * 1-5", "timezone": "Europe/Berlin"})
    assert not errors and cron is not None
    assert (cron.max_attempts, cron.cron, cron.timezone, cron.catch_up, cron.overlap) == (
        1, "0 9 * * 1-5", "Europe/Berlin", "latest", "skip")


def test_first_fire() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    spec, _ = validate_create({"type": "x", "delay_s": 90})
    assert spec is not None and spec.first_fire(now) == datetime(2026, 11, 22, 12, 1, 30, tzinfo=UTC)
    spec, _ = validate_create({"type": "x", "run_at": "2026-11-22T14:00:00+02:00"})
    assert spec is not None and spec.first_fire(now) == now  # 12:00Z: the offset is honoured
    spec, _ = validate_create({"type": "x", "cron": "*/2 * * * * *"})
    assert spec is not None and spec.first_fire(now) == datetime(2026, 11, 22, 12, 0, 2, tzinfo=UTC)


def test_idempotency_header_is_used_when_body_has_none() -> None:
    spec, _ = validate_create({"type": "x"}, header_key="k-1")
    assert spec is not None and spec.idempotency_key == "k-1"
    spec, _ = validate_create({"type": "x", "idempotency_key": "body"}, header_key="k-1")
    assert spec is not None and spec.idempotency_key == "body"


def test_batch_names_the_item() -> None:
    specs, errors = validate_batch({"tasks": [{"type": "ok"}, {"type": "http", "payload": {}}]})
    assert [e.field for e in errors] == ["tasks[1].payload.url"]
    assert [e.field for e in validate_batch({"tasks": []})[1]] == ["tasks"]
    assert [e.field for e in validate_batch({"tasks": [{"type": "x"}] * 1001})[1]] == ["tasks"]
    assert [e.field for e in validate_batch([])[1]] == ["tasks"]


def test_patch() -> None:
    changes, errors = validate_patch({"priority": 5, "payload": {"a": 1}}, "email", None)
    assert not errors and changes == {"priority": 5, "payload": {"a": 1}}
    assert [e.field for e in validate_patch({"type": "http"}, "email", None)[1]] == ["type"]
    assert [e.field for e in validate_patch({"cron": "* * * * *"}, "email", None)[1]] == ["cron"]
    assert [e.field for e in validate_patch({"run_at": "2026-01-01T00:00:00Z"}, "email", "* * * * *")[1]] == ["run_at"]
    changes, errors = validate_patch({"timezone": "Asia/Tokyo"}, "email", "0 9 * * *")
    assert not errors and changes == {"timezone": "Asia/Tokyo"}
    assert [e.field for e in validate_patch({"timezone": "Nowhere/Land"}, "email", "0 9 * * *")[1]] == ["timezone"]
    assert [e.field for e in validate_patch({}, "email", None)[1]] == ["body"]


def test_patch_names_every_wrong_field_at_once() -> None:
    changes, errors = validate_patch({"cron": "not a cron", "name": "", "priority": "high", "colour": "red"},
                                     "http", "* * * * *")
    assert changes == {}
    assert sorted(e.field for e in errors) == ["colour", "cron", "name", "priority"]
    _, errors = validate_patch({"run_at": "tomorrow", "timeout_s": -1, "cron": "* * * * *"}, "http", None)
    assert sorted(e.field for e in errors) == ["cron", "run_at", "timeout_s"]


def test_secret_references_are_accepted_where_values_go_and_must_be_well_named() -> None:
    ref = {"secret": "PARTNER_TOKEN"}
    spec, errors = validate_create({"type": "http", "payload": {
        "url": "https://example.com", "headers": {"Authorization": ref}, "json": {"key": ref}}})
    assert spec is not None, errors
    _, errors = validate_create({"type": "shell", "payload": {"command": "env", "env": {"TOKEN": ref}}})
    assert errors == []
    _, errors = validate_create({"type": "http", "payload": {"url": "https://example.com",
                                                             "headers": {"X-Key": {"secret": "lower-case"}}}})
    assert [e.field for e in errors] == ["payload.headers.X-Key"]


def test_reads_redact_credentials_given_in_clear() -> None:
    from skiplock.common.secrets import redact_headers

    payload = {"url": "https://x", "headers": {"Authorization": "Bearer abc", "Cookie": "s=1", "X-Api-Key": "k",
                                               "X-Auth-Token": "t", "X-Client-Secret": "c", "X-Trace": "keep",
                                               "X-Signed": {"secret": "SIGNING_KEY"}}}
    shown = redact_headers(payload)["headers"]
    assert shown == {"Authorization": "***", "Cookie": "***", "X-Api-Key": "***", "X-Auth-Token": "***",
                     "X-Client-Secret": "***", "X-Trace": "keep", "X-Signed": {"secret": "SIGNING_KEY"}}
    assert payload["headers"]["Authorization"] == "Bearer abc", "what is stored (and sent) is not changed"
