"""`skiplock tasks|runs|workers|cluster …`: a client of the REST API for people (tables and
a readable task view) and scripts (`--json`: data on stdout, errors as JSON too)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from skiplock.common.config import DEFAULT_API_ADDR, DEFAULT_GRPC_ADDR
from skiplock.common.errors import ConfigError, SkiplockError

FINAL = ("succeeded", "failed", "cancelled")


class ApiFailure(SkiplockError):
    """The API answered with an error."""

    def __init__(self, problem: dict[str, Any]) -> None:
        what = problem.get("detail") or problem.get("title")
        lines = [f"error {problem['status']}: {what}" if problem.get("status") else str(what)]
        lines += [f"  {e['field']}: {e['message']}" for e in problem.get("errors", [])]
        super().__init__("\n".join(lines))
        self.problem = problem


def _api_url() -> str:
    return os.environ.get("SKIPLOCK_API_URL") or f"http://{os.environ.get('SKIPLOCK_API_ADDR', DEFAULT_API_ADDR)}"


def request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    url = args.api_url.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    token = os.environ.get("SKIPLOCK_API_TOKEN") or os.environ.get("SKIPLOCK_API_READ_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
        except ValueError:
            problem = {"status": exc.code, "title": exc.reason}
        raise ApiFailure(problem) from None
    except urllib.error.URLError as exc:
        raise ApiFailure({"status": 0, "title": "API unreachable",
                          "detail": f"cannot reach the API at {args.api_url}: {exc.reason}"}) from None


def _json_arg(value: str | None, flag: str) -> Any:
    if value is None:
        return None
    if value.startswith("@"):  # @file, as curl does
        try:
            with open(value[1:], encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise ConfigError(f"{flag}: cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}") from None


# ---- output ----

def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(out)


def _emit(args: argparse.Namespace, data: Any, rows: list[dict[str, Any]], cols: list[str],
          more: str | None = None) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(_table(rows, cols) if rows else "(none)")
    if more:
        print(f"\nmore: --cursor {more}   (or --all)")
    return 0


TASK_COLS = ["id", "name", "type", "state", "next_run_at", "cron"]
RUN_COLS = ["id", "attempt", "state", "reason", "scheduled_for", "started_at", "duration_ms", "worker_id", "error"]
WORKER_COLS = ["id", "name", "host", "types", "queues", "slots", "running", "draining", "last_heartbeat_at"]
QUEUE_COLS = ["name", "paused", "pending", "running", "due_backlog", "oldest_due_at", "workers"]


def _schedule(t: dict[str, Any]) -> str:
    if t["cron"]:
        return f"cron {t['cron']!r} in {t['timezone']} (catch_up {t['catch_up']}, overlap {t['overlap']})"
    return f"once at {t['run_at']}" if t["run_at"] else "once, when created"


def _describe_run(r: dict[str, Any]) -> list[str]:
    head = f"attempt {r['attempt']} {r['state']}"
    if r.get("finished_at"):
        head += f" at {r['finished_at']}"
    if r.get("duration_ms") is not None:
        head += f" in {r['duration_ms']} ms"
    if r.get("worker_id"):
        head += f" on worker {r['worker_id']}"
    lines = [head]
    if r.get("error"):
        lines.append(f"error: {r['error'].strip()}")
    if r.get("result") is not None:
        lines.append("result: " + json.dumps(r["result"], indent=2).replace("\n", "\n  "))
    return lines


def task_text(t: dict[str, Any]) -> str:
    """A task for people: what it is, when it runs, what happened last, why it waits."""
    fields: list[tuple[str, str]] = [
        ("id", t["id"]), ("name", t["name"]), ("type", t["type"]), ("state", t["state"]),
        ("schedule", _schedule(t)),
        ("next runs", ", ".join(x for x in t.get("next_runs") or [] if x) or "-"),
        ("policy", f"queue {t['queue']}, priority {t['priority']}, max_attempts {t['max_attempts']}, "
                   f"timeout {t['timeout_s']:g}s, retry backoff "
                   f"{t['retry_backoff_s']:g}s..{t['retry_backoff_max_s']:g}s"
                   + (" with jitter" if t["retry_jitter"] else "")),
    ]
    limits = [f"concurrency key {c['key']} (limit {c['limit']})" for c in [t.get("concurrency")] if c]
    limits += [f"rate limit {t['rate_limit']}"] if t.get("rate_limit") else []
    limits += [f"dedup key {d['key']} (while {d['while']}, {d['on_duplicate']})" for d in [t.get("dedup")] if d]
    if limits:
        fields.append(("limits", ", ".join(limits)))
    if t.get("waiting"):
        w = t["waiting"]
        fields.append(("waiting", f"{w['reason']}: {w['detail']}" + (f" (until {w['until']})" if w["until"] else "")))
    if t.get("quarantined"):
        fields.append(("quarantined", f"yes, after {t['lost_runs']} runs lost their worker; resume to retry"))
    fields.append(("payload", json.dumps(t["payload"], indent=2).replace("\n", "\n" + " " * 14)))
    last = t.get("last_run")
    fields.append(("last run", "\n".join(_describe_run(last)).replace("\n", "\n" + " " * 14) if last else "-"))
    for w in t.get("warnings") or []:
        fields.append(("warning", w))
    return "\n".join(f"{k:<12}  {v}" for k, v in fields)


def _print_task(args: argparse.Namespace, task: dict[str, Any]) -> int:
    print(json.dumps(task, indent=2) if args.json else task_text(task))
    return 0


# ---- tasks ----

TASK_FLAGS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--name", "name", str, "1-200 characters"),
    ("--run-at", "run_at", str, "RFC 3339 with an offset, e.g. 2026-12-01T09:00:00Z"),
    ("--delay-s", "delay_s", float, "seconds from now"),
    ("--cron", "cron", str, "5 fields, or 6 with seconds first"),
    ("--timezone", "timezone", str, "IANA zone of the cron expression (default UTC)"),
    ("--catch-up", "catch_up", str, "latest | all | none"),
    ("--overlap", "overlap", str, "skip | allow | queue"),
    ("--queue", "queue", str, "default: default"),
    ("--priority", "priority", int, "higher runs first"),
    ("--max-attempts", "max_attempts", int, "1-100"),
    ("--timeout-s", "timeout_s", float, "bounds the whole run"),
    ("--retry-backoff-s", "retry_backoff_s", float, "base of the exponential backoff"),
    ("--retry-backoff-max-s", "retry_backoff_max_s", float, "its cap"),
]


def _add_task_flags(p: argparse.ArgumentParser, *, create: bool) -> None:
    if create:
        p.add_argument("--type", help="http, shell or a custom handler's type")
        p.add_argument("--idempotency-key", dest="idempotency_key", help="a repeat returns the first task")
    p.add_argument("--payload", help="the payload as JSON, or @file")
    for flag, dest, conv, help_ in TASK_FLAGS:
        p.add_argument(flag, dest=dest, type=conv, help=help_)
    p.add_argument("--retry-jitter", dest="retry_jitter", action=argparse.BooleanOptionalAction, default=None,
                   help="full jitter on retry delays (default on)")
    p.add_argument("--concurrency-key", dest="concurrency_key",
                   help="at most --concurrency-limit runs of tasks with this key run at once")
    p.add_argument("--concurrency-limit", dest="concurrency_limit", type=int, help="1-10,000 (default 1)")
    p.add_argument("--rate-limit", dest="rate_limit",
                   help="the name of a rate limit (skiplock rate-limits set NAME ...) its runs obey")
    if create:
        p.add_argument("--dedup-key", dest="dedup_key",
                       help="while a task with this key waits or runs, a create with it returns that task")
        p.add_argument("--dedup-while", dest="dedup_while", choices=("pending", "active"),
                       help="the window: the task has a pending run, or a pending or running one (default active)")
        p.add_argument("--dedup-replace", dest="dedup_replace", action="store_true",
                       help="a duplicate replaces the waiting task's payload and run_at (debounce)")
    p.add_argument("--body", help="a whole task as JSON, or @file (the flags override its fields)")


def _task_body(args: argparse.Namespace, *, create: bool) -> dict[str, Any]:
    body = _json_arg(args.body, "--body") or {}
    if not isinstance(body, dict):
        raise ConfigError("--body must be a JSON object")
    keys = [dest for _, dest, _, _ in TASK_FLAGS] + ["retry_jitter"] + (["type", "idempotency_key"] if create else [])
    for key in keys:
        if getattr(args, key, None) is not None:
            body[key] = getattr(args, key)
    if args.payload is not None:
        body["payload"] = _json_arg(args.payload, "--payload")
    if args.concurrency_key is not None:
        body["concurrency"] = {"key": args.concurrency_key,
                               **({"limit": args.concurrency_limit} if args.concurrency_limit is not None else {})}
    elif args.concurrency_limit is not None:
        raise ConfigError("--concurrency-limit goes with --concurrency-key")
    if args.rate_limit is not None:
        body["rate_limit"] = args.rate_limit
    if create and args.dedup_key is not None:
        body["dedup"] = {"key": args.dedup_key, **({"while": args.dedup_while} if args.dedup_while else {}),
                         **({"on_duplicate": "replace"} if args.dedup_replace else {})}
    elif create and (args.dedup_while or args.dedup_replace):
        raise ConfigError("--dedup-while and --dedup-replace go with --dedup-key")
    return body


def tasks_create(args: argparse.Namespace) -> int:
    return _print_task(args, request(args, "POST", "/api/tasks", _task_body(args, create=True)))


def tasks_update(args: argparse.Namespace) -> int:
    body = _task_body(args, create=False)
    if not body:
        raise ConfigError("nothing to change: pass flags (see --help) or --body")
    return _print_task(args, request(args, "PATCH", f"/api/tasks/{args.id}", body))


def _pages(args: argparse.Namespace, path: str, query: dict[str, Any], key: str) -> tuple[list[Any], str | None]:
    """One page, or every page with --all."""
    items: list[Any] = []
    cursor = args.cursor
    while True:
        q = {k: v for k, v in {**query, "limit": args.limit, "cursor": cursor}.items() if v is not None}
        page = request(args, "GET", f"{path}?{urllib.parse.urlencode(q)}")
        items += page[key]
        cursor = page["next_cursor"]
        if not args.all or not cursor:
            return items, cursor


def tasks_list(args: argparse.Namespace) -> int:
    q = {"state": args.state, "type": args.type, "queue": args.queue, "name": args.name}
    items, more = _pages(args, "/api/tasks", q, "tasks")
    return _emit(args, {"tasks": items, "next_cursor": more}, items, TASK_COLS, more)


def tasks_get(args: argparse.Namespace) -> int:
    return _print_task(args, request(args, "GET", f"/api/tasks/{args.id}"))


def _action(verb: str, method: str = "POST") -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        path = f"/api/tasks/{args.id}" + (f"/{verb}" if verb else "")
        out = request(args, method, path)
        if verb == "trigger":
            return _emit(args, out, [out], RUN_COLS)
        return _print_task(args, out)

    return run


def tasks_runs(args: argparse.Namespace) -> int:
    items, more = _pages(args, f"/api/tasks/{args.id}/runs", {"state": args.state}, "runs")
    return _emit(args, {"runs": items, "next_cursor": more}, items, RUN_COLS, more)


def _follow(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(task, a run that is new or changed since the last look) until the task is final."""
    seen: dict[str, str] = {}
    while True:
        task = request(args, "GET", f"/api/tasks/{args.id}")
        runs = request(args, "GET", f"/api/tasks/{args.id}/runs?limit=20")["runs"]
        for r in reversed(runs):
            if seen.get(r["id"]) != r["state"]:
                seen[r["id"]] = r["state"]
                yield task, r
        if task["state"] in FINAL:
            yield task, None
            return
        time.sleep(args.interval)  # a CLI follower; the API's long-poll serves programs


def tasks_watch(args: argparse.Namespace) -> int:
    """Follow a task's runs as they happen; ends when the task is final (Ctrl-C for cron)."""
    try:
        for task, run in _follow(args):
            if run is None:
                if not args.json:
                    print(f"task {task['id']} is {task['state']}")
                return 0 if task["state"] == "succeeded" else 1
            if args.json:
                print(json.dumps(run), flush=True)
            else:
                when = run["finished_at"] or run["started_at"] or run["scheduled_for"]
                extra = f"  {run['error'].splitlines()[0]}" if run.get("error") else ""
                print(f"{when}  run {run['id'][:8]} attempt {run['attempt']} {run['state']}{extra}", flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


# ---- runs, workers, cluster ----

def runs_list(args: argparse.Namespace) -> int:
    q = {"state": args.state, "type": args.type, "task_id": args.task, "worker_id": args.worker}
    items, more = _pages(args, "/api/runs", q, "runs")
    return _emit(args, {"runs": items, "next_cursor": more}, items, RUN_COLS, more)


def runs_get(args: argparse.Namespace) -> int:
    run = request(args, "GET", f"/api/runs/{args.id}")
    if args.json:
        print(json.dumps(run, indent=2))
        return 0
    lines = [f"{'id':<12}  {run['id']}", f"{'task':<12}  {run['task_id']}",
             f"{'scheduled':<12}  {run['scheduled_for']} ({run['reason']})"]
    if run.get("waiting"):
        w = run["waiting"]
        lines.append(f"{'waiting':<12}  {w['reason']}: {w['detail']}")
    lines += [f"{'':<12}  {x}" if i else f"{'outcome':<12}  {x}" for i, x in enumerate(_describe_run(run))]
    print("\n".join(lines))
    return 0


def _list_or_act(args: argparse.Namespace, kind: str, target: str | None, what: str, cols: list[str]) -> int:
    """`skiplock KIND` lists; `skiplock KIND ACTION TARGET` posts /api/KIND/TARGET/ACTION."""
    if args.action == "list":
        data = request(args, "GET", f"/api/{kind}")
        return _emit(args, data, data[kind], cols)
    if not target:
        raise ConfigError(f"skiplock {kind} {args.action} needs {what} (skiplock {kind} lists them)")
    one = request(args, "POST", f"/api/{kind}/{target}/{args.action}")
    return _emit(args, one, [one], cols)


def workers(args: argparse.Namespace) -> int:
    return _list_or_act(args, "workers", args.id, "a worker id", WORKER_COLS)


def queues(args: argparse.Namespace) -> int:
    return _list_or_act(args, "queues", args.name, "a queue name", QUEUE_COLS)


RATE_LIMIT_COLS = ["name", "per_second", "burst", "tokens", "paused_until"]


def rate_limits(args: argparse.Namespace) -> int:
    """`skiplock rate-limits` lists; `set NAME --per-second N [--burst B]`; `delete NAME`."""
    if args.action == "list":
        data = request(args, "GET", "/api/rate-limits")
        return _emit(args, data, data["rate_limits"], RATE_LIMIT_COLS)
    if not args.name:
        raise ConfigError(f"skiplock rate-limits {args.action} needs a rate limit's name")
    if args.action == "delete":
        request(args, "DELETE", f"/api/rate-limits/{args.name}")
        print(f"deleted {args.name}")
        return 0
    if args.per_second is None:
        raise ConfigError("skiplock rate-limits set needs --per-second")
    body = {"per_second": args.per_second, **({"burst": args.burst} if args.burst is not None else {})}
    one = request(args, "PUT", f"/api/rate-limits/{args.name}", body)
    return _emit(args, one, [one], RATE_LIMIT_COLS)


def cluster_status(args: argparse.Namespace) -> int:
    """One coordinator's view over gRPC Admin: workers, runs by state, backlog."""
    import grpc

    from skiplock.proto import skiplock_pb2 as pb
    from skiplock.proto import skiplock_pb2_grpc as pb_grpc

    token = os.environ.get("SKIPLOCK_ADMIN_TOKEN") or os.environ.get("SKIPLOCK_WORKER_TOKEN")
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(args.coordinator) as channel:
        try:
            st = pb_grpc.AdminStub(channel).ClusterStatus(pb.ClusterStatusRequest(), metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            raise ApiFailure({"status": 0, "title": exc.code().name,
                              "detail": f"coordinator {args.coordinator}: {exc.details()}"}) from None
    data = {"coordinator_id": st.coordinator_id, "workers": st.workers, "local_workers": st.local_workers,
            "runs_by_state": dict(st.runs_by_state), "due_backlog": st.due_backlog,
            "stale_results": st.stale_results}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    states = ", ".join(f"{k} {v}" for k, v in sorted(data["runs_by_state"].items())) or "none"
    print(f"coordinator   {st.coordinator_id} ({args.coordinator})\n"
          f"workers       {st.workers} connected ({st.local_workers} on this coordinator)\n"
          f"runs          {states}\n"
          f"due backlog   {st.due_backlog}\n"
          f"stale results {st.stale_results}")
    return 0


def add_client_commands(sub: Any) -> None:
    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--api-url", default=_api_url(),
                       help="the API (env SKIPLOCK_API_URL; token from SKIPLOCK_API_TOKEN)")
        p.add_argument("--json", action="store_true", help="print JSON for scripts (errors too)")
        return p

    def paged(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", type=int, help="per page (1-500, default 50)")
        p.add_argument("--cursor", help="the next_cursor of the previous page")
        p.add_argument("--all", action="store_true", help="every page")

    tasks = sub.add_parser("tasks", help="create, list, read, change and follow tasks")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    c = client(tsub.add_parser("create", help="create a task"))
    _add_task_flags(c, create=True)
    c.set_defaults(func=tasks_create)
    u = client(tsub.add_parser("update", help="change a task (PATCH): takes effect from its next run"))
    u.add_argument("id")
    _add_task_flags(u, create=False)
    u.set_defaults(func=tasks_update)
    lst = client(tsub.add_parser("list", help="list tasks, newest first"))
    lst.add_argument("--state", help="scheduled | running | paused | succeeded | failed | cancelled")
    lst.add_argument("--type")
    lst.add_argument("--queue")
    lst.add_argument("--name", help="a name prefix")
    paged(lst)
    lst.set_defaults(func=tasks_list)
    for name, fn, help_ in (("get", tasks_get, "one task: schedule, next runs, last result, why it waits"),
                            ("cancel", _action("", "DELETE"), "cancel a task (a running run is stopped)"),
                            ("pause", _action("pause"), "stop new runs"),
                            ("resume", _action("resume"), "restart new runs"),
                            ("trigger", _action("trigger"), "one extra run now")):
        p = client(tsub.add_parser(name, help=help_))
        p.add_argument("id")
        p.set_defaults(func=fn)
    r = client(tsub.add_parser("runs", help="a task's runs, newest first"))
    r.add_argument("id")
    r.add_argument("--state")
    paged(r)
    r.set_defaults(func=tasks_runs)
    w = client(tsub.add_parser("watch", help="follow a task's runs as they happen"))
    w.add_argument("id")
    w.add_argument("--interval", type=float, default=1.0, help="seconds between looks (default 1)")
    w.set_defaults(func=tasks_watch)

    runs = sub.add_parser("runs", help="list and read runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    rl = client(rsub.add_parser("list", help="runs, newest first"))
    rl.add_argument("--state")
    rl.add_argument("--type")
    rl.add_argument("--task", help="a task id")
    rl.add_argument("--worker", help="a worker id")
    paged(rl)
    rl.set_defaults(func=runs_list)
    rg = client(rsub.add_parser("get", help="one run, with its result or full error"))
    rg.add_argument("id")
    rg.set_defaults(func=runs_get)

    wk = client(sub.add_parser("workers", help="connected workers; drain or undrain one"))
    wk.add_argument("action", nargs="?", default="list", choices=("list", "drain", "undrain"))
    wk.add_argument("id", nargs="?", help="the worker id, for drain and undrain")
    wk.set_defaults(func=workers)

    qu = client(sub.add_parser("queues", help="queues with their backlog; pause or resume one"))
    qu.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume"))
    qu.add_argument("name", nargs="?", help="the queue, for pause and resume")
    qu.set_defaults(func=queues)

    rl = client(sub.add_parser("rate-limits", help="rate limits (token buckets); set or delete one"))
    rl.add_argument("action", nargs="?", default="list", choices=("list", "set", "delete"))
    rl.add_argument("name", nargs="?", help="the rate limit, for set and delete")
    rl.add_argument("--per-second", dest="per_second", type=float, help="tokens a second (set)")
    rl.add_argument("--burst", type=int, help="the bucket's size: at most this many start at once (set; default 1)")
    rl.set_defaults(func=rate_limits)

    cl = sub.add_parser("cluster", help="the cluster as a coordinator sees it")
    csub = cl.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    cs = csub.add_parser("status", help="workers, runs by state, due backlog (gRPC Admin)")
    cs.add_argument("--coordinator", default=os.environ.get("SKIPLOCK_GRPC_ADDR", DEFAULT_GRPC_ADDR),
                    help="HOST:PORT of a coordinator (env SKIPLOCK_GRPC_ADDR; token from SKIPLOCK_ADMIN_TOKEN)")
    cs.add_argument("--json", action="store_true", help="print JSON for scripts")
    cs.set_defaults(func=cluster_status)


def report(args: argparse.Namespace, exc: SkiplockError) -> None:
    """How a failed client command ends: one message, as JSON under --json."""
    if getattr(args, "json", False):
        problem = exc.problem if isinstance(exc, ApiFailure) else {"title": "Invalid command", "detail": str(exc)}
        print(json.dumps({"error": problem}, indent=2))
    else:
        print(f"skiplock: {exc}", file=sys.stderr)
