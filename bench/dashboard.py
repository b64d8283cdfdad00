"""The dashboard under load, in headless Chromium (Debian's chromium through Playwright): 10,000 finished tasks
stored and 100 tasks reporting progress at 20 Hz, beside an empty server. How long until the page shows its table,
and how many progress changes the page applies each second while all 100 bars move."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fill import fill
from taskservice.core.model.models import TaskState
from taskservice.v1 import task_service_pb2 as pb

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
STORED = 10_000
MOVING = 100
WATCH_SECONDS = 5.0
# Counts the progress bars' changes in the page.
COUNTER = """() => { window.__changes = 0; new MutationObserver((records) => { window.__changes += records.length; })
  .observe(document.querySelector('tbody'), {subtree: true, attributes: true, attributeFilter: ['value']}); }"""


def dashboard_scenario(tmp: Path, serve: Callable[..., Any], submit_many: Callable[..., list[str]]) -> dict[str, Any]:
    if not shutil.which(CHROMIUM):
        return {"skipped": f"{CHROMIUM} is missing (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    empty_db, full_db = tmp / "dash-empty.db", tmp / "dash-full.db"
    fill(full_db, STORED, TaskState.SUCCESS)
    result: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for name, db in (("empty", empty_db), ("loaded", full_db)):
            with serve(db, workers=MOVING) as server:
                server.start(timeout=60)
                if name == "loaded":
                    moving = pb.SubmitRequest(task_type="demo")
                    moving.args.update({"steps": 2000, "step_seconds": 0.05})
                    submit_many(server.address, [moving] * MOVING)
                page = browser.new_page()
                started = time.perf_counter()
                page.goto(server.http_url + "/")
                page.wait_for_selector("tbody tr" if name == "loaded" else "tbody", state="attached", timeout=30_000)
                result[f"{name}_first_table_ms"] = (time.perf_counter() - started) * 1000
                if name == "loaded":
                    page.wait_for_function(f"document.querySelectorAll('tbody progress').length >= {MOVING}")
                    page.evaluate(COUNTER)
                    page.wait_for_timeout(WATCH_SECONDS * 1000)
                    result["changes_per_s"] = page.evaluate("window.__changes") / WATCH_SECONDS
                    result["bars"] = page.evaluate("document.querySelectorAll('tbody progress').length")
                page.close()
        browser.close()
    return result
