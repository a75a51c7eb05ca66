"""skiplock from application code, over REST: `Client` (sync) and `AsyncClient`.

    from skiplock.client import Client
    with Client("http://127.0.0.1:8080", token=None) as c:
        task = c.create("http", {"url": "https://example.com/hook"}, run_at="2030-01-01T09:00:00Z")
        done = c.wait(task["id"], timeout=30)   # the task once it is final; TimeoutError otherwise

Bodies are the REST API's, as plain dicts. A problem+json answer raises `ApiError` (status,
title, detail, errors: [{"field", "message"}]); a 503 is retried as its Retry-After says.
This package imports nothing of the server: an application can use it on its own.
"""

from skiplock.client.http import ApiError, AsyncClient, Client

__all__ = ["ApiError", "AsyncClient", "Client"]
