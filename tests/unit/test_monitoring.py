"""deploy/monitoring/: the log-based metrics, alert policies and dashboard deploy.sh creates, checked against the
fields of their API resources (so a typo is caught here, not by the API during a deploy) and against what the
functions really log (a metric whose filter matches no line would alert on nothing)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deploy import alerts
from shared.tasks.failed_tasks import FailedTasks
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"

# Cloud Logging API v2, LogMetric: https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics
LOG_METRIC = {
    "name", "description", "filter", "bucketName", "disabled", "metricDescriptor", "valueExtractor",
    "labelExtractors", "bucketOptions", "version",
}  # fmt: skip
# Cloud Monitoring API v3, MetricDescriptor and LabelDescriptor:
# https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.metricDescriptors
METRIC_DESCRIPTOR = {
    "name", "type", "labels", "metricKind", "valueType", "unit", "description", "displayName", "metadata",
    "launchStage", "monitoredResourceTypes",
}  # fmt: skip
LABEL_DESCRIPTOR = {"key", "valueType", "description"}
# Distribution BucketOptions: https://cloud.google.com/monitoring/api/ref_v3/rest/v3/TypedValue#BucketOptions
BUCKET_OPTIONS = {"linearBuckets", "exponentialBuckets", "explicitBuckets"}
EXPONENTIAL = {"numFiniteBuckets", "growthFactor", "scale"}
# Cloud Monitoring API v3, AlertPolicy: https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies
ALERT_POLICY = {
    "name", "displayName", "documentation", "userLabels", "conditions", "combiner", "enabled", "validity",
    "notificationChannels", "alertStrategy", "severity",
}  # fmt: skip
DOCUMENTATION = {"content", "mimeType", "subject", "links"}
CONDITION = {
    "name", "displayName", "conditionThreshold", "conditionAbsent", "conditionMatchedLog",
    "conditionMonitoringQueryLanguage", "conditionPrometheusQueryLanguage", "conditionSql",
}  # fmt: skip
METRIC_THRESHOLD = {
    "filter", "aggregations", "denominatorFilter", "denominatorAggregations", "forecastOptions", "comparison",
    "thresholdValue", "duration", "trigger", "evaluationMissingData",
}  # fmt: skip
TRIGGER = {"count", "percent"}
ALERT_STRATEGY = {"notificationRateLimit", "notificationPrompts", "autoClose", "notificationChannelStrategy"}
COMBINERS = {"AND", "OR", "AND_WITH_MATCHING_RESOURCE"}
COMPARISONS = {"COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE", "COMPARISON_EQ", "COMPARISON_NE"}
SEVERITIES = {"CRITICAL", "ERROR", "WARNING"}
# Aggregation: https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies#Aggregation
AGGREGATION = {"alignmentPeriod", "perSeriesAligner", "crossSeriesReducer", "groupByFields"}
ALIGNERS = {
    "ALIGN_NONE", "ALIGN_DELTA", "ALIGN_RATE", "ALIGN_INTERPOLATE", "ALIGN_NEXT_OLDER", "ALIGN_MIN", "ALIGN_MAX",
    "ALIGN_MEAN", "ALIGN_COUNT", "ALIGN_SUM", "ALIGN_STDDEV", "ALIGN_COUNT_TRUE", "ALIGN_COUNT_FALSE",
    "ALIGN_FRACTION_TRUE", "ALIGN_PERCENTILE_99", "ALIGN_PERCENTILE_95", "ALIGN_PERCENTILE_50",
    "ALIGN_PERCENTILE_05", "ALIGN_PERCENT_CHANGE",
}  # fmt: skip
REDUCERS = {
    "REDUCE_NONE", "REDUCE_MEAN", "REDUCE_MIN", "REDUCE_MAX", "REDUCE_SUM", "REDUCE_STDDEV", "REDUCE_COUNT",
    "REDUCE_COUNT_TRUE", "REDUCE_COUNT_FALSE", "REDUCE_FRACTION_TRUE", "REDUCE_PERCENTILE_99",
    "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_05",
}  # fmt: skip
# Cloud Monitoring Dashboards API v1: https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards
DASHBOARD = {
    "name", "displayName", "etag", "gridLayout", "mosaicLayout", "rowLayout", "columnLayout", "dashboardFilters",
    "labels",
}  # fmt: skip
MOSAIC_LAYOUT = {"columns", "tiles"}
TILE = {"xPos", "yPos", "width", "height", "widget"}
WIDGET = {
    "title", "xyChart", "scorecard", "text", "blank", "alertChart", "timeSeriesTable", "collapsibleGroup",
    "logsPanel", "incidentList", "pieChart", "errorReportingPanel", "sectionHeader", "singleViewGroup", "id",
}  # fmt: skip
XY_CHART = {"dataSets", "timeshiftDuration", "thresholds", "xAxis", "yAxis", "y2Axis", "chartOptions"}
DATA_SET = {
    "timeSeriesQuery", "plotType", "legendTemplate", "minAlignmentPeriod", "targetAxis", "breakdowns",
    "dimensions", "measures", "sort",
}  # fmt: skip
TIME_SERIES_QUERY = {
    "timeSeriesFilter", "timeSeriesFilterRatio", "timeSeriesQueryLanguage", "prometheusQuery", "unitOverride",
    "outputFullDuration",
}  # fmt: skip
TIME_SERIES_FILTER = {
    "filter", "aggregation", "secondaryAggregation", "pickTimeSeriesFilter", "statisticalTimeSeriesFilter",
}  # fmt: skip
AXIS = {"label", "scale"}
PLOT_TYPES = {"LINE", "STACKED_AREA", "STACKED_BAR", "HEATMAP"}

METRICS = sorted((MONITORING / "metrics").glob("*.json"))
POLICIES = sorted((MONITORING / "policies").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def only(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    assert set(doc) <= allowed, f"{where}: fields the API does not define: {sorted(set(doc) - allowed)}"


def check_aggregation(aggregation: dict[str, Any], where: str) -> None:
    only(aggregation, AGGREGATION, where)
    assert re.fullmatch(r"[1-9][0-9]*s", aggregation["alignmentPeriod"]), where
    assert aggregation["perSeriesAligner"] in ALIGNERS, where
    assert aggregation.get("crossSeriesReducer", "REDUCE_NONE") in REDUCERS, where


@pytest.mark.parametrize("path", METRICS, ids=lambda p: p.stem)
def test_each_log_metric_has_only_logmetric_fields(path: Path) -> None:
    metric = load(path)
    only(metric, LOG_METRIC, path.name)
    descriptor = metric["metricDescriptor"]
    only(descriptor, METRIC_DESCRIPTOR, f"{path.name} metricDescriptor")
    assert descriptor["metricKind"] == "DELTA"  # what log-based metrics are
    assert descriptor["valueType"] in {"INT64", "DISTRIBUTION"}
    labels = descriptor.get("labels", [])
    for label in labels:
        only(label, LABEL_DESCRIPTOR, f"{path.name} label")
    assert {label["key"] for label in labels} == set(metric.get("labelExtractors", {})), path.name
    if descriptor["valueType"] == "DISTRIBUTION":
        assert metric["valueExtractor"].startswith("EXTRACT(jsonPayload.")
        only(metric["bucketOptions"], BUCKET_OPTIONS, f"{path.name} bucketOptions")
        only(metric["bucketOptions"]["exponentialBuckets"], EXPONENTIAL, f"{path.name} exponentialBuckets")
    else:
        assert "valueExtractor" not in metric and "bucketOptions" not in metric


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_each_alert_policy_has_only_alertpolicy_fields(path: Path) -> None:
    policy = load(path)
    only(policy, ALERT_POLICY, path.name)
    assert "notificationChannels" not in policy  # deploy.sh adds ALERT_EMAIL's channel, or none
    only(policy["documentation"], DOCUMENTATION, f"{path.name} documentation")
    assert "docs/" in policy["documentation"]["content"]  # every alert names its runbook
    assert policy["combiner"] in COMBINERS and policy["severity"] in SEVERITIES
    only(policy["alertStrategy"], ALERT_STRATEGY, f"{path.name} alertStrategy")
    assert policy["conditions"]
    for condition in policy["conditions"]:
        only(condition, CONDITION, f"{path.name} condition")
        threshold = condition["conditionThreshold"]
        only(threshold, METRIC_THRESHOLD, f"{path.name} conditionThreshold")
        assert threshold["comparison"] in COMPARISONS
        assert re.fullmatch(r"[0-9]+s", threshold["duration"])
        only(threshold["trigger"], TRIGGER, f"{path.name} trigger")
        for aggregation in threshold["aggregations"] + threshold.get("denominatorAggregations", []):
            check_aggregation(aggregation, path.name)
        if "denominatorFilter" in threshold:  # a ratio: both sides aligned alike
            assert threshold["aggregations"] == threshold["denominatorAggregations"]


def test_the_dashboard_has_only_dashboard_fields_and_its_tiles_fit_the_grid() -> None:
    dashboard = load(MONITORING / "dashboard.json")
    only(dashboard, DASHBOARD, "dashboard")
    layout = dashboard["mosaicLayout"]
    only(layout, MOSAIC_LAYOUT, "mosaicLayout")
    for tile in layout["tiles"]:
        only(tile, TILE, "tile")
        assert tile["xPos"] + tile["width"] <= layout["columns"]
        only(tile["widget"], WIDGET, "widget")
        chart = tile["widget"]["xyChart"]
        only(chart, XY_CHART, "xyChart")
        only(chart["yAxis"], AXIS, "yAxis")
        for data_set in chart["dataSets"]:
            only(data_set, DATA_SET, "dataSet")
            assert data_set["plotType"] in PLOT_TYPES
            query = data_set["timeSeriesQuery"]
            only(query, TIME_SERIES_QUERY, "timeSeriesQuery")
            only(query["timeSeriesFilter"], TIME_SERIES_FILTER, "timeSeriesFilter")
            check_aggregation(query["timeSeriesFilter"]["aggregation"], tile["widget"]["title"])
    titles = " ".join(tile["widget"]["title"].lower() for tile in layout["tiles"])
    for shown in ("sent", "error code", "queue depth", "fan-out duration"):
        assert shown in titles


def test_every_metric_a_policy_or_the_dashboard_uses_is_defined_and_listed_for_deploy_sh() -> None:
    rows = alerts.rows()
    assert {name for kind, name, _ in rows if kind == "metric"} == {path.stem for path in METRICS}
    assert len([kind for kind, _, _ in rows if kind == "policy"]) == len(POLICIES)
    assert [kind for kind, _, _ in rows].count("dashboard") == 1


def test_a_policy_naming_an_undefined_metric_is_refused(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.json").write_text(
        json.dumps({"displayName": "p", "conditions": [{"filter": 'metric.type="logging.googleapis.com/user/nope"'}]})
    )
    (tmp_path / "dashboard.json").write_text(json.dumps({"displayName": "d"}))
    with pytest.raises(ValueError, match="uses log metric nope"):
        alerts.rows(tmp_path)


SOURCES = [*(REPO / "shared").rglob("*.py"), *(REPO / "functions").rglob("main.py")]


def some_outcome_is(status: str) -> bool:
    """A service returns Outcome(status): written as the string, or as a StrEnum member whose value it is."""
    texts = [src.read_text() for src in SOURCES]
    members = {name for text in texts for name in re.findall(rf'^\s+([A-Z_]+) = "{status}"$', text, re.M)}
    spelled = "|".join([f'"{status}"', *(rf"\w+\.{name}\b" for name in members)])
    return any(re.search(rf"Outcome\((status=)?({spelled})", text) for text in texts)


@pytest.mark.parametrize("path", METRICS, ids=lambda p: p.stem)
def test_each_metric_filter_matches_a_line_the_code_logs_with_the_fields_it_extracts(path: Path) -> None:
    metric = load(path)
    messages = re.findall(r'jsonPayload\.message="([^"]+)"', metric["filter"])
    patterns = re.findall(r'jsonPayload\.message=~"([^"]+)"', metric["filter"])
    fields = set(re.findall(r"jsonPayload\.([a-z_]+)", json.dumps(metric))) - {"message"}
    assert messages or patterns
    router = (REPO / "shared" / "tasks" / "router.py").read_text()
    for message in messages:
        if message.startswith("task "):  # the router's f"task {outcome.status}", e.g. a sender's Outcome("sent")
            status = message.removeprefix("task ")
            assert 'f"task {outcome.status}"' in router
            assert some_outcome_is(status), message
            assert all(f"{field}=" in router for field in fields), f"{path.name}: the router does not log {fields}"
            continue
        logged_by = [src for src in SOURCES if f'"{message}"' in src.read_text()]
        assert logged_by, f"{path.name}: no module logs {message!r}"
        text = "".join(src.read_text() for src in logged_by)
        for field in fields - {"failed"}:  # `failed` comes from RunSummary.summary(), tested below
            assert f"{field}=" in text or f'"{field}"' in text, f"{path.name}: {field} is not logged with {message!r}"
    for pattern in patterns:  # the router's outcome lines: "task <status>" and its failure lines
        assert "log.info(" in router and 'f"task {outcome.status}"' in router
        for line in ("task rejected", "task will be retried", "task failed on its last attempt"):
            assert f'"{line}"' in router
            if "rejected" in pattern:
                assert re.search(pattern.replace("\\\\", "\\"), line)


def test_the_fanout_summary_carries_the_failed_count_the_unit_failure_metric_reads() -> None:
    from shared.reminders.fanout_summary import FanoutSummary

    assert isinstance(FanoutSummary(trigger="tick").summary()["failed"], int)


def test_a_failed_tasks_record_logs_one_line_per_record_opened(capsys: pytest.CaptureFixture[str]) -> None:
    failures = FailedTasks(MemoryStore(), FixedClock(NOW))
    for _ in range(2):
        failures.record(
            "appointment_reminder-" + "ab" * 20,
            task_type="appointment_reminder",
            task_name="projects/p/locations/l/queues/q/tasks/t",
            payload={"appointment_id": "a1"},
            error_code="invalid_number",
            error="Twilio 21211",
            http_status=200,
            attempts=1,
        )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["message"], line["error_code"], line["reopened"]) for line in lines] == [
        ("failed_tasks record opened", "invalid_number", False),
        ("failed_tasks record opened", "invalid_number", True),
    ]
    assert all(line["task_type"] == "appointment_reminder" for line in lines)
