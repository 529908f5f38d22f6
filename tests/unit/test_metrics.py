"""gateway/metrics.py's label folding, its generated reference, and the example dashboard and
alert rules naming only series the gateway defines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway import metrics
from gateway.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "config" / "monitoring"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself writes for every target."""
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def defined_samples() -> set[str]:
    """Every sample name the gateway's series export."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase | metrics.SupervisorSeries):
            continue
        for family in value.describe():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    return names


def series_in(expr: str) -> set[str]:
    """The series a PromQL expression names: what is left once strings, label matchers,
    ranges, groupings and function calls are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text))
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def unknown_series(expr: str) -> set[str]:
    return series_in(expr) - defined_samples() - PROMETHEUS_OWN


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [
        target["expr"]
        for panel in dashboard_panels(board["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", text)
            assert found, f"variable {variable['name']}: {text}"
            exprs.append(found.group(1))
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize(
    ("method", "label"),
    [
        ("GET", "GET"),
        ("HEAD", "HEAD"),
        ("POST", "POST"),
        ("PUT", "PUT"),
        ("PATCH", "PATCH"),
        ("DELETE", "DELETE"),
        ("OPTIONS", "OPTIONS"),
        ("get", "other"),
        ("PROPFIND", "other"),
        ("TRACE", "other"),
        ("X" * 1000, "other"),
    ],
)
def test_methods_fold_to_a_known_few(method: str, label: str) -> None:
    assert metrics.fold_method(method) == label


@pytest.mark.parametrize(
    ("status", "label"),
    [(101, "1xx"), (200, "2xx"), (304, "3xx"), (404, "4xx"), (503, "5xx"), (600, "5xx")],
)
def test_statuses_fold_to_their_class(status: int, label: str) -> None:
    assert metrics.status_class(status) == label


def test_a_sign_in_failure_outside_the_set_counts_as_other() -> None:
    labels = {"event": "failed", "reason": "other"}
    before = REGISTRY.get_sample_value("hf_gateway_sign_ins_total", labels) or 0.0
    metrics.sign_in_failed("made_up_by_a_provider")
    assert REGISTRY.get_sample_value("hf_gateway_sign_ins_total", labels) == before + 1
    assert "made_up_by_a_provider" not in metrics.SIGN_INS_FAILED


def test_the_series_reference_in_docs_is_current() -> None:
    """docs/metrics.md's reference is what scripts/metrics_reference.py makes now."""
    result = subprocess.run(  # noqa: S603 - this repository's own script
        [sys.executable, "scripts/metrics_reference.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_names_every_series() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for sample in defined_samples():
        family = re.sub(r"_(bucket|sum|count)$", "", sample)
        assert f"`{sample}`" in doc or f"`{family}`" in doc, sample


def test_the_expression_check_finds_what_an_expression_names() -> None:
    """The checker's positive twin: a made-up series is reported, known ones are not."""
    expr = (
        'sum by (route, le) (rate(hf_gateway_upstream_duration_seconds_bucket{route=~"a|b"}[5m]))'
        " / on (route) group_left hf_gateway_made_up_total offset 5m and up == 0"
    )
    assert series_in(expr) == {
        "hf_gateway_upstream_duration_seconds_bucket",
        "hf_gateway_made_up_total",
        "up",
    }
    assert unknown_series(expr) == {"hf_gateway_made_up_total"}
    assert unknown_series('rate(hf_gateway_requests{status="5xx"}[5m])') == {"hf_gateway_requests"}


def test_every_dashboard_expression_names_only_gateway_series() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        assert series_in(expr), expr
        assert not unknown_series(expr), expr


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    panels = list(dashboard_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "job", "route"} <= variables
    for panel in panels:
        assert panel["type"] in {"row", "timeseries", "stat"}
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    covered = " ".join(dashboard_exprs())
    for wanted in (
        "hf_gateway_requests_total",
        "hf_gateway_decisions_total",
        "hf_gateway_sign_ins_total",
        "hf_gateway_upstream_duration_seconds_bucket",
        "hf_gateway_store_duration_seconds_bucket",
        "hf_gateway_store_errors_total",
        "hf_gateway_warm_cache_lookups_total",
        "hf_gateway_open_websockets",
        "hf_gateway_whoami_lookups_total",
        "hf_gateway_provider_rate_limited_total",
    ):
        assert wanted in covered, wanted
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (route, le)" in covered


def test_the_alert_rules_are_a_valid_rules_file() -> None:
    loaded = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert set(loaded) == {"groups"}
    names: list[str] = []
    for group in loaded["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert ("alert" in rule) != ("record" in rule)
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")")
            if "for" in rule:
                assert DURATION.match(rule["for"]), rule["for"]
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values())
            assert rule["labels"]["severity"] in {"page", "warning"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            names.append(rule["alert"])
    assert len(names) == len(set(names))


def test_every_alert_expression_names_only_gateway_series() -> None:
    rules = alert_rules()
    for rule in rules:
        assert series_in(rule["expr"]), rule["alert"]
        assert not unknown_series(rule["expr"]), rule["alert"]
    covered = " ".join(rule["expr"] for rule in rules)
    for wanted in (
        'hf_gateway_requests_total{status="5xx"}',
        "hf_gateway_store_errors_total",
        "hf_gateway_provider_rate_limited_total",
        "hf_gateway_sign_ins_total",
        "hf_gateway_store_unreplicated_writes_total",
        "hf_gateway_upstream_duration_seconds_bucket",
    ):
        assert wanted in covered, wanted
