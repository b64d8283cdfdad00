"""The dashboard as an operations console, in headless Chromium against a real server process with tasks in every
state: the overview's counts are ListTasks' totals and link into the filtered list, the list's filters live in the
URL (a reload and a copied link keep them), dark mode follows the system, and at 390 px no control is off-screen.
Each page is saved as a screenshot, light and dark, wide and narrow, in $DASHBOARD_SCREENSHOTS (else the test's
temp folder)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskservice.client import TaskClient, TaskState
from tests.browser.chromium import WAIT_MS
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1280, "height": 900}
# What reaches past the viewport's right edge (to say what to fix).
TOO_WIDE = """() => [...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 || e.scrollWidth > e.clientWidth + 1)
  .filter((e) => getComputedStyle(e).overflowX === 'visible')
  .map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`).slice(0, 12)"""
# What shows that a page has loaded.
READY = {"overview": '[data-count-state="RUNNING"] a', "tasks": "tbody tr", "task": "dl dd", "submit": "form.submit"}
# Every control a person may need, visible, within the viewport's width.
OFF_SCREEN = """() => [...document.querySelectorAll('button, input, select, textarea, nav a')]
  .filter((e) => e.offsetParent !== null)
  .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth + 0.5; })
  .map((e) => e.outerHTML.slice(0, 80))"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with tasks in every state but STOPPING and LOST: the ids of a few by what they show."""
    folder = tmp_path_factory.mktemp("console")
    extra = ["--tasks", "tests.support.child_task_types"]
    with ServerProcess(folder / "t.db", workers=4, extra_args=extra) as server:
        server.start()
        with TaskClient(server.address) as client:
            done = [client.submit("square", {"n": n}, labels={"team": "data"}).task.task_id for n in range(3)]
            failed = [client.submit("square", {"n": -n - 1}, labels={"team": "data"}).task.task_id for n in range(2)]
            client.wait_all(done + failed, timeout=30)
            running = client.submit("hold", {}, labels={"team": "ops"}).task.task_id
            stopped = client.submit("hold", {}).task.task_id
            later = client.submit("square", {"n": 5}, delay=3600).task.task_id
            wait_until(lambda: client.get(stopped).state is TaskState.RUNNING, what="the task to stop runs")
            client.stop(stopped)
            client.wait(stopped, timeout=30)
            wait_until(lambda: client.get(running).state is TaskState.RUNNING, what="a task runs")
            yield server, {"failed": failed[0], "done": done[0], "running": running, "later": later}
            client.stop_tasks(everything=True)


def _shots() -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return _shots() if os.environ.get("DASHBOARD_SCREENSHOTS") else tmp_path


def test_the_overview_counts_what_list_tasks_lists_and_links_into_the_list(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, _ = console
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(WAIT_MS)
    page.goto(server.http_url + "/")
    page.locator('[data-count-state="SUCCESS"] a').wait_for()
    with TaskClient(server.address) as client:
        for state in ("PENDING", "RUNNING", "SUCCESS", "FAILURE", "REVOKED"):
            listed = len(client.list(states=[state], page_size=1000).tasks)
            shown = page.locator(f'[data-count-state="{state}"] a').inner_text()
            assert int(shown) == listed, state
    assert page.locator('[data-hour="failed"]').inner_text() == "2"
    assert page.locator('tr[data-type="square"]').count() == 1
    assert page.locator(".chart polyline").count() == 3
    page.locator('[data-count-state="FAILURE"] a').click()
    page.wait_for_url("**/#/tasks?states=FAILURE")
    page.locator('[data-state="FAILURE"]').first.wait_for()
    assert page.locator("tbody tr").count() == 2


def test_the_lists_filters_survive_a_reload_and_a_copied_link(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, ids = console
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(WAIT_MS)
    page.goto(server.http_url + "/#/tasks")
    page.select_option('select[name="state"]', "FAILURE")
    page.fill('input[name="label"]', "team=data")
    page.click("form.filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('states=FAILURE')")
    link = page.url
    page.reload()
    page.locator(f'a:text-is("{ids["failed"]}")').wait_for()
    assert page.locator('select[name="state"]').input_value() == "FAILURE"
    assert page.locator('input[name="label"]').input_value() == "team=data"
    other = browser.new_page(viewport=WIDE)
    other.set_default_timeout(WAIT_MS)
    other.goto(link)
    other.locator(f'a:text-is("{ids["failed"]}")').wait_for()
    assert other.locator("tbody tr").count() == 2 and other.locator('[data-state="SUCCESS"]').count() == 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_page_fits_a_phone_and_follows_the_colour_scheme(
    browser: Any, console: tuple[ServerProcess, dict[str, str]], shots: Path, scheme: str
) -> None:
    server, ids = console
    backgrounds = set()
    pages = {"overview": "/", "tasks": "/#/tasks", "task": f"/#/task/{ids['running']}", "submit": "/#/submit"}
    for width_name, viewport in (("wide", WIDE), ("narrow", PHONE)):
        context = browser.new_context(viewport=viewport, color_scheme=scheme)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        for name, path in pages.items():
            page.goto(server.http_url + path)
            page.locator(READY[name]).first.wait_for()
            if width_name == "narrow":
                assert page.evaluate(OFF_SCREEN) == [], f"{name}: controls off-screen at 390 px"
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name}: {width} px wide, by {page.evaluate(TOO_WIDE)}"
            backgrounds.add(page.evaluate("getComputedStyle(document.body).backgroundColor"))
            page.screenshot(path=str(shots / f"{name}-{scheme}-{width_name}.png"))
        context.close()
    (background,) = backgrounds
    dark = background == "rgb(18, 21, 27)"
    assert dark == (scheme == "dark"), background


def test_a_tasks_page_offers_the_actions_its_state_allows_and_they_work(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, ids = console
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.http_url}/#/task/{ids['running']}")
    page.locator('[data-state="RUNNING"]').wait_for()
    assert page.locator("#stop").is_visible() and page.locator("#retry").is_hidden()
    assert page.locator("#delete").is_hidden(), "an unfinished task cannot be deleted"

    page.goto(f"{server.http_url}/#/task/{ids['failed']}")
    page.locator('[data-state="FAILURE"]').wait_for()
    assert page.locator("#stop").is_hidden()
    page.click("#retry")
    with TaskClient(server.address) as client:
        wait_until(lambda: client.get(ids["failed"]).attempt == 2 and client.get(ids["failed"]).state.is_terminal,
                   what="the retried task runs again and ends")  # fmt: skip
        page.goto(f"{server.http_url}/#/task/{ids['done']}")
        page.locator('[data-state="SUCCESS"]').wait_for()
        assert page.locator("#retry").is_hidden(), "a success is done"
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#delete")
        page.wait_for_url("**/#/tasks")
        assert ids["done"] not in {t.task_id for t in client.list(page_size=1000).tasks}
