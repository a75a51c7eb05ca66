"""Secret references: a payload value `{"secret": "NAME"}` stands for the worker's own
`SKIPLOCK_SECRET_NAME`, resolved when the run executes, so the secret is never stored in
PostgreSQL nor returned by the API. Header values that look like credentials and are given
in clear are shown as "***" by every read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from skiplock.common.errors import SkiplockError

NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
ENV_PREFIX = "SKIPLOCK_SECRET_"
REDACTED = "***"
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


class MissingSecret(SkiplockError):
    """A secret the payload references is not set on this worker."""


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "secret" in value


def valid_ref(value: Any) -> bool:
    return is_ref(value) and isinstance(value["secret"], str) and bool(NAME_RE.match(value["secret"]))


def resolve(value: Any, env: Mapping[str, str]) -> Any:
    """`value` with every secret reference replaced by its value from `env`."""
    if is_ref(value):
        name = value["secret"]
        try:
            return env[f"{ENV_PREFIX}{name}"]
        except KeyError:
            raise MissingSecret(f"secret {name!r} is not set on this worker (set {ENV_PREFIX}{name})") from None
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    return value


def sensitive_header(name: str) -> bool:
    low = name.lower()
    return low in SENSITIVE_HEADERS or "token" in low or "secret" in low


def redact_headers(payload: Any) -> Any:
    """An http payload as reads show it: sensitive header values in clear become "***"
    (references to secrets stay: they are names, not secrets)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("headers"), dict):
        return payload
    headers = {k: (REDACTED if sensitive_header(k) and isinstance(v, str) else v)
               for k, v in payload["headers"].items()}
    return {**payload, "headers": headers}
