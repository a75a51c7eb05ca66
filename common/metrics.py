"""A Prometheus /metrics endpoint for processes that have no HTTP server of their own."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from skiplock.common.config import parse_addr


def render(registry: CollectorRegistry) -> web.Response:
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve_metrics(addr: str, registry: CollectorRegistry) -> web.AppRunner:
    """Serve `registry` at http://addr/metrics until the returned runner is cleaned up."""

    async def handle(_: web.Request) -> web.Response:
        return render(registry)

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_addr(addr, "SKIPLOCK_METRICS_ADDR")
    await web.TCPSite(runner, host, port).start()
    return runner
