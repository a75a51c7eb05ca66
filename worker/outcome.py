"""What an executor returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    state: str  # succeeded | failed | cancelled
    result: Any = None
    error: str | None = None
    retryable: bool = True
    retry_after_s: float = 0.0
    released: bool = False  # not finished because this worker is shutting down
    throttled: bool = False  # the target asked us to slow down (429/503 with Retry-After)
    result_json: str | None = None  # `result` as JSON, when the executor already wrote it


def cap_text(data: bytes, cap: int) -> tuple[str, bool]:
    """Decode at most `cap` bytes; say whether anything was cut."""
    cut = len(data) > cap
    return data[:cap].decode("utf-8", errors="replace"), cut
