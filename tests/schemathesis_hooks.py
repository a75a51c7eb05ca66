"""What the OpenAPI document states in words, given to schemathesis as strategies and filters
(loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks by tests/e2e/test_openapi_fuzz.py).

- `format: cron` and `format: iana-time-zone` are ours: JSON Schema cannot say which strings
  croniter accepts, and an enum of every zone breaks generated clients.
- `format: rate-limit`: a rate limit that exists (the test creates it before the run).
- No string or key anywhere in a body holds NUL: PostgreSQL cannot store it, and a recursive
  schema that says so breaks generated clients too.
"""

from __future__ import annotations

import json
import sys
import zoneinfo
from typing import Any

import schemathesis
from hypothesis import strategies as st


def _every(n: int) -> str:
    return f"*/{n}"


MINUTE = st.one_of(st.just("*"), st.integers(0, 59).map(str), st.integers(1, 30).map(_every))
HOUR = st.one_of(st.just("*"), st.integers(0, 23).map(str), st.just("9-17"))
DOM = st.one_of(st.just("*"), st.integers(1, 28).map(str))
MONTH = st.one_of(st.just("*"), st.integers(1, 12).map(str), st.just("JAN"))
DOW = st.one_of(st.just("*"), st.integers(0, 6).map(str), st.just("MON-FRI"))
CRON = st.one_of(
    st.tuples(MINUTE, HOUR, DOM, MONTH, DOW).map(" ".join),
    st.tuples(MINUTE, MINUTE, HOUR, DOM, MONTH, DOW).map(" ".join),  # seconds first
)

# Hypothesis describes strategies by parsing lambda sources (only for their repr); deep
# inside the recursive strategy for "any JSON", ast.parse trips CPython 3.11.7's "AST
# constructor recursion depth mismatch" (fixed in 3.11.8). A lambda it cannot describe is
# then described as "lambda".
if sys.version_info[:3] < (3, 11, 8):
    from hypothesis.internal import lambda_sources

    _describe = lambda_sources._lambda_description

    def _lambda_description(f: Any) -> str:
        try:
            return _describe(f)
        except SystemError:
            return "lambda: <unknown>"

    lambda_sources._lambda_description = _lambda_description

schemathesis.openapi.format("cron", CRON)
# `format: rate-limit` is the name of a rate limit that exists; the fuzz test makes this one.
FUZZ_RATE_LIMIT = "fuzz"
schemathesis.openapi.format("rate-limit", st.just(FUZZ_RATE_LIMIT))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(zoneinfo.available_timezones())))


def _has_nul(value: Any) -> bool:
    text = json.dumps(value, default=repr)
    return "\\u0000" in text or "\\x00" in text


def _other_rate_limit(body: Any) -> bool:
    """A task naming a rate limit other than the one that exists (the coverage phase makes
    strings from the pattern alone, without the format)."""
    tasks = body.get("tasks") if isinstance(body, dict) and isinstance(body.get("tasks"), list) else [body]
    return any(isinstance(t, dict) and isinstance(t.get("rate_limit"), str) and t["rate_limit"] != FUZZ_RATE_LIMIT
               for t in tasks)


@schemathesis.hook
def filter_body(ctx: Any, body: Any) -> bool:
    return not _has_nul(body) and not _other_rate_limit(body)


@schemathesis.hook
def filter_query(ctx: Any, query: Any) -> bool:
    return not _has_nul(query)


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    # The coverage phase applies case hooks only, not the body filter above.
    return not _other_rate_limit(case.body)


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    # A long-poll may wait a minute by contract; the fuzzer's requests time out after 10 s.
    if isinstance(case.query, dict) and "wait_s" in case.query:
        try:
            case.query["wait_s"] = min(float(case.query["wait_s"]), 0.5)
        except (TypeError, ValueError):
            pass
    return case
