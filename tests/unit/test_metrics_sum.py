"""The metrics of several engine processes (`--procs`) as one server's: summed, but for what describes the whole
board or a moment."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from taskservice.server.metrics_sum import summed_metrics


def _process(busy: int, oldest: float, waiting: int, started: float, cpu: float) -> str:
    return f"""# HELP taskservice_busy_workers Busy.
# TYPE taskservice_busy_workers gauge
taskservice_busy_workers {busy}
# HELP taskservice_oldest_runnable_task_age_seconds Oldest.
# TYPE taskservice_oldest_runnable_task_age_seconds gauge
taskservice_oldest_runnable_task_age_seconds {oldest}
# HELP taskservice_limit_waiting_tasks Held back.
# TYPE taskservice_limit_waiting_tasks gauge
taskservice_limit_waiting_tasks{{limit_id="gpu"}} {waiting}
# HELP process_start_time_seconds Start.
# TYPE process_start_time_seconds gauge
process_start_time_seconds {started}
# HELP process_cpu_seconds CPU.
# TYPE process_cpu_seconds counter
process_cpu_seconds_total {cpu}
"""


def _values(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_per_process_numbers_add_up_and_board_wide_ones_are_taken_once() -> None:
    summed = _values(summed_metrics([_process(2, 30.0, 7, 1000.0, 1.5), _process(3, 31.0, 6, 990.0, 2.0)]))
    assert summed["taskservice_busy_workers"] == 5, "each process's own work adds up"
    assert summed["process_cpu_seconds_total"] == 3.5
    # Every process reads the same board: the freshest (largest) view, not the sum.
    assert summed["taskservice_oldest_runnable_task_age_seconds"] == 31.0
    assert summed["taskservice_limit_waiting_tasks"] == 7
    assert summed["process_start_time_seconds"] == 990.0, "the server started when its first process did"
