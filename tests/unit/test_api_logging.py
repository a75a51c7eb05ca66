"""A request aiohttp cannot parse is the client's fault: not an ERROR with a traceback."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadStatusLine

from skiplock.api.server import _BadRequestsAreWarnings


def _record(exc: BaseException | None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", None,
                             info if info else None)


def test_unparsable_requests_are_kept_out_of_the_error_log() -> None:
    f = _BadRequestsAreWarnings()
    assert f.filter(_record(BadStatusLine(b"GARBAGE"))) is False
    try:
        raise RuntimeError("a real server bug")
    except RuntimeError:
        assert f.filter(_record(sys.exc_info()[1])) is True, "real errors still reach the log"
    assert f.filter(_record(None)) is True
