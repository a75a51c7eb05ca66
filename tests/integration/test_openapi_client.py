"""The OpenAPI document is good enough for a generated client: openapi-python-client builds
one from /api/openapi.json, and it creates, reads, lists and cancels against a real API."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from skiplock.api.app import create_app
from skiplock.common.config import ApiSettings

GENERATOR = shutil.which("openapi-python-client") or str(Path(sys.executable).parent / "openapi-python-client")


@pytest.fixture
async def base(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[str]:
    server = TestServer(create_app(ApiSettings(database_url=db_url), pool=pool), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def _generate(spec: dict[str, Any], where: Path) -> Any:
    (where / "spec.json").write_text(json.dumps(spec))
    out = subprocess.run([GENERATOR, "generate", "--path", str(where / "spec.json"), "--output-path",
                          str(where / "skiplock_generated"), "--meta", "none"],
                         capture_output=True, text=True, timeout=120)
    assert (where / "skiplock_generated" / "client.py").exists(), out.stdout + out.stderr
    assert "Unable to parse" not in out.stdout and "Could not" not in out.stdout, out.stdout
    sys.path.insert(0, str(where))
    return importlib.import_module("skiplock_generated")


async def test_a_generated_client_works_on_the_first_try(base: str, tmp_path: Path) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{base}/api/openapi.json")).json()
    pkg = await asyncio.to_thread(_generate, spec, tmp_path)
    try:
        tasks = importlib.import_module("skiplock_generated.api.tasks")
        models = importlib.import_module("skiplock_generated.models")
        for name in ("create_task", "get_task", "list_tasks", "cancel_task"):
            importlib.import_module(f"skiplock_generated.api.tasks.{name}")
        async with pkg.Client(base_url=base) as client:  # closes its httpx client
            body = models.TaskCreate.from_dict({"type": "http", "name": "generated",
                                                "payload": {"url": "https://example.com/hook"}, "delay_s": 3600})
            created = await tasks.create_task.asyncio(client=client, body=body)
            assert isinstance(created, models.Task), created
            assert created.name == "generated" and created.state == "scheduled"
            got = await tasks.get_task.asyncio(id=created.id, client=client)
            assert got.id == created.id and got.waiting.reason == "not_due"
            page = await tasks.list_tasks.asyncio(client=client, limit=10)
            assert [t.id for t in page.tasks] == [created.id] and page.next_cursor is None
            cancelled = await tasks.cancel_task.asyncio(id=created.id, client=client)
            assert cancelled.state == "cancelled"
            bad = await tasks.create_task.asyncio(client=client, body=models.TaskCreate.from_dict(
                {"type": "http", "payload": {"url": "not a url"}}))
            assert isinstance(bad, models.Problem) and bad.status == 400
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m.startswith("skiplock_generated")]:
            del sys.modules[mod]
