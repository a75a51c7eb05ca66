"""Custom handlers the end-to-end tests load into real workers with `--import e2e_handlers`."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from skiplock.worker import NonRetryableError, handler


@handler("noop")
async def noop(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {}


@handler("echo")
async def echo(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"payload": payload, "attempt": ctx.attempt, "worker_id": ctx.worker_id}


@handler("sleep")
async def sleep(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await asyncio.sleep(float(payload.get("s", 1)))
    return {"slept": payload.get("s", 1), "pid": os.getpid()}


@handler("fail.hard")
async def fail_hard(payload: dict[str, Any], ctx: Any) -> None:
    raise NonRetryableError("this input can never work")


@handler("fail.until")
async def fail_until(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    if ctx.attempt < int(payload["succeed_on"]):
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempt": ctx.attempt}


@handler("sync.add")
def sync_add(payload: dict[str, Any], ctx: Any) -> int:
    return int(payload["a"]) + int(payload["b"])


@handler("big")
async def big(payload: dict[str, Any], ctx: Any) -> str:
    return "x" * int(payload["n"])


@handler("poison")
async def poison(payload: dict[str, Any], ctx: Any) -> None:
    os._exit(1)  # takes the whole worker process down, every time


@handler("sleep.mark")
async def sleep_mark(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Sleeps; when stopped, writes the wall-clock time it stopped at to payload["mark"]."""
    try:
        await asyncio.sleep(float(payload["s"]))
    except asyncio.CancelledError:
        Path(payload["mark"]).write_text(repr(time.time()))
        raise
    return {"slept": payload["s"]}


@handler("sleep.span")
async def sleep_span(payload: dict[str, Any], ctx: Any) -> None:
    """Sleeps payload["s"] and records when it started and ended in payload["dir"]."""
    began = time.time()
    await asyncio.sleep(float(payload["s"]))
    (Path(payload["dir"]) / f"{uuid.uuid4().hex}.mark").write_text(f"{began} {time.time()}")
