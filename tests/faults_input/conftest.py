"""Reports how many hostile inputs the property tests sent (the "bad inputs tried" of the fault report)."""

from __future__ import annotations

from typing import Any

from tests.faults_input.oracle import TALLY


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not TALLY:
        return
    total = sum(TALLY.values())
    by_method: dict[str, int] = {}
    for (method, _code), count in TALLY.items():
        by_method[method] = by_method.get(method, 0) + count
    terminalreporter.write_sep("-", "faults_input")
    terminalreporter.write_line(f"bad inputs tried: {total}")
    terminalreporter.write_line("  by method: " + ", ".join(f"{m} {n}" for m, n in sorted(by_method.items())))
    codes: dict[str, int] = {}
    for (_method, code), count in TALLY.items():
        codes[code] = codes.get(code, 0) + count
    terminalreporter.write_line("  by answer: " + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())))
