"""The no-op handler the bench runs."""

from __future__ import annotations

from typing import Any

from skiplock.worker import handler


@handler("bench.noop")
async def noop(payload: dict[str, Any], ctx: Any) -> None:
    return None
