"""The skiplock worker. Users import `handler` (and `NonRetryableError`, `Context`) from here."""

from skiplock.worker.handlers import Context, NonRetryableError, handler

__all__ = ["Context", "NonRetryableError", "handler"]
