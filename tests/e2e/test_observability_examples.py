"""examples/observability: the Grafana dashboard and the Prometheus alert rules name only metrics a real server
exports (a renamed metric would leave a panel empty and an alert silent)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples" / "observability"
METRIC = re.compile(r"\b((?:taskservice|process)_[a-z0-9_]+)\b")
# Series Prometheus makes itself, not the server.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def _exported(tmp_path: Path) -> set[str]:
    """Every series name a server with metrics on exports (labelled families with no series yet included)."""
    port_file = tmp_path / "metrics-port"
    extra = ["--metrics-listen", "127.0.0.1:0", "--metrics-port-file", str(port_file)]
    with ServerProcess(tmp_path / "t.db", extra_args=extra) as server:
        server.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().strip()}/metrics", timeout=10) as got:
            text = got.read().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _alert_expressions() -> list[str]:
    rules = yaml.safe_load((EXAMPLES / "alerts.yml").read_text())
    found = [rule for group in rules["groups"] for rule in group["rules"]]
    assert all(rule.get("alert") and rule.get("expr") for rule in found), "each rule is an alert with an expr"
    return [str(rule["expr"]) for rule in found]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("source", ["alerts.yml", "grafana-dashboard.json"])
def test_every_metric_the_examples_name_is_exported(tmp_path: Path, source: str) -> None:
    expressions = _alert_expressions() if source == "alerts.yml" else _dashboard_expressions()
    named = {name for expression in expressions for name in METRIC.findall(expression)}
    assert len(named) >= 10, f"{source} names the metrics it watches: {sorted(named)}"
    exported = _exported(tmp_path)
    assert sorted(named - exported - PROMETHEUS_OWN) == [], f"{source} names metrics no server exports"
