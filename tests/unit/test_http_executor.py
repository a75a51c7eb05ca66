"""The http executor against a real local server: bodies read whole up to the cap, however
the server writes them, and `body_truncated` true exactly when something was cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skiplock.worker.executors import run_http

CAP = 64 * 1024


async def _in_pieces(request: web.Request) -> web.StreamResponse:
    size, pieces = int(request.query["size"]), int(request.query["pieces"])
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    step = size // pieces
    for i in range(pieces):
        await resp.write(b"x" * (step if i < pieces - 1 else size - step * (pieces - 1)))
        await asyncio.sleep(0.02)  # separate network reads, as a slow server makes them
    await resp.write_eof()
    return resp


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/body", _in_pieces)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url(""))
    await server.close()


@pytest.mark.parametrize(("size", "pieces", "kept", "cut"), [
    (2_000, 2, 2_000, False),            # was stored as its first 1,000 bytes
    (CAP, 7, CAP, False),                # exactly the cap: nothing cut
    (300_000, 10, CAP, True),            # was stored as 65,536 characters, flagged false
    (CAP + 1, 3, CAP, True),
])
async def test_body_is_read_up_to_the_cap_across_reads(base: str, size: int, pieces: int, kept: int,
                                                       cut: bool) -> None:
    async with aiohttp.ClientSession() as session:
        outcome = await run_http(session, {"method": "GET", "url": f"{base}/body?size={size}&pieces={pieces}"},
                                 10.0, CAP)
    assert outcome.state == "succeeded"
    assert len(outcome.result["body"]) == kept and outcome.result["body_truncated"] is cut
