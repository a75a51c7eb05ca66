"""A real local HTTP server as the webhook target: records every hit, can fail on purpose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Hit:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookTarget:
    hits: list[Hit] = field(default_factory=list)
    # path → list of statuses to answer in turn (then 200)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    # path → where to redirect (302)
    redirects: dict[str, str] = field(default_factory=dict)
    # path → the Retry-After its 429/503 answers carry ("0" otherwise)
    retry_after: dict[str, str] = field(default_factory=dict)
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits.append(Hit(request.path, request.method, dict(request.headers), body))
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        script = self.scripts.get(request.path)
        status = script.pop(0) if script else 200
        headers = {"Retry-After": self.retry_after.get(request.path, "0")} if status in (429, 503) else None
        return web.json_response({"seen": len(self.hits), "path": request.path}, status=status, headers=headers)

    async def start(self) -> WebhookTarget:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


def any_json(hit: Hit) -> Any:
    import json

    return json.loads(hit.body)
