"""The dashboard in a real browser (Debian's Chromium, driven by Playwright; no browser
download) against a real cluster: every page loads, filters and forms work through the API,
a running shell task is cancelled from the UI and its state changes without a reload, and a
read-only token hides and refuses writes.

Screenshots of every page go to $SKIPLOCK_UI_SCREENSHOTS when it is set (else a temp dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, running_cluster

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium on PATH: install Debian's `chromium` package (.ci/run does) to run the browser tests",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package (dev extra) is missing")

TIMEOUT_MS = 15_000
WRITE, READ = "w-token-for-tests", "r-token-for-tests"


@pytest.fixture(scope="module")
async def cluster(module_db_url: str) -> AsyncIterator[Cluster]:
    async with running_cluster(module_db_url) as c:
        await c.api()
        await c.coordinator()
        await c.worker("--import", "e2e_handlers", "--allow-shell", "--slots", "4", name="ui-worker")
        yield c


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        await b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("SKIPLOCK_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id="Europe/Berlin")
    pg = await ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    await ctx.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def make(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    status, task = await cluster.request("POST", "/api/tasks", body)
    assert status == 201, task
    return task


async def test_every_page_loads_and_shows_the_cluster(cluster: Cluster, page: Any, shots: Path) -> None:
    ok = await make(cluster, {"type": "echo", "name": "echo-once", "payload": {"hello": "ui"}})
    bad = await make(cluster, {"type": "fail.hard", "name": "always-fails"})
    await make(cluster, {"type": "noop", "name": "nightly-report", "cron": "30 2 * * *", "timezone": "America/New_York"})
    for t in (ok, bad):
        await cluster.wait_task(t["id"])
    resp = await page.goto(cluster.api_url + "/")
    assert resp is not None and resp.url.endswith("/ui/"), "/ redirects to the UI"
    await page.get_by_text("Runs finished per minute").wait_for()
    await page.locator("[data-count=workers]").filter(has_text="1").wait_for()
    await page.screenshot(path=shots / "overview.png", full_page=True)
    for path, marker, name in (("/ui/tasks", "[data-task]", "tasks"), ("/ui/runs", "[data-run]", "runs"),
                               ("/ui/workers", "[data-worker]", "workers"), ("/ui/queues", "[data-queue]", "queues")):
        await page.goto(cluster.api_url + path)
        await page.locator(marker).first.wait_for()
        await page.screenshot(path=shots / f"{name}.png", full_page=True)
    # A cron task's page: the schedule in words, and its next fire times in its own zone.
    await page.goto(cluster.api_url + "/ui/tasks?name=nightly")
    await page.get_by_role("link", name="nightly-report").click()
    await page.get_by_text("At 02:30").wait_for()
    assert await page.locator("ol.next li").count() == 5
    await page.screenshot(path=shots / "task-cron.png", full_page=True)
    # A narrow window still works (the navigation folds into a bar).
    await page.set_viewport_size({"width": 420, "height": 860})
    await page.goto(cluster.api_url + "/ui/tasks")
    await page.locator("[data-task]").first.wait_for()
    await page.screenshot(path=shots / "tasks-narrow.png", full_page=True)


async def test_filters_live_in_the_url_and_a_failed_runs_error_is_shown(cluster: Cluster, page: Any,
                                                                           shots: Path) -> None:
    bad = await make(cluster, {"type": "fail.hard", "name": "broken-export"})
    await make(cluster, {"type": "noop", "name": "fine-export"})
    await cluster.wait_task(bad["id"])
    await page.goto(cluster.api_url + "/ui/tasks")
    await page.locator("button[data-state=failed]").click()
    await page.wait_for_url("**/ui/tasks?state=failed")
    await page.locator(f"[data-task='{bad['id']}']").wait_for()
    assert await page.get_by_role("link", name="fine-export").count() == 0, "the filter applies"
    await page.fill("input[name=name]", "broken")
    await page.press("input[name=name]", "Enter")
    await page.wait_for_url("**/ui/tasks?state=failed&name=broken")
    # The URL is the view: opened afresh, it shows the same.
    await page.goto(cluster.api_url + "/ui/tasks?state=failed&name=broken")
    await page.get_by_role("link", name="broken-export").click()
    await page.locator("[data-run][data-state=failed] a").first.click()
    await page.get_by_text("this input can never work").wait_for()
    await page.screenshot(path=shots / "run-failed.png", full_page=True)


async def test_the_new_task_form_shows_the_apis_errors_next_to_the_field(cluster: Cluster, page: Any,
                                                                           shots: Path) -> None:
    await page.goto(cluster.api_url + "/ui/tasks")
    await page.get_by_role("button", name="New task").click()
    form = page.locator(".dialog")
    await form.locator("input[name=name]").fill("from-the-form")
    await form.locator("textarea[name=payload]").fill('{"url": "not a url"}')
    await page.get_by_role("button", name="Create task").click()
    error = page.locator("[data-field=payload] .error")
    await error.wait_for()
    assert "url" in (await error.inner_text()).lower()
    await page.screenshot(path=shots / "new-task-error.png", full_page=True)
    await form.locator("textarea[name=payload]").fill('{"url": "http://127.0.0.1:9/never", "method": "GET"}')
    await form.locator("input[name=when][value=cron]").check()
    await form.locator("input[name=cron]").fill("0 9 * * 1-5")
    await page.get_by_role("button", name="Create task").click()
    await page.wait_for_url("**/ui/tasks/*")
    await page.locator("h1").get_by_text("from-the-form").wait_for()
    await page.screenshot(path=shots / "new-task-created.png", full_page=True)
    task_id = page.url.rsplit("/", 1)[1]
    status, task = await cluster.request("GET", f"/api/tasks/{task_id}")
    assert status == 200 and task["cron"] == "0 9 * * 1-5" and task["timezone"] == "Europe/Berlin"


async def test_cancel_pause_and_resume_from_the_ui_update_without_a_reload(cluster: Cluster, page: Any,
                                                                            shots: Path) -> None:
    task = await make(cluster, {"type": "shell", "name": "long-shell", "payload": {"command": ["sleep", "60"]}})
    await cluster.wait_task(task["id"], states=("running",))
    await page.goto(cluster.api_url + f"/ui/tasks/{task['id']}")
    await page.locator("h1 .badge.running").wait_for()
    await page.get_by_role("button", name="Cancel").click()
    await page.locator("[data-confirm]").click()
    await page.locator("h1 .badge.cancelled").wait_for()  # no reload: the page polls and redraws
    await page.locator("[data-run][data-state=cancelled]").wait_for()
    await page.screenshot(path=shots / "task-cancelled.png", full_page=True)
    # Pause and resume a scheduled task, from the task list's bulk bar this time.
    later = await make(cluster, {"type": "noop", "name": "later-job", "run_at": "2099-01-01T00:00:00Z"})
    await page.goto(cluster.api_url + "/ui/tasks?name=later-job")
    await page.get_by_label("select later-job").check()
    await page.locator(".selectbar").get_by_role("button", name="Pause").click()
    await page.get_by_text("Pause 1 task?").wait_for()
    await page.locator("[data-confirm]").click()
    await page.locator(f"[data-task='{later['id']}'] .badge.paused").wait_for()
    status, body = await cluster.request("GET", f"/api/tasks/{later['id']}")
    assert body["state"] == "paused"
    await page.get_by_label("select later-job").check()
    await page.locator(".selectbar").get_by_role("button", name="Resume").click()
    await page.locator("[data-confirm]").click()
    await page.locator(f"[data-task='{later['id']}'] .badge.scheduled").wait_for()
    # A queue paused and resumed from the Queues page.
    await page.goto(cluster.api_url + "/ui/queues")
    row = page.locator("[data-queue=default]")
    await row.get_by_role("button", name="Pause").click()
    await row.locator(".badge.paused").wait_for()
    status, queues = await cluster.request("GET", "/api/queues")
    assert any(q["name"] == "default" and q["paused"] for q in queues["queues"])
    await row.get_by_role("button", name="Resume").click()
    await row.locator(".badge.quiet").wait_for()


async def test_a_read_only_token_hides_and_refuses_writes(cluster: Cluster, browser: Any, shots: Path) -> None:
    guarded = await cluster.api(env={"SKIPLOCK_API_TOKEN": WRITE, "SKIPLOCK_API_READ_TOKEN": READ})
    base = cluster.api_url  # the guarded API is the latest one started
    assert guarded.port is not None
    status, _ = await cluster.request("POST", "/api/tasks", {"type": "noop"}, headers={"Authorization": f"Bearer {READ}"})
    assert status == 403, "the read-only token may not write"
    status, _ = await cluster.request("GET", "/api/tasks", headers={"Authorization": f"Bearer {READ}"})
    assert status == 200
    ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(base + "/ui/tasks")
        await page.get_by_text("This API needs a token").wait_for()
        await page.screenshot(path=shots / "token-prompt.png")
        await page.fill("input[name=token]", READ)
        await page.get_by_role("button", name="Use token").click()
        await page.locator("[data-task]").first.wait_for()
        await page.get_by_text("read-only").wait_for()
        assert await page.get_by_role("button", name="New task").count() == 0
        assert await page.locator("input[type=checkbox]").count() == 0, "no selection, so no bulk actions"
        await page.locator("[data-task] a").first.click()
        await page.locator("h1 .badge").wait_for()
        assert await page.get_by_role("button", name="Cancel").count() == 0
        await page.screenshot(path=shots / "read-only-task.png", full_page=True)
        # The full token shows the buttons.
        await page.evaluate(f"localStorage.setItem('skiplock.token', {WRITE!r})")
        await page.goto(base + "/ui/tasks")
        await page.get_by_role("button", name="New task").wait_for()
    finally:
        await ctx.close()
