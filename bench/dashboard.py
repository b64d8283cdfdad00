"""The dashboard under load, in headless Chromium (Debian's chromium through Playwright): 100,000 finished tasks
stored (ended over the last day) and 100 tasks reporting progress at 20 Hz, beside an empty server. How long until
the overview shows its counts and the list its first page (a screenful, and all its rows); how many progress
changes the list applies each second while all 100 bars move; and what 10 open overviews (refreshing every 2 s)
cost the server's CPU, beside windows with none open (alternating, medians). The pages are timed with the browser
on a core of its own and the server on the others (an operator's browser is not on the server's machine; see
bench/cpus.py), and again with both sharing every core."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cpus import apart, descendants, place
from bench.fill import fill
from taskservice.core.model.models import TaskState
from taskservice.v1 import task_service_pb2 as pb
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

STORED = 100_000
# Over the last day: about 70 tasks a minute, 4,000 of them in the overview's hour.
STORED_OVER = 86_400.0
MOVING = 100
WATCH_SECONDS = 5.0
DASHBOARDS = 10
LOADS = 9
CPU_SECONDS = 5.0
CPU_ROUNDS = 3
# Notes when the page first painted with READY in it: the frame after the change, then the task after that frame.
PAINTED = """new MutationObserver((_, observer) => {
  if (!document.querySelector(READY)) return;
  observer.disconnect();
  requestAnimationFrame(() => setTimeout(() => {
    document.documentElement.dataset.painted = performance.now(); }));
}).observe(document, {subtree: true, childList: true, attributes: true});"""
# Counts the progress bars' changes in the list.
COUNTER = """() => { window.__changes = 0; new MutationObserver((records) => { window.__changes += records.length; })
  .observe(document.querySelector('#tasks tbody'), {subtree: true, attributes: true, attributeFilter: ['value']}); }"""


def _cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _shown_ms(browser: Any, url: str, ready: str) -> float:
    """The median of LOADS loads of `url` in a new page each (one is as noisy as a browser sharing two cores with a
    busy server makes it): from the navigation's start to the first paint with `ready` in the page, as the page's
    own clock tells (Playwright's polling for it lags by a few hundred ms when the page takes a stream of events)."""
    times = []
    for _ in range(LOADS):
        page = browser.new_page()
        page.add_init_script(PAINTED.replace("READY", json.dumps(ready)))
        page.goto(url)
        page.wait_for_selector(ready, state="attached", timeout=60_000)
        page.wait_for_selector("html[data-painted]", state="attached", timeout=60_000)
        times.append(float(page.evaluate("document.documentElement.dataset.painted")))
        page.close()
    return statistics.median(times)


def _overview_cpu(browser: Any, server: Any) -> dict[str, float]:
    """The server's CPU (percent of one core) over CPU_SECONDS with no dashboard open, then with DASHBOARDS
    overviews open, in CPU_ROUNDS alternating rounds; the medians (the server's own CPU drifts by a few percent of
    a core over a minute, and one pair of windows took that drift for the dashboards' cost)."""
    pid = server.proc.pid
    used: dict[str, list[float]] = {"none": [], "open": []}
    for _ in range(CPU_ROUNDS):
        for name, count in (("none", 0), ("open", DASHBOARDS)):
            pages = [browser.new_page() for _ in range(count)]
            for page in pages:
                page.goto(server.http_url + "/")
                page.wait_for_selector('[data-count-state="SUCCESS"] a', timeout=60_000)
            before, started = _cpu_seconds(pid), time.perf_counter()
            time.sleep(CPU_SECONDS)
            used[name].append(100 * (_cpu_seconds(pid) - before) / (time.perf_counter() - started))
            for page in pages:
                page.close()
    return {name: statistics.median(values) for name, values in used.items()}


def _placements(server_pid: int) -> dict[str, Callable[[], None]]:
    """The ways to run the browser beside the server (bench/cpus.py): apart when the machine has two cores, and
    both sharing every core. The browser is every process this bench started but the server's."""
    every = os.sched_getaffinity(0)
    server = {server_pid} | descendants(server_pid)

    def placed(browser_cpus: set[int], server_cpus: set[int]) -> Callable[[], None]:
        def move() -> None:
            place(descendants(os.getpid()) - server, browser_cpus)
            place(server, server_cpus)

        return move

    cores = apart()
    shared = {"shared": placed(every, every)}
    return {"apart": placed(*cores), **shared} if cores else shared


def dashboard_scenario(tmp: Path, serve: Callable[..., Any], submit_many: Callable[..., list[str]]) -> dict[str, Any]:
    """Figures by placement (`apart`, `shared`) and server (`empty`, `loaded`); the progress changes and the CPU
    of open overviews with the browser apart where the machine allows it."""
    if not shutil.which(CHROMIUM):
        return {"skipped": f"{CHROMIUM} is missing (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    empty_db, full_db = tmp / "dash-empty.db", tmp / "dash-full.db"
    fill(full_db, STORED, TaskState.SUCCESS, over_seconds=STORED_OVER)
    result: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for name, db in (("empty", empty_db), ("loaded", full_db)):
            with serve(db, workers=MOVING) as server:
                server.start(timeout=60)
                if name == "loaded":
                    moving = pb.SubmitRequest(task_type="demo")
                    moving.args.update({"steps": 4000, "step_seconds": 0.05})
                    submit_many(server.address, [moving] * MOVING)
                placements = _placements(server.proc.pid)
                for placement, move in placements.items():
                    move()
                    shown = result.setdefault(placement, {})
                    shown[f"{name}_overview_ms"] = _shown_ms(browser, server.http_url + "/",
                                                             '[data-count-state="SUCCESS"] a')  # fmt: skip
                    # The first page drawn, its rows or none: the same moment on both servers. Shown: the rows a
                    # screen holds are painted; whole: the rest too, a frame later.
                    for moment, ready in (("first", "#tasks[data-shown]"), ("whole", "#tasks[data-complete]")):
                        shown[f"{name}_{moment}_table_ms"] = _shown_ms(browser, server.http_url + "/#/tasks", ready)
                if name == "loaded":
                    placements.get("apart", placements["shared"])()
                    result.update(_moving_bars(browser, server.http_url))
                    used = _overview_cpu(browser, server)
                    result["cpu_none_percent"], result["cpu_open_percent"] = used["none"], used["open"]
        browser.close()
    return result


def _moving_bars(browser: Any, url: str) -> dict[str, float]:
    """How many progress changes the list applies each second with MOVING bars on it."""
    page = browser.new_page()
    page.goto(url + "/#/tasks")
    page.wait_for_selector(f"#tasks tbody tr:nth-child({MOVING}) progress", timeout=60_000)
    page.evaluate(COUNTER)
    page.wait_for_timeout(WATCH_SECONDS * 1000)
    changes = page.evaluate("window.__changes") / WATCH_SECONDS
    bars = page.evaluate("document.querySelectorAll('#tasks tbody progress').length")
    page.close()
    return {"changes_per_s": changes, "bars": bars}
