"""The Grafana dashboard cannot drift from the code: every metric its PromQL names,
and every label it filters or groups by, is registered by some runtime."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/ledgerstream.json"
PROVISIONING = ROOT / "deploy/grafana/provisioning/dashboards/ledgerstream.yml"
METRICS_DOC = ROOT / "docs/metrics.md"

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
_METRIC = re.compile(r"\bledgerstream_[a-z0-9_]+\b")
_SELECTOR = re.compile(r"\b(ledgerstream_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)\s*\(\s*(?:[a-z_]+\()*"
                       r"(?:[^()]*?\()?\s*(ledgerstream_[a-z0-9_]+)")


def _registries() -> list[CollectorRegistry]:
    """Every registry the runtimes put metrics on, after importing their modules."""
    import producers.metrics  # noqa: F401  (module-level collectors, default registry)
    from sinks.core.metrics import SinkRuntimeMetrics
    from sinks.transport.http import SinkMetrics
    from stream_processors.metrics import ProcessorMetrics

    sink_runtime, transport = CollectorRegistry(), CollectorRegistry()
    SinkRuntimeMetrics.create(sink_runtime)
    SinkMetrics(transport)
    return [REGISTRY, sink_runtime, transport, ProcessorMetrics().registry]


def registered() -> dict[str, set[str]]:
    """``{sample name: label names}`` of every ledgerstream metric in the code."""
    names: dict[str, set[str]] = {}
    for registry in _registries():
        for collector in set(registry._collector_to_names):
            labels = set(getattr(collector, "_labelnames", ()))
            for family in collector.collect():
                if not family.name.startswith("ledgerstream_"):
                    continue
                for suffix in _SUFFIXES[family.type]:
                    extra = {"le"} if suffix == "_bucket" else set()
                    names[family.name + suffix] = labels | extra
    return names


def _walk(node: Any) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key in ("expr", "definition") or (
                    key == "query" and "ledgerstream_" in value)):
                found.append(value)
            else:
                found.extend(_walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk(item))
    return found


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def names() -> dict[str, set[str]]:
    return registered()


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 8
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]


def test_dashboard_covers_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(_walk(dashboard))
    for needed in ("ledgerstream_sink_consumer_lag_records",
                   "histogram_quantile(0.5, sum by (platform, le) "
                   "(rate(ledgerstream_sink_api_latency_seconds_bucket",
                   "histogram_quantile(0.99, sum by (platform, le) "
                   "(rate(ledgerstream_sink_api_latency_seconds_bucket",
                   "ledgerstream_sink_api_429_total", "ledgerstream_sink_api_retries_total",
                   "ledgerstream_processor_dead_letters_total",
                   "ledgerstream_sink_paused_tenants",
                   "ledgerstream_processor_discrepancies_total",
                   "ledgerstream_processor_events_in_total",
                   "ledgerstream_relay_events_total"):
        assert needed in exprs, needed


def test_every_metric_in_the_dashboard_is_registered(
        dashboard: dict[str, Any], names: dict[str, set[str]]) -> None:
    exprs = _walk(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        used = _METRIC.findall(expr)
        assert used, f"no ledgerstream metric in {expr!r}"
        unknown = [m for m in used if m not in names]
        assert not unknown, f"{expr!r} uses unregistered {unknown}"


def test_every_label_in_the_dashboard_exists(
        dashboard: dict[str, Any], names: dict[str, set[str]]) -> None:
    for expr in _walk(dashboard):
        for metric, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER.findall(matchers):
                assert label in names[metric], f"{metric} has no label {label!r}: {expr}"
        for grouping, metric in _GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in grouping.split(","))):
                assert label in names[metric] | {"le"}, \
                    f"{metric} has no label {label!r}: {expr}"
        for metric, label in re.findall(r"label_values\((ledgerstream_\w+),\s*(\w+)\)", expr):
            assert label in names[metric], expr


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load(PROVISIONING.read_text())["providers"][0]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_metrics_doc_lists_every_registered_metric(names: dict[str, set[str]]) -> None:
    doc = METRICS_DOC.read_text()
    families = {n.removesuffix("_count") for n in names
                if not n.endswith(("_created", "_bucket", "_sum"))}
    missing = sorted(n for n in families if f"`{n}`" not in doc)
    assert not missing, f"docs/metrics.md does not list {missing}"


def test_prometheus_scrapes_every_compose_metrics_port() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if "--metrics-port" in command:
            port = command[command.index("--metrics-port") + 1]
            assert f"{name}:{port}" in targets, name
