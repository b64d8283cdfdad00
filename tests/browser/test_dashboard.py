"""The dashboard in headless Chromium (Debian's chromium, driven by Playwright; no browser download), against a
real server process: a progress bar moves, a Stop button revokes a task, a task type's form submits, and with
tokens on the page asks for one. Screenshots go to the test's temp folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskservice.client import TaskClient, submit_request
from tests.browser.chromium import WAIT_MS
from tests.support.server import ServerProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def test_progress_moves_a_stop_revokes_and_the_form_submits(browser: Any, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", workers=4) as server:
        server.start()
        with TaskClient(server.address) as client:
            moving = client.submit("demo", {"steps": 60, "step_seconds": 0.1}, labels={"ui": "yes"}).task.task_id
            waiting = client.submit("sleep", {"seconds": 120}, labels={"ui": "yes"}).task.task_id
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(server.http_url + "/#/tasks")
            bar = page.locator(f'progress[data-task-id="{moving}"]')
            bar.wait_for()
            first = float(bar.get_attribute("value") or 0)
            page.wait_for_function(
                '([id, first]) => Number(document.querySelector(`progress[data-task-id="${id}"]`).value) > first',
                arg=[moving, first],
            )
            page.screenshot(path=str(tmp_path / "tasks.png"))
            page.locator(f'button[data-stop="{waiting}"]').click()
            page.locator(f'[data-state="REVOKED"][data-task-id="{waiting}"]').wait_for()
            assert client.get(waiting).state.value == "REVOKED"

            batch = [client.submit("sleep", {"seconds": 120}, labels={"batch": "x"}).task.task_id for _ in range(3)]
            asked: list[str] = []
            page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
            page.fill('input[name="label"]', "batch=x")
            page.click("form.filters button[type=submit]")
            page.click("#stop-matching")
            page.locator(".filters .muted", has_text="revoked").wait_for()
            assert asked == ["Stop 3 tasks?"], "it says how many before it stops them"
            assert {client.get(task_id).state.value for task_id in batch} == {"REVOKED"}

            page.goto(server.http_url + "/#/submit")
            page.select_option("#task-type", "sleep")
            page.fill('input[name="arg:seconds"]', "0.2")
            page.fill('input[name="labels"]', "from=form")
            page.click("button[type=submit]")
            page.wait_for_url("**/#/task/*")
            page.locator('[data-state="SUCCESS"]').wait_for()
            submitted = next(t for t in client.iter_tasks(labels={"from": "form"}))
            assert submitted.task_type == "sleep" and submitted.args == {"seconds": 0.2}
            page.screenshot(path=str(tmp_path / "task.png"))
    assert (tmp_path / "tasks.png").stat().st_size > 0 and (tmp_path / "task.png").stat().st_size > 0


@contextlib.contextmanager
def _server_with_tokens(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A server that asks for the token "dash-token", and the id of a task it ran."""
    tokens = tmp_path / "tokens"
    tokens.write_text("dash-token\n")
    with ServerProcess(tmp_path / "t.db", extra_args=["--auth-token-file", str(tokens)]) as server:
        server.start()
        with TaskClient(server.address, token="dash-token") as client:
            yield server, client.submit("sleep", {"seconds": 0}).task.task_id


def test_with_tokens_the_page_asks_for_one_and_keeps_it_for_the_tab(browser: Any, tmp_path: Path) -> None:
    with _server_with_tokens(tmp_path) as (server, task_id):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(server.http_url + "/#/tasks")
        page.locator("#token-input").fill("dash-token")
        page.locator("#token-form button").click()
        page.locator(f'[data-task-id="{task_id}"][data-state]').wait_for()
        assert page.evaluate("sessionStorage.getItem('taskservice.token')") == "dash-token"
        assert context.cookies() == [], "never a cookie"
        context.close()


def test_calls_refused_at_once_ask_for_the_token_once_and_a_late_refusal_keeps_the_new_one(
    browser: Any, tmp_path: Path
) -> None:
    """The list asks for its task types and its first page together: both are refused without a token. The page's
    call is held until the token was given, so its refusal comes after: it must neither forget the new token nor
    leave a call waiting for a second prompt."""
    with _server_with_tokens(tmp_path) as (server, task_id):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        held: list[Any] = []

        def hold_the_first_tokenless_page(route: Any) -> None:
            if "authorization" in route.request.headers or held:
                route.continue_()
            else:
                held.append(route)

        page.route("**/v1/tasks?*", hold_the_first_tokenless_page)
        page.goto(server.http_url + "/#/tasks")
        page.locator("#token-input").fill("dash-token")

        def held_yet() -> bool:
            page.evaluate("() => 0")  # a call into the page lets Playwright hand this thread the routes it holds
            return bool(held)

        wait_until(held_yet, what="the page's first call, without a token, to be held")
        page.locator("#token-form button").click()
        page.wait_for_function("() => sessionStorage.getItem('taskservice.token') === 'dash-token'")
        held[0].continue_()  # its 401 comes now, after the token was given
        page.locator(f'[data-task-id="{task_id}"][data-state]').wait_for()
        assert page.evaluate("sessionStorage.getItem('taskservice.token')") == "dash-token"
        assert not page.locator("#token-dialog").evaluate("(dialog) => dialog.open"), "asked once"
        context.close()


def test_a_task_whose_id_ends_like_a_verb_opens_and_stops_from_the_dashboard(browser: Any, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", workers=2) as server:
        server.start()
        with TaskClient(server.address) as client:
            client.submit("sleep", {"seconds": 0}, task_id="report")
            tricky = client.submit("sleep", {"seconds": 120}, task_id="report:wait").task.task_id
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(server.http_url + "/#/tasks")
            page.locator("a", has_text="report:wait").click()
            page.locator("h2", has_text="report:wait").wait_for()
            page.locator('[data-state="RUNNING"]').wait_for()  # the page of report:wait, not of report
            page.click("#stop")
            page.locator('[data-state="REVOKED"]').wait_for()
            assert client.get(tricky).state.value == "REVOKED"
            assert client.get("report").state.value == "SUCCESS"


def test_a_tasks_page_links_its_children_and_a_child_its_parent(browser: Any, tmp_path: Path) -> None:
    extra = ["--tasks", "tests.support.child_task_types"]
    with ServerProcess(tmp_path / "t.db", workers=4, extra_args=extra) as server:
        server.start()
        with TaskClient(server.address) as client:
            parent = client.submit("hold_children", {"prefix": ""}).task.task_id
            wait_until(lambda: len(client.list(parent_id=parent).tasks) == 2, what="the parent submits its children")
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{server.http_url}/#/task/{parent}")
            page.locator("#children li", has_text=f"{parent}.kept").wait_for()
            assert "(detached)" in page.locator("#children li", has_text=f"{parent}.free").inner_text()
            assert "(detached)" not in page.locator("#children li", has_text=f"{parent}.kept").inner_text()
            page.locator("#children a", has_text=f"{parent}.kept").click()
            page.wait_for_url(f"**/#/task/{parent}.kept")
            page.locator("dd a", has_text=parent).first.wait_for()  # its Parent row links back
            assert page.locator("#children").is_hidden(), "a task without children shows no list"
            client.stop(parent)
            client.stop(f"{parent}.free")


def test_a_page_of_many_rows_draws_a_screenful_first_then_all_and_a_refresh_keeps_the_scroll(
    browser: Any, tmp_path: Path
) -> None:
    with ServerProcess(tmp_path / "t.db", workers=2) as server:
        server.start()
        with TaskClient(server.address) as client:
            requests = [submit_request("sleep", {"seconds": 0}) for _ in range(80)]
            for done in client.submit_batch(requests):
                assert not isinstance(done, Exception), done
            first_page = [task.task_id for task in client.list(page_size=100).tasks]
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        page.set_default_timeout(WAIT_MS)
        page.goto(server.http_url + "/#/tasks")
        page.locator("#tasks[data-complete]").wait_for(state="attached")
        shown = page.locator("#tasks tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.row)")
        assert shown == first_page, "every row of the page, in ListTasks' order, once"
        # A refresh (every few seconds) replaces the rows at once: the table never shrinks under a reader who
        # scrolled to the bottom (each change and each frame is noted until one refresh was drawn).
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        scrolled = page.evaluate("window.scrollY")
        assert scrolled > 1000, scrolled
        page.evaluate("""() => {
            const rows = document.querySelector('#tasks tbody');
            window.__seen = { rows: [], scrolls: [] };
            new MutationObserver(() => window.__seen.rows.push(rows.children.length))
              .observe(rows, { childList: true });
            const frame = () => { window.__seen.scrolls.push(window.scrollY); requestAnimationFrame(frame); };
            requestAnimationFrame(frame); }""")
        page.wait_for_function("() => window.__seen.rows.length > 0")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r)))")  # that refresh drawn
        seen = page.evaluate("window.__seen")
        assert set(seen["rows"]) == {80}, seen["rows"]
        assert set(seen["scrolls"]) == {scrolled}, seen["scrolls"]
