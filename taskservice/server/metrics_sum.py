"""The metrics of several engine processes as one server's (`--procs`): each sample summed across the processes,
but for those that describe the whole board or the build, which every process reports alike (the largest is
kept), and creation times (the earliest)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

# Samples every process reports for the same thing: summing them would count it once per process.
SHARED = {
    "taskservice_queue_depth",
    "taskservice_build_info",
    "taskservice_oldest_runnable_task_age_seconds",
    "taskservice_limit_waiting_tasks",
    "process_max_fds",
}
# Samples of a moment, of which the earliest counts (as for creation times).
EARLIEST = {"process_start_time_seconds"}


def summed_metrics(texts: Iterable[str]) -> str:
    """Prometheus text exposition of the processes' `texts`, summed."""
    families: dict[str, tuple[str, str]] = {}  # name -> (type, help), in the order first seen
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, (family.type, family.documentation))
            values = samples.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = sample.value
                elif sample.name.endswith("_created") or sample.name in EARLIEST:
                    values[key] = min(values[key], sample.value)
                elif sample.name in SHARED:
                    values[key] = max(values[key], sample.value)
                else:
                    values[key] += sample.value
    lines: list[str] = []
    for name, (kind, documentation) in families.items():
        lines.append(f"# HELP {name} {_escape(documentation)}")
        lines.append(f"# TYPE {name} {kind if kind != 'unknown' else 'untyped'}")
        for (sample_name, labels), value in samples[name].items():
            rendered = ",".join(f'{key}="{_escape(label, quotes=True)}"' for key, label in labels)
            lines.append(f"{sample_name}{{{rendered}}} {value!r}" if labels else f"{sample_name} {value!r}")
    return "\n".join(lines) + "\n"


def _escape(text: str, *, quotes: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text
