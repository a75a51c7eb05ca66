"""The REST client. httpx gives one request model for both the sync and the async client;
the methods are written once, as generators of requests, and run by either."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from skiplock.common.states import FINAL_RUN_STATES, FINAL_TASK_STATES

Tasks = list[dict[str, Any]]  # (named: the clients' `list` method shadows the builtin in their bodies)
MAX_WAIT_S = 60.0  # the API's long-poll bound per request
RETRIES_503 = 5


class ApiError(Exception):
    """An error answer of the API (problem+json)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.errors: list[dict[str, str]] = list(problem.get("errors", []))
        super().__init__(f"{status} {self.title}: {self.detail}")

    def field(self, name: str) -> str | None:
        """The message about one field, if the API named it."""
        return next((e["message"] for e in self.errors if e.get("field") == name), None)


@dataclass
class Call:
    """One request, as the methods describe it."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _retry_after(resp: httpx.Response) -> float:
    try:
        return min(30.0, max(0.0, float(resp.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def _wait_s(deadline: float) -> float:
    """The long-poll for the time left (the API waits at most MAX_WAIT_S a request)."""
    return round(max(0.0, min(deadline - time.monotonic(), MAX_WAIT_S)), 3)


def _result(resp: httpx.Response) -> Any:
    if resp.status_code == 204:
        return None
    if resp.status_code >= 400:
        try:
            problem = resp.json()
        except ValueError:
            problem = {"title": resp.reason_phrase, "detail": resp.text[:500]}
        raise ApiError(resp.status_code, problem if isinstance(problem, dict) else {"detail": str(problem)})
    return resp.json()


class _Methods:
    """Every API method as a description of its request; `_do` runs one."""

    @staticmethod
    def _create(type: str, payload: Any = None, **fields: Any) -> Call:
        body = {"type": type, **({"payload": payload} if payload is not None else {}), **fields}
        return Call("POST", "/api/tasks", body)

    @staticmethod
    def _create_many(tasks: Tasks) -> Call:
        return Call("POST", "/api/tasks/batch", {"tasks": tasks})

    @staticmethod
    def _get(task_id: str, wait_s: float | None = None) -> Call:
        return Call("GET", f"/api/tasks/{task_id}", params=_clean({"wait_s": wait_s}),
                    timeout=None if wait_s is None else wait_s + 10)

    @staticmethod
    def _get_run(run_id: str, wait_s: float | None = None) -> Call:
        return Call("GET", f"/api/runs/{run_id}", params=_clean({"wait_s": wait_s}),
                    timeout=None if wait_s is None else wait_s + 10)


class Client(_Methods):
    """The synchronous client. Use it as a context manager, or call close()."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: Call) -> Any:
        for attempt in range(RETRIES_503 + 1):
            resp = self._http.request(call.method, call.path, json=call.json, params=call.params,
                                      timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT)
            if resp.status_code == 503 and attempt < RETRIES_503:
                time.sleep(_retry_after(resp))
                continue
            return _result(resp)
        raise AssertionError("unreachable")

    def create(self, type: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
        return self._do(self._create(type, payload, **fields))

    def create_many(self, tasks: Tasks) -> Tasks:
        return self._do(self._create_many(tasks))["tasks"]

    def get(self, task_id: str) -> dict[str, Any]:
        return self._do(self._get(task_id))

    def list(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every task matching the filters (state, type, queue, name, …), page after page."""
        cursor = None
        while True:
            page = self._do(Call("GET", "/api/tasks", params=_clean({**filters, "cursor": cursor, "limit": 500})))
            yield from page["tasks"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def runs(self, task_id: str) -> Tasks:
        out: Tasks = []
        cursor = None
        while True:
            page = self._do(Call("GET", f"/api/tasks/{task_id}/runs", params=_clean({"cursor": cursor, "limit": 500})))
            out += page["runs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._do(self._get_run(run_id))

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._do(Call("DELETE", f"/api/tasks/{task_id}"))

    def pause(self, task_id: str) -> dict[str, Any]:
        return self._do(Call("POST", f"/api/tasks/{task_id}/pause"))

    def resume(self, task_id: str) -> dict[str, Any]:
        return self._do(Call("POST", f"/api/tasks/{task_id}/resume"))

    def trigger(self, task_id: str) -> dict[str, Any]:
        return self._do(Call("POST", f"/api/tasks/{task_id}/trigger"))

    def wait(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The task once it is final (succeeded, failed, cancelled). Long-polls the API, which
        answers the moment the task ends; TimeoutError after `timeout` seconds."""
        return self._until(lambda w: self._get(task_id, wait_s=w), FINAL_TASK_STATES, f"task {task_id}", timeout)

    def wait_run(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The run once it ended; TimeoutError after `timeout` seconds."""
        return self._until(lambda w: self._get_run(run_id, wait_s=w), FINAL_RUN_STATES, f"run {run_id}", timeout)

    def _until(self, call: Callable[[float], Call], final: frozenset[str], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = self._do(call(_wait_s(deadline)))
            if got["state"] in final:
                return got
            if deadline - time.monotonic() <= 0:
                raise TimeoutError(f"{what} is {got['state']} after {timeout:g}s")


class AsyncClient(_Methods):
    """The asyncio client: the same methods, awaited (`list` is an async iterator)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _do(self, call: Call) -> Any:
        for attempt in range(RETRIES_503 + 1):
            resp = await self._http.request(call.method, call.path, json=call.json, params=call.params,
                                            timeout=call.timeout if call.timeout is not None
                                            else httpx.USE_CLIENT_DEFAULT)
            if resp.status_code == 503 and attempt < RETRIES_503:
                await asyncio.sleep(_retry_after(resp))
                continue
            return _result(resp)
        raise AssertionError("unreachable")

    async def create(self, type: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
        return await self._do(self._create(type, payload, **fields))

    async def create_many(self, tasks: Tasks) -> Tasks:
        return (await self._do(self._create_many(tasks)))["tasks"]

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self._do(self._get(task_id))

    async def list(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        cursor = None
        while True:
            page = await self._do(Call("GET", "/api/tasks", params=_clean({**filters, "cursor": cursor, "limit": 500})))
            for t in page["tasks"]:
                yield t
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def runs(self, task_id: str) -> Tasks:
        out: Tasks = []
        cursor = None
        while True:
            page = await self._do(Call("GET", f"/api/tasks/{task_id}/runs",
                                       params=_clean({"cursor": cursor, "limit": 500})))
            out += page["runs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._do(self._get_run(run_id))

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._do(Call("DELETE", f"/api/tasks/{task_id}"))

    async def pause(self, task_id: str) -> dict[str, Any]:
        return await self._do(Call("POST", f"/api/tasks/{task_id}/pause"))

    async def resume(self, task_id: str) -> dict[str, Any]:
        return await self._do(Call("POST", f"/api/tasks/{task_id}/resume"))

    async def trigger(self, task_id: str) -> dict[str, Any]:
        return await self._do(Call("POST", f"/api/tasks/{task_id}/trigger"))

    async def wait(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return await self._until(lambda w: self._get(task_id, wait_s=w), FINAL_TASK_STATES, f"task {task_id}",
                                 timeout)

    async def wait_run(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return await self._until(lambda w: self._get_run(run_id, wait_s=w), FINAL_RUN_STATES, f"run {run_id}",
                                 timeout)

    async def _until(self, call: Callable[[float], Call], final: frozenset[str], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = await self._do(call(_wait_s(deadline)))
            if got["state"] in final:
                return got
            if deadline - time.monotonic() <= 0:
                raise TimeoutError(f"{what} is {got['state']} after {timeout:g}s")
