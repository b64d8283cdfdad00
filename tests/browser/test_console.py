"""The dashboard as an operations console, in headless Chromium against a real server process with tasks in every
state: the overview's counts are ListTasks' totals and link into the filtered list, the list's filters live in the
URL (a reload and a copied link keep them), dark mode follows the system, and at 390 px no control is off-screen.
Each page is saved as a screenshot, light and dark, wide and narrow, in $DASHBOARD_SCREENSHOTS (else the test's
temp folder)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
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
READY = {"overview": '[data-count-state="RUNNING"] a', "tasks": "#tasks tbody tr", "task": "dl dd",
         "submit": "form.submit", "schedules": "#schedule-form"}  # fmt: skip
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


def _open(browser: Any, url: str) -> Any:
    """A wide page at `url`."""
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return page


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
    page = _open(browser, server.http_url + "/")
    page.locator('[data-count-state="SUCCESS"] a').wait_for()
    with TaskClient(server.address) as client:
        for state in ("PENDING", "RUNNING", "SUCCESS", "FAILURE", "REVOKED"):
            listed = len(client.list(states=[state], page_size=1000).tasks)
            shown = page.locator(f'[data-count-state="{state}"] a').inner_text()
            assert int(shown) == listed, state
    assert page.locator('[data-hour="failed"]').inner_text() == "2"
    assert page.locator('tr[data-type="square"]').count() == 1
    assert page.locator(".chart polyline").count() == 3
    page.locator("#nodes tbody tr").first.wait_for()
    assert page.locator("#nodes tbody tr").count() == 1 and " / 4" in page.locator("#nodes tbody tr").inner_text()
    with TaskClient(server.address) as client:
        client.create_limit("holds", task_type="hold", max_running=5)
        try:
            page.locator('tr[data-limit="holds"]').wait_for()  # the next refresh shows it
            assert page.locator('tr[data-limit="holds"] td').all_inner_texts() == ["holds", "1", "0"]
        finally:
            client.delete_limit("holds")
    page.locator('[data-count-state="FAILURE"] a').click()
    page.wait_for_url("**/#/tasks?states=FAILURE")
    page.locator('[data-state="FAILURE"]').first.wait_for()
    assert page.locator("tbody tr").count() == 2


def test_the_lists_filters_survive_a_reload_and_a_copied_link(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, ids = console
    page = _open(browser, server.http_url + "/#/tasks")
    page.click("details.states summary")
    page.check('input[name="state"][value="FAILURE"]')
    page.fill('input[name="label"]', "team=data")
    page.click("form.filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('states=FAILURE')")
    link = page.url
    page.reload()
    page.locator(f'a:text-is("{ids["failed"]}")').wait_for()
    assert page.locator('input[name="state"][value="FAILURE"]').is_checked()
    assert page.locator("details.states summary").inner_text() == "FAILURE"
    assert page.locator('input[name="label"]').input_value() == "team=data"
    other = _open(browser, link)
    other.locator(f'a:text-is("{ids["failed"]}")').wait_for()
    assert other.locator("tbody tr").count() == 2 and other.locator('[data-state="SUCCESS"]').count() == 0
    # Several states at once, and a second label: every one of them in the URL.
    other.click("details.states summary")
    other.check('input[name="state"][value="REVOKED"]')
    other.fill('input[name="label"]', "team=data, missing=yes")
    other.click("form.filters button[type=submit]")
    other.wait_for_function("() => location.hash.includes('states=REVOKED') && location.hash.includes('missing')")
    other.locator("#tasks tbody tr").first.wait_for(state="detached")
    other.fill('input[name="label"]', "")
    other.click("form.filters button[type=submit]")
    other.locator('#tasks [data-state="REVOKED"]').wait_for()
    assert sorted(set(other.locator("#tasks tbody [data-state]").all_inner_texts())) == ["FAILURE", "REVOKED"]


def _shown_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator("#tasks tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.row)")
    return ids


def test_sorting_by_duration_orders_by_duration_and_search_finds_by_id(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, ids = console
    page = _open(browser, server.http_url + "/#/tasks")
    page.locator("#tasks tbody tr").first.wait_for()
    page.select_option('select[name="order"]', "duration desc")
    page.wait_for_function("() => location.hash.includes('orderBy=duration+desc')")
    page.locator('th[aria-sort="descending"]', has_text="Duration").wait_for()
    page.locator("#tasks tbody tr").first.wait_for()
    shown = _shown_ids(page)
    with TaskClient(server.address) as client:
        tasks = [client.get(task_id) for task_id in shown]
    now = datetime.now(UTC)
    durations = [((t.ended_at or now) - t.started_at).total_seconds() for t in tasks if t.started_at is not None]
    assert len(durations) >= 6 and durations == sorted(durations, reverse=True), list(
        zip(shown, durations, strict=False)
    )
    assert all(t.started_at is None for t in tasks[len(durations) :]) and ids["later"] in shown[len(durations) :]
    assert shown[0] == ids["running"]  # running since the module began: the longest
    # A search for the start of an id finds that task; the order and the search survive a reload.
    page.fill('input[name="search"]', ids["failed"][:12])
    page.click("form.filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('search=')")
    page.wait_for_function("(id) => [...document.querySelectorAll('#tasks tbody tr')].map((r) => r.dataset.row)"
                           ".join() === id", arg=ids["failed"])  # fmt: skip
    page.reload()
    page.locator(f'tr[data-row="{ids["failed"]}"]').wait_for()
    assert page.locator('select[name="order"]').input_value() == "duration desc"
    assert page.locator('input[name="search"]').input_value() == ids["failed"][:12]
    assert _shown_ids(page) == [ids["failed"]]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_each_page_fits_a_phone_and_follows_the_colour_scheme(
    browser: Any, console: tuple[ServerProcess, dict[str, str]], shots: Path, scheme: str
) -> None:
    server, ids = console
    backgrounds = set()
    pages = {"overview": "/", "tasks": "/#/tasks", "task": f"/#/task/{ids['running']}", "submit": "/#/submit",
             "schedules": "/#/schedules"}  # fmt: skip
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
    page = _open(browser, f"{server.http_url}/#/task/{ids['running']}")
    page.locator('[data-state="RUNNING"]').wait_for()
    assert page.locator("#stop").is_visible() and page.locator("#retry").is_hidden()
    history = page.locator("#history li").all_inner_texts()
    assert history[0].endswith("submitted") and history[1].endswith("started, attempt 1"), history
    assert page.locator("#timing").inner_text().endswith(" s") or "min" in page.locator("#timing").inner_text()
    assert "team=ops" in page.locator("dl").inner_text(), "its labels"
    assert page.locator("#delete").is_hidden(), "an unfinished task cannot be deleted"

    page.goto(f"{server.http_url}/#/task/{ids['failed']}")
    page.locator('[data-state="FAILURE"]').wait_for()
    assert page.locator("#stop").is_hidden()
    page.click("#retry")
    with TaskClient(server.address) as client:
        wait_until(lambda: client.get(ids["failed"]).attempt == 2 and client.get(ids["failed"]).state.is_terminal,
                   what="the retried task runs again and ends")  # fmt: skip
        # Its stored history, read when the page opens, holds both runs.
        page.reload()
        page.locator("#history li", has_text="started, attempt 2").wait_for()
        lived = page.locator("#history li .what").all_inner_texts()
        assert [t for t in lived if not t[0].isdigit()] == [
            "submitted", "started, attempt 1", "ended FAILURE", "PENDING again", "started, attempt 2", "ended FAILURE",
        ], lived  # fmt: skip
        waits = client.submit("square", {"n": 2}, after=[ids["done"]]).task.task_id
        client.wait(waits, timeout=30)
        page.goto(f"{server.http_url}/#/task/{ids['done']}")
        page.locator('[data-state="SUCCESS"]').first.wait_for()
        assert page.locator("#retry").is_hidden(), "a success is done"
        page.locator(f'#dependents a:text-is("{waits}")').wait_for()  # the tasks that wait on it, with their states
        assert page.locator("#dependents li").inner_text().endswith("SUCCESS")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#delete")
        page.wait_for_url("**/#/tasks")
        assert ids["done"] not in {t.task_id for t in client.list(page_size=1000).tasks}


def test_the_overview_says_when_a_server_holds_a_handler_it_abandoned(browser: Any, tmp_path: Path) -> None:
    extra = ["--tasks", "tests.support.stubborn_task_types", "--stop-grace", "0.2", "--renew", "0.3"]
    began, returned = tmp_path / "began", tmp_path / "returned"
    with ServerProcess(tmp_path / "t.db", workers=2, extra_args=extra) as server:
        server.start()
        with TaskClient(server.address) as client:
            page = _open(browser, server.http_url + "/")
            cell = page.locator("#nodes tbody tr td[data-abandoned]")
            cell.wait_for()
            assert cell.inner_text() == "0" and "error" not in (cell.get_attribute("class") or "")
            deaf = client.submit("deaf", {"began": str(began), "until": str(returned)}).task.task_id
            wait_until(began.exists, what="the stubborn handler runs")
            client.stop(deaf)  # ignored: past the grace the task ends and its thread is left running
            page.locator('#nodes td[data-abandoned="1"].error').wait_for()
            assert "stop-grace" in (page.locator("#nodes td[data-abandoned]").get_attribute("title") or "")
            assert client.get(deaf).state is TaskState.REVOKED
            returned.touch()  # the handler returns: its thread ends, and the next announcement says so
            page.locator('#nodes td[data-abandoned="0"]').wait_for()


def test_the_overview_shows_a_hosts_engine_processes_under_it_with_their_totals(browser: Any, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", workers=2, extra_args=["--procs", "2"]) as server:
        server.start(timeout=30)
        page = _open(browser, server.http_url + "/")
        processes = page.locator("#nodes tr[data-node]")
        wait_until(lambda: processes.count() == 2, what="both engine processes on the overview")
        host = page.locator("#nodes tr.host")
        assert host.count() == 1 and "2 engine processes" in host.locator("th").inner_text()
        assert host.locator("td").first.inner_text().strip() == "0 / 4", "the processes' workers together"
        hosts = {name.split(":")[0] for name in processes.evaluate_all("(rows) => rows.map((r) => r.dataset.node)")}
        assert hosts == {host.get_attribute("data-host")}
        assert "demo" in host.locator("td").nth(2).inner_text()


def test_under_a_path_prefix_behind_a_proxy_every_page_and_stream_works(browser: Any, tmp_path: Path) -> None:
    from tests.support.http_proxy import PathProxy

    extra = ["--tasks", "tests.support.child_task_types", "--http-path-prefix", "/tasks/"]
    with ServerProcess(tmp_path / "t.db", workers=4, extra_args=extra) as server:
        server.start(health_check=True)
        with TaskClient(server.address) as client, PathProxy(server.http_url) as proxy:
            moving = client.submit("demo", {"steps": 100, "step_seconds": 0.1}).task.task_id
            page = browser.new_page(viewport=WIDE)
            page.set_default_timeout(WAIT_MS)
            page.goto(proxy.url + "/tasks")  # the bare prefix leads to the dashboard
            page.wait_for_url("**/tasks/")
            page.locator('[data-count-state="RUNNING"] a').wait_for()
            page.click('nav a[href="#/tasks"]')
            bar = page.locator(f'progress[data-task-id="{moving}"]')
            bar.wait_for()
            first = float(bar.get_attribute("value") or 0)
            page.wait_for_function(  # the page's event stream comes through the proxy
                '([id, first]) => Number(document.querySelector(`progress[data-task-id="${id}"]`).value) > first',
                arg=[moving, first],
            )
            page.locator(f'a:text-is("{moving}")').click()
            page.locator("#stop").click()
            page.locator('[data-state="REVOKED"]').wait_for()
            assert client.get(moving).state is TaskState.REVOKED
            paths = set(proxy.requests)
            assert any(p.startswith("/tasks/v1/events?") for p in paths) and "/tasks/v1/stats" in paths
            outside = {p for p in paths if p != "/tasks" and not p.startswith("/tasks/")} - {"/favicon.ico"}
            assert outside == set(), "every call of the page stays under the prefix (the browser asks for its icon)"


def test_the_submit_form_shows_defaults_takes_options_and_puts_a_refusal_by_its_field(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, _ = console
    page = _open(browser, server.http_url + "/#/submit")
    page.select_option("#task-type", "demo")
    steps = page.locator('input[name="arg:steps"]')
    assert steps.get_attribute("type") == "number" and "default 10" in (steps.get_attribute("placeholder") or "")
    hint = page.locator('[data-field="arg:steps"] .muted').inner_text()
    assert hint.startswith("How many steps.") and "integer" in hint, "the docstring's words on the arg, then its kind"
    steps.fill("2000000")  # past the demo's Range: the server says so, by the field
    page.click("button[type=submit]")
    error = page.locator('[data-field="arg:steps"] .field-error')
    error.wait_for()
    assert error.inner_text() and steps.get_attribute("aria-invalid") == "true"
    steps.fill("2")
    page.fill('input[name="task_id"]', "from-the-form")
    page.fill('input[name="priority"]', "7")
    page.fill('input[name="labels"]', "team=web")
    page.fill('input[name="delay"]', "3600")
    page.click("button[type=submit]")
    page.wait_for_url("**/#/task/from-the-form")
    with TaskClient(server.address) as client:
        task = client.get("from-the-form")
        assert (task.priority, task.labels, task.args["steps"]) == (7, {"team": "web"}, 2)
        assert task.scheduled_at is not None, "the delay was sent"
        client.stop("from-the-form")


def test_the_schedules_page_shows_the_next_firings_then_creates_pauses_and_deletes(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, _ = console
    page = _open(browser, server.http_url + "/#/schedules")
    page.fill('input[name="schedule.schedule_id"]', "every-five")
    page.select_option('select[name="schedule.task.task_type"]', "square")
    page.fill('textarea[name="schedule.task.args"]', '{"n": 3}')
    page.fill('input[name="schedule.cron.expression"]', "not a cron")
    page.click("#check-schedule")
    error = page.locator('[data-field="schedule.cron.expression"] .field-error')
    error.wait_for()
    assert error.inner_text(), "the refusal stands by the cron field"
    page.fill('input[name="schedule.cron.expression"]', "*/5 * * * *")
    page.click("#check-schedule")
    page.locator("#upcoming li").nth(4).wait_for()
    with TaskClient(server.address) as client:
        assert [s.schedule_id for s in client.iter_schedules()] == [], "checking stores nothing"
        page.click('#schedule-form button[type="submit"]')
        row = page.locator('tr[data-schedule="every-five"]')
        row.wait_for()
        assert "cron */5 * * * *" in row.inner_text()
        page.click('button[data-toggle="every-five"]')
        page.locator('button[data-toggle="every-five"]', has_text="Resume").wait_for()
        assert client.get_schedule("every-five").paused
        page.locator('a:text-is("every-five")').click()
        page.locator("h2", has_text="every-five").wait_for()
        page.goto(server.http_url + "/#/schedules")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click('button[data-delete="every-five"]')
        page.locator('tr[data-schedule="every-five"]').wait_for(state="detached")
        assert [s.schedule_id for s in client.iter_schedules()] == []


def test_the_list_shows_a_failures_error_durations_zones_and_how_many_match(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, ids = console
    page = _open(browser, server.http_url + "/#/tasks?states=FAILURE")
    row = page.locator(f'tr[data-row="{ids["failed"]}"]')
    row.wait_for()
    assert "ValueError: no square of" in row.inner_text()
    page.locator("#total", has_text="2 tasks match").wait_for()
    assert page.locator("#total[role=status]").count() == 1 and page.locator("[aria-live]").count() == 0
    zone = page.evaluate("new Intl.DateTimeFormat([], {timeZoneName: 'short'}).formatToParts(new Date())"
                         ".find((p) => p.type === 'timeZoneName').value")  # fmt: skip
    assert zone in row.inner_text() and row.locator("td[title$=' ago']").count() >= 2
    page.goto(server.http_url + "/#/tasks?states=RUNNING")
    running = page.locator(f'tr[data-row="{ids["running"]}"] [data-running-since]')
    first = running.inner_text()
    page.wait_for_function("([id, first]) => document.querySelector(`tr[data-row='${id}'] [data-running-since]`)"
                           ".textContent !== first", arg=[ids["running"], first])  # fmt: skip
    page.select_option('select[name="size"]', "25")
    page.wait_for_function("() => location.hash.includes('pageSize=25')")


def test_bulk_retry_and_delete_say_how_many_then_act_on_every_match(
    browser: Any, console: tuple[ServerProcess, dict[str, str]]
) -> None:
    server, _ = console
    page = _open(browser, server.http_url + "/#/tasks?states=FAILURE&labels[team]=data")
    page.locator('[data-state="FAILURE"]').first.wait_for()
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    with TaskClient(server.address) as client:
        attempts = {t.task_id: t.attempt for t in client.list(states=["FAILURE"], labels={"team": "data"}).tasks}
        failed = list(attempts)
        page.click("#retry-matching")
        page.locator(".filters .muted", has_text=f"{len(failed)} retried").wait_for()
        wait_until(lambda: all(client.get(i).attempt == attempts[i] + 1 and client.get(i).state.is_terminal
                               for i in failed), what="every match runs again")  # fmt: skip
        page.click("#delete-matching")
        page.locator(".filters .muted", has_text=f"{len(failed)} deleted").wait_for()
        assert asked == [f"Retry {len(failed)} tasks?", f"Delete {len(failed)} tasks?"]
        assert client.list(states=["FAILURE"], labels={"team": "data"}).tasks == []


def test_every_control_is_reached_by_the_keyboard(browser: Any, console: tuple[ServerProcess, dict[str, str]]) -> None:
    server, ids = console
    page = _open(browser, server.http_url + "/#/tasks?states=RUNNING")
    page.locator(f'button[data-stop="{ids["running"]}"]').wait_for()
    controls = "header a, main button, main input, main select, main a, main summary"
    # Shown ones only: the states' checkboxes are in a closed <details> until its summary opens it.
    wanted = page.evaluate(f"""() => [...document.querySelectorAll('{controls}')]
      .filter((e) => e.checkVisibility() && !e.disabled).map((e) => e.outerHTML)""")  # fmt: skip
    reached = set()
    for _ in range(2 * len(wanted) + 10):  # a date-time input takes a Tab per part (day, month, year, hours...)
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.outerHTML"))
    assert [html[:80] for html in wanted if html not in reached] == []
