"""The database layer: yoyo migrations in ``migrations/``, named queries in ``queries.sql``, the
connection pool (``db``), run inserts (``new_runs``) and the embedded server (``embedded``).
The API and the coordinator use it; the worker never does (see the import contracts)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.M)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` blocks into {name: statement}.

    Comment lines inside a block are dropped; a duplicate or empty block is an error, so a
    typo can't silently shadow a statement, and so is a block whose first line is not a
    comment saying what it does.
    """
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if not body.strip().startswith("--"):
            raise ValueError(f"query {name!r} needs a description: a comment line right after its name")
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = sql
    return queries


@cache
def queries() -> dict[str, str]:
    return parse_queries(resources.files(__package__).joinpath("queries.sql").read_text())


def query(name: str) -> str:
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in queries.sql") from None


def migrations_dir() -> Path:
    return Path(str(resources.files(__package__).joinpath("migrations")))
