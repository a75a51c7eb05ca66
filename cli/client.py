"""`skiplock tasks …` and `skiplock workers`: a small client of the REST API, human tables by
default, `--json` for scripts."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from skiplock.common.config import DEFAULT_API_ADDR


def _api_url() -> str:
    return os.environ.get("SKIPLOCK_API_URL") or f"http://{os.environ.get('SKIPLOCK_API_ADDR', DEFAULT_API_ADDR)}"


def request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    url = args.api_url.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    token = os.environ.get("SKIPLOCK_API_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
        except ValueError:
            problem = {"detail": exc.reason}
        lines = [f"error {exc.code}: {problem.get('detail') or problem.get('title')}"]
        lines += [f"  {e['field']}: {e['message']}" for e in problem.get("errors", [])]
        raise SystemExit("\n".join(lines)) from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"cannot reach the API at {args.api_url}: {exc.reason}") from None


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def _emit(args: argparse.Namespace, data: Any, rows: list[dict[str, Any]], cols: list[str]) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(_table(rows, cols))
    return 0


TASK_COLS = ["id", "name", "type", "state", "next_run_at", "cron"]
RUN_COLS = ["id", "attempt", "state", "scheduled_for", "started_at", "duration_ms", "error"]


def tasks_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = json.loads(args.body) if args.body else {}
    for key in ("type", "name", "cron", "timezone", "run_at", "queue"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.payload:
        body["payload"] = json.loads(args.payload)
    if args.delay_s is not None:
        body["delay_s"] = args.delay_s
    task = request(args, "POST", "/api/tasks", body)
    return _emit(args, task, [task], TASK_COLS)


def tasks_list(args: argparse.Namespace) -> int:
    q = {k: v for k, v in (("state", args.state), ("type", args.type), ("limit", args.limit)) if v}
    page = request(args, "GET", "/api/tasks?" + urllib.parse.urlencode(q))
    return _emit(args, page, page["tasks"], TASK_COLS)


def tasks_get(args: argparse.Namespace) -> int:
    task = request(args, "GET", f"/api/tasks/{args.id}")
    return _emit(args, task, [task], TASK_COLS)


def tasks_cancel(args: argparse.Namespace) -> int:
    task = request(args, "DELETE", f"/api/tasks/{args.id}")
    return _emit(args, task, [task], TASK_COLS)


def tasks_runs(args: argparse.Namespace) -> int:
    page = request(args, "GET", f"/api/tasks/{args.id}/runs")
    return _emit(args, page, page["runs"], RUN_COLS)


def workers(args: argparse.Namespace) -> int:
    data = request(args, "GET", "/api/workers")
    rows = [{**w, "types": ",".join(w["types"])} for w in data["workers"]]
    return _emit(args, data, rows, ["id", "name", "host", "types", "slots", "running", "last_heartbeat_at"])


def add_client_commands(sub: Any) -> None:
    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--api-url", default=_api_url(), help="the API [env SKIPLOCK_API_URL]")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    tasks = sub.add_parser("tasks", help="create, list, get, cancel tasks; list a task's runs")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    c = client(tsub.add_parser("create", help="create a task"))
    c.add_argument("--type", help="http, shell or a custom type")
    c.add_argument("--name")
    c.add_argument("--payload", help="the payload as JSON")
    c.add_argument("--cron")
    c.add_argument("--timezone")
    c.add_argument("--run-at", dest="run_at")
    c.add_argument("--delay-s", dest="delay_s", type=float)
    c.add_argument("--queue")
    c.add_argument("--body", help="a whole task as JSON (flags override its fields)")
    c.set_defaults(func=tasks_create)
    lst = client(tsub.add_parser("list", help="list tasks, newest first"))
    lst.add_argument("--state")
    lst.add_argument("--type")
    lst.add_argument("--limit", type=int)
    lst.set_defaults(func=tasks_list)
    for name, fn, help_ in (("get", tasks_get, "one task"), ("cancel", tasks_cancel, "cancel a task"),
                            ("runs", tasks_runs, "a task's runs")):
        p = client(tsub.add_parser(name, help=help_))
        p.add_argument("id")
        p.set_defaults(func=fn)
    w = client(sub.add_parser("workers", help="connected workers"))
    w.set_defaults(func=workers)


