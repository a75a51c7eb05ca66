"""The built-in executors (http, shell) and the call into custom handlers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import functools
import json
import os
import signal
import time
import traceback
from typing import Any

import aiohttp

from skiplock.worker import signing
from skiplock.worker.handlers import Context, HandlerFn, NonRetryableError, RetryAfter, is_async
from skiplock.worker.netguard import ForbiddenAddress
from skiplock.worker.outcome import Outcome, cap_text

RETRY_STATUSES = frozenset({408, 429})
# Answers that ask the caller to slow down: with Retry-After they pause the task's rate limit.
THROTTLE_STATUSES = frozenset({429, 503})
# A handler's JSON result may be this many times the output cap (64 KiB → 1 MiB).
RESULT_CAP_FACTOR = 16
KILL_GRACE_S = 2.0


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0


def _codes(value: Any) -> set[int]:
    if value is None:
        return set()
    return set(value) if isinstance(value, list) else {value}


async def run_http(session: aiohttp.ClientSession, payload: dict[str, Any], timeout_s: float, cap: int,
                   identity: dict[str, str] | None = None, signing_key: bytes | None = None) -> Outcome:
    """`identity`: headers naming the run (Idempotency-Key, X-Skiplock-*); the task's own
    headers win over them. With `signing_key`, Standard Webhooks headers sign the body, with
    the Idempotency-Key as the message id (the same for every attempt at one fire time)."""
    method = str(payload.get("method", "POST")).upper()
    req_timeout = min(float(payload.get("timeout_s", timeout_s)), timeout_s)
    headers = {**(identity or {}), **(payload.get("headers") or {})}
    body = b""
    if "json" in payload:  # serialised here, so the signature covers the bytes sent
        body = json.dumps(payload["json"], separators=(",", ":")).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif "body" in payload:
        body = payload["body"].encode()
    if signing_key is not None:
        headers.update(signing.headers(signing_key, headers.get("Idempotency-Key", ""), body))
    kwargs: dict[str, Any] = {"headers": headers, "timeout": aiohttp.ClientTimeout(total=req_timeout)}
    if "json" in payload or "body" in payload:
        kwargs["data"] = body
    try:
        async with session.request(method, payload["url"], **kwargs) as resp:
            data = await _read_body(resp.content, cap)
            text, cut = cap_text(data, cap)
            result = {"status_code": resp.status, "body": text, "body_truncated": cut}
            expected = _codes(payload.get("expect_status"))
            ok = resp.status in expected if expected else 200 <= resp.status < 300
            if ok:
                return Outcome("succeeded", result)
            retryable = (resp.status >= 500 or resp.status in RETRY_STATUSES
                         or resp.status in _codes(payload.get("retry_on_status")))
            wait_s = _retry_after(resp.headers.get("Retry-After"))
            return Outcome("failed", result, f"HTTP {resp.status}", retryable, wait_s,
                           throttled=resp.status in THROTTLE_STATUSES and wait_s > 0)
    except ForbiddenAddress as exc:
        return Outcome("failed", None, f"refused: {exc}", retryable=False)
    except TimeoutError:
        return Outcome("failed", None, f"timed out after {req_timeout:g}s", retryable=True)
    except aiohttp.InvalidURL as exc:
        return Outcome("failed", None, f"invalid URL: {exc}", retryable=False)
    except aiohttp.ClientError as exc:
        return Outcome("failed", None, f"connection error: {type(exc).__name__}: {exc}", retryable=True)


async def _read_body(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """Up to cap + 1 bytes, however many reads they take (one more than the cap tells
    cap_text that something was cut)."""
    buf = bytearray()
    while len(buf) <= cap:
        chunk = await stream.read(cap + 1 - len(buf))
        if not chunk:
            break
        buf.extend(chunk)
    return bytes(buf)


def _shell_env(extra: dict[str, str] | None) -> dict[str, str]:
    # The worker's own secrets (SKIPLOCK_*) are not handed to commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKIPLOCK_")}
    env.update(extra or {})
    return env


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[str, bool]:
    kept = bytearray()
    total = 0
    while chunk := await stream.read(65536):
        total += len(chunk)
        if len(kept) < cap:
            kept.extend(chunk[: cap - len(kept)])
    return kept.decode("utf-8", errors="replace"), total > cap


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def run_shell(payload: dict[str, Any], timeout_s: float, cap: int) -> Outcome:
    cmd = payload["command"]
    argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    limit = min(float(payload.get("timeout_s", timeout_s)), timeout_s)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=payload.get("cwd"), env=_shell_env(payload.get("env")),
            start_new_session=True)  # its own process group, so a kill takes its children too
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        return Outcome("failed", None, f"cannot start command: {exc}", retryable=False)
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(_read_capped(proc.stdout, cap), _read_capped(proc.stderr, cap))
    try:
        async with asyncio.timeout(limit):
            (out, out_cut), (err, err_cut) = await readers
            code = await proc.wait()
    except (TimeoutError, asyncio.CancelledError) as exc:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(KILL_GRACE_S):
                await proc.wait()
        except TimeoutError:
            pass
        _killpg(proc.pid, signal.SIGKILL)  # anything of the group still alive
        await proc.wait()
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await readers
        if isinstance(exc, asyncio.CancelledError):
            raise
        return Outcome("failed", None, f"timed out after {limit:g}s; process group killed", retryable=True)
    result = {"exit_code": code, "stdout": out, "stderr": err,
              "stdout_truncated": out_cut, "stderr_truncated": err_cut}
    if code == 0:
        return Outcome("succeeded", result)
    return Outcome("failed", result, f"exit code {code}", retryable=True)


async def run_custom(fn: HandlerFn, payload: dict[str, Any], ctx: Context, cap: int,
                     executor: concurrent.futures.Executor | None = None) -> Outcome:
    """`executor`: where plain (sync) handlers run; the worker gives its own, sized to its
    slots, so user code never holds the loop's default threads (which resolve DNS)."""
    try:
        if is_async(fn):
            value = await fn(payload, ctx)
        else:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(executor, functools.partial(fn, payload, ctx))
    except NonRetryableError as exc:
        return Outcome("failed", None, _describe(exc), retryable=False)
    except RetryAfter as exc:
        return Outcome("failed", None, str(exc), retryable=True, retry_after_s=exc.delay_s)
    except asyncio.CancelledError:
        ctx.cancelled.set()  # a threaded handler sees it; an async one is cancelled already
        raise
    except Exception as exc:
        return Outcome("failed", None, _describe(exc), retryable=True)
    try:
        text = json.dumps(value, allow_nan=False)  # NaN and Infinity are not JSON; jsonb refuses them
    except (TypeError, ValueError) as exc:
        return Outcome("failed", None, f"handler returned a value that is not JSON: {exc}", retryable=False)
    if len(text) > RESULT_CAP_FACTOR * cap:
        # Too big to keep whole: keep a preview and say so, like captured output.
        return Outcome("succeeded", {"truncated": True, "size_bytes": len(text), "preview": text[:cap]})
    return Outcome("succeeded", value, result_json=text if value is not None else None)


def _describe(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(exc)[-3:])
    return f"{type(exc).__name__}: {exc}\n{tb}"[:8192]
