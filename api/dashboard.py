"""The dashboard's pages: static assets from the package (skiplock.ui), served under /ui/.

Any /ui/ path that is not an asset is a page of the single-page app (tasks, a task, runs…),
answered with index.html, so every page has a URL that can be shared or reloaded. The UI
talks to the REST API like any other client; its assets need no token (they hold no data).
"""

from __future__ import annotations

from aiohttp import web

from skiplock.ui import ASSETS

TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
SERVED = ("index.html", "app.js", "style.css")  # and vendor/*
HEADERS = {
    # Always revalidated: an upgrade of skiplock shows its own UI at the next load.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _asset(tail: str) -> str | None:
    """The asset a path names, or None (then it is a page)."""
    if tail in SERVED:
        return tail
    parts = tail.split("/")
    if len(parts) == 2 and parts[0] == "vendor" and (ASSETS / "vendor" / parts[1]).is_file() and ".." not in parts[1]:
        return tail
    return None


async def page(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    name = _asset(tail) or "index.html"
    path = ASSETS / name
    ctype = TYPES.get(path.suffix, "text/plain")
    return web.Response(body=path.read_bytes(), content_type=ctype, charset="utf-8", headers=HEADERS)


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/ui", root)
    app.router.add_get("/ui/{tail:.*}", page)
