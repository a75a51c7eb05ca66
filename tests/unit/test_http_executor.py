"""The http executor against a real local server: bodies read whole up to the cap, however
the server writes them, and `body_truncated` true exactly when something was cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skiplock.worker import signing
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


SEEN: list[tuple[dict[str, str], bytes]] = []


async def _record(request: web.Request) -> web.Response:
    SEEN.append((dict(request.headers), await request.read()))
    return web.Response(text="ok")


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/body", _in_pieces)
    app.router.add_post("/hook", _record)
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


@pytest.mark.parametrize("own_key", [None, "order-42"])
async def test_a_signed_request_names_the_idempotency_key_it_sends(base: str, own_key: str | None) -> None:
    """The webhook-id a receiver checks is the Idempotency-Key it received: the run's, or the
    task's own when its headers set one."""
    from standardwebhooks import Webhook

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    SEEN.clear()
    payload = {"url": f"{base}/hook", "json": {"a": 1}, **({"headers": {"Idempotency-Key": own_key}} if own_key else {})}
    async with aiohttp.ClientSession() as session:
        outcome = await run_http(session, payload, 10.0, CAP, {"Idempotency-Key": "task/slot"}, signing.key(secret))
    assert outcome.state == "succeeded"
    [(headers, body)] = SEEN
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["idempotency-key"] == (own_key or "task/slot") == lower["webhook-id"]
    Webhook(secret).verify(body, lower)  # raises if the signature does not hold
