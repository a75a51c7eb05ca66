"""Custom handlers: `@handler("email")` registers a Python function for a task type."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skiplock.common.errors import SkiplockError

TYPE_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
BUILTIN = frozenset({"http", "shell"})

HandlerFn = Callable[[dict[str, Any], "Context"], Awaitable[Any] | Any]


class NonRetryableError(SkiplockError):
    """Raise from a handler to fail the run without retrying it."""


class RetryAfter(SkiplockError):
    """Raise from a handler to fail this attempt and retry no sooner than `delay_s` seconds
    from now (attempts permitting), e.g. when a service said "come back later"."""

    def __init__(self, delay_s: float, message: str | None = None) -> None:
        super().__init__(message or f"retry requested in {delay_s:g}s")
        self.delay_s = max(0.0, float(delay_s))


class Cancellation:
    """Set when the run should stop. Made once per run, so it is a flag rather than a
    threading.Event (whose lock and condition cost more than a no-op run); a plain bool
    written on the loop and read from a handler thread is safe in CPython."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def __bool__(self) -> bool:
        return self._set


@dataclass(frozen=True)
class Context:
    """What a handler knows about the run it executes."""

    run_id: str
    task_id: str
    task_name: str
    type: str
    attempt: int
    max_attempts: int
    scheduled_for: datetime
    timeout_s: float
    worker_id: str
    log: Any
    # Set when the run times out, is cancelled, or the worker shuts down. Async handlers are
    # cancelled outright; a plain (threaded) handler cannot be, so it should poll
    # `ctx.cancelled.is_set()` in long loops and return early.
    cancelled: Cancellation = field(default_factory=Cancellation, compare=False)


_registry: dict[str, HandlerFn] = {}


def handler(type_name: str) -> Callable[[HandlerFn], HandlerFn]:
    """Register `fn` as the handler of tasks of type `type_name`.

    The function gets (payload, ctx); it may be async or plain (plain ones run on the
    worker's handler threads, one per slot, never on the threads that resolve DNS).
    Return a JSON-serialisable result; raise to fail the run (retried while attempts remain),
    raise NonRetryableError to fail it for good, or RetryAfter(delay_s) to retry it later.
    """
    if not isinstance(type_name, str) or not TYPE_RE.match(type_name):
        raise ValueError(f"handler type {type_name!r} must match {TYPE_RE.pattern}")
    if type_name in BUILTIN:
        raise ValueError(f"{type_name!r} is a built-in type; pick another name")

    def register(fn: HandlerFn) -> HandlerFn:
        if type_name in _registry and _registry[type_name] is not fn:
            raise ValueError(f"a handler for {type_name!r} is already registered")
        _registry[type_name] = fn

        # Application code names the handler, not a string: send_email.enqueue(conn, {...}).
        async def enqueue(conn: Any, payload: Any = None, **fields: Any) -> Any:
            from skiplock.client.enqueue import enqueue as make

            return await make(conn, type_name, payload, **fields)

        def enqueue_sync(conn: Any, payload: Any = None, **fields: Any) -> Any:
            from skiplock.client.enqueue import enqueue_sync as make

            return make(conn, type_name, payload, **fields)

        fn.enqueue = enqueue  # type: ignore[attr-defined]
        fn.enqueue_sync = enqueue_sync  # type: ignore[attr-defined]
        return fn

    return register


def registered() -> dict[str, HandlerFn]:
    return dict(_registry)


def is_async(fn: HandlerFn) -> bool:
    return inspect.iscoroutinefunction(fn)
