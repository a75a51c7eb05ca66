"""RFC 9457 problem details: every error the API returns is one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from skiplock.common import jsontext
from skiplock.common.validation import FieldError

__all__ = ["FieldError", "Problem", "invalid", "not_found"]

CONTENT_TYPE = "application/problem+json"


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "type": f"https://skiplock.dev/problems/{self.title.lower().replace(' ', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.errors:
            body["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return web.Response(status=self.status, body=jsontext.dumps_bytes(body), content_type=CONTENT_TYPE,
                            headers=self.headers)


def invalid(errors: list[FieldError], detail: str | None = None) -> Problem:
    first = errors[0]
    return Problem(
        400,
        "Invalid request",
        detail or f"{first.field}: {first.message}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        errors,
    )


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"no {what}")
