from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from skiplock.proto import codegen
from skiplock.sql import parse_queries, queries

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "coordinator", "worker", "common", "proto", "sql", "cli")


def test_parse_queries_splits_named_blocks() -> None:
    text = "-- name: a\n-- a comment\nSELECT 1;\n\n-- name: b\nSELECT 2\n"
    assert parse_queries(text) == {"a": "SELECT 1", "b": "SELECT 2"}


def test_parse_queries_rejects_duplicates_and_empty_blocks() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n-- nothing\n")


def test_every_query_the_code_names_exists_and_every_query_is_used() -> None:
    named = set(queries())
    used: set[str] = set()
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r'query\("([a-z_]+)"\)', path.read_text()))
    assert used - named == set(), "code names queries that queries.sql lacks"
    assert named - used == set(), "queries.sql has statements nothing uses"


def test_every_package_folder_is_mapped_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = set(cfg["package-dir"].values())
    assert mapped == set(PACKAGES)
    assert set(cfg["packages"]) == set(cfg["package-dir"])


def _imports(folder: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
    return found


def test_imports_flow_one_way() -> None:
    common = _imports("common")
    assert not {m for m in common if m.startswith(("skiplock.api", "skiplock.coordinator", "skiplock.worker"))}
    worker = _imports("worker")
    assert not {m for m in worker if m.startswith(("skiplock.api", "skiplock.coordinator", "skiplock.common.db",
                                                   "skiplock.sql", "asyncpg"))}, "a worker never touches the database"
    api = _imports("api")
    assert not {m for m in api if m.startswith(("skiplock.coordinator", "skiplock.worker"))}
    coord = _imports("coordinator")
    assert not {m for m in coord if m.startswith(("skiplock.api", "skiplock.worker"))}


def test_generated_protobuf_code_is_fresh() -> None:
    def normalise(text: str) -> str:
        # Version stamps differ between grpcio-tools releases; the content must not.
        lines = [ln for ln in text.splitlines()
                 if not re.search(r"Protobuf Python Version|GRPC_GENERATED_VERSION = |^\s+\d+,$", ln)]
        return "\n".join(lines)

    for name, text in codegen.generated_texts().items():
        committed = (ROOT / "proto" / name).read_text()
        assert normalise(committed) == normalise(text), f"proto/{name} is stale: run make proto"
