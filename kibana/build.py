"""Writes the Kibana 8.x saved objects in this folder (run: ``python kibana/build.py``).

The NDJSON files are the deliverable (``logsight kibana import`` uploads them); this script is
how they are written, so a field rename is one edit here plus a re-run, and
tests/test_kibana.py checks the files are what this script writes. Lens panels are embedded by
value in the dashboards (``embeddableConfig.attributes``); saved searches are referenced. Every
query is Lucene so the tests can run it on the engine as a ``query_string``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Migration versions (sources in README.md, "Format notes"). Kibana refuses an object whose
# typeMigrationVersion is newer than the last migration it knows ("belongs to a more recent
# version of Kibana") and migrates an older one up, so these are the oldest versions whose
# shape the objects already have, not the newest. Core froze its own version at 8.8.0.
CORE = "8.8.0"
TYPE_VERSION = {
    # the last index-pattern migration is 7.11.0; 8.0.0 is its multi-namespace conversion
    "index-pattern": "8.0.0",
    # search migrations stop at 7.9.3 plus the 8.0.0 conversion; the model versions that
    # Kibana 8.10+ added (10.x.0, and 9.x's Discover-session tabs) are applied on import
    "search": "8.0.0",
    # Kibana's own sample dashboards carry 8.7.0. It must be at least 8.6.0: dashboards run the
    # embeddable (Lens) migrations newer than this on by-value panels, and those up to 8.6.0
    # read the pre-8.6 ``datasourceStates.indexpattern`` state, which ``formBased`` replaced
    "dashboard": "8.7.0",
}
# The Lens state below is the 8.9 shape (Lens' last migration is 8.9.0). Kibana writes the
# embeddable version on each panel; on import it is overwritten by the migrations that run.
PANEL_VERSION = "8.9.0"
UPDATED = "2026-01-01T00:00:00.000Z"
RECORDS = "___records___"

DATA_VIEWS = [
    ("logsight-logs", "logs-logsight-*", "logsight logs"),
    ("logsight-traces", "traces-logsight-*", "logsight traces (spans)"),
    ("logsight-mlevents", "mlevents-logsight-*", "logsight ML events"),
    ("logsight-metrics", "metrics-logsight-*", "logsight metrics"),
    ("logsight-findings", "logsight-findings", "logsight findings"),
    ("logsight-alerts", "logsight-alerts", "logsight alerts history"),
    ("logsight-critical-path", "logsight-critical-path", "logsight critical path"),
    ("logsight-cost", "logsight-cost", "logsight cost per window and allocation"),
]


def _obj(type_: str, id_: str, attributes: dict[str, Any],
         references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE,
        "created_at": UPDATED,
        "id": id_,
        "managed": False,
        "references": references,
        "type": type_,
        "typeMigrationVersion": TYPE_VERSION[type_],
        "updated_at": UPDATED,
    }


def data_view(id_: str, pattern: str, name: str) -> dict[str, Any]:
    return _obj("index-pattern", id_, {
        "allowHidden": False, "fieldAttrs": "{}", "fieldFormatMap": "{}", "fields": "[]",
        "name": name, "runtimeFieldMap": "{}", "sourceFilters": "[]",
        "timeFieldName": "@timestamp", "title": pattern, "typeMeta": "{}",
    }, [])


# -- saved searches ----------------------------------------------------------------------------
def exists_filter(field: str, ref: str) -> dict[str, Any]:
    return {"$state": {"store": "appState"},
            "meta": {"alias": None, "disabled": False, "indexRefName": ref, "key": field,
                     "negate": False, "type": "exists", "value": "exists"},
            "query": {"exists": {"field": field}}}


def phrase_filter(field: str, value: str, ref: str, *, negate: bool = False) -> dict[str, Any]:
    return {"$state": {"store": "appState"},
            "meta": {"alias": None, "disabled": False, "indexRefName": ref, "key": field,
                     "negate": negate, "params": {"query": value}, "type": "phrase"},
            "query": {"match_phrase": {field: value}}}


def saved_search(id_: str, title: str, view: str, query: str, columns: list[str],
                 description: str,
                 filter_fields: tuple[tuple[str, str | None, bool], ...] = ()) -> dict[str, Any]:
    refs = [{"id": view, "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
             "type": "index-pattern"}]
    filters = []
    for i, (field, value, negate) in enumerate(filter_fields):
        ref = f"kibanaSavedObjectMeta.searchSourceJSON.filter[{i}].meta.index"
        refs.append({"id": view, "name": ref, "type": "index-pattern"})
        filters.append(exists_filter(field, ref) if value is None
                       else phrase_filter(field, value, ref, negate=negate))
    source = {"query": {"query": query, "language": "lucene"}, "highlightAll": True,
              "filter": filters, "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return _obj("search", id_, {
        "columns": columns, "description": description, "grid": {}, "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        "sort": [["@timestamp", "desc"]], "timeRestore": False, "title": title,
    }, refs)


SEARCHES = [
    saved_search("logsight-search-error-logs", "logsight: error logs", "logsight-logs",
                 "log.level:(error OR critical)",
                 ["service.name", "log.level", "logsight.template_id", "message"],
                 "Log lines at level error or critical.",
                 (("service.name", None, False),)),
    saved_search("logsight-search-failed-spans", "logsight: failed spans", "logsight-traces",
                 "span.status:error",
                 ["service.name", "span.name", "span.kind", "span.duration_ms", "trace.id"],
                 "Spans whose status is error.", (("span.kind", "internal", True),)),
    saved_search("logsight-search-high-findings", "logsight: high-severity findings",
                 "logsight-findings", "severity:(high OR critical)",
                 ["kind", "service", "severity", "title", "summary"],
                 "Findings of severity high or critical (what the high-severity-finding alert "
                 "rule watches)."),
    saved_search("logsight-search-log-findings", "logsight: log findings", "logsight-findings",
                 "kind:(log_anomaly OR template_drift)",
                 ["kind", "service", "subject", "score", "title"],
                 "Log anomaly and template drift findings."),
    saved_search("logsight-search-trace-findings", "logsight: trace findings",
                 "logsight-findings", "kind:(trace_bottleneck OR trace_regression)",
                 ["kind", "service", "operation", "score", "title"],
                 "Trace bottleneck and regression findings."),
    saved_search("logsight-search-model-findings", "logsight: model findings",
                 "logsight-findings",
                 "kind:(feature_drift OR prediction_drift OR performance_degradation OR "
                 "version_regression)",
                 ["kind", "model", "model_version", "feature", "score", "title"],
                 "Drift and model performance findings."),
    saved_search("logsight-search-cost-findings", "logsight: cost & resource findings",
                 "logsight-findings",
                 "kind:(cost_per_prediction_increase OR idle_gpu OR overprovisioned_memory OR "
                 "memory_leak OR cpu_saturation OR gpu_memory_pressure)",
                 ["kind", "service", "model_version", "score", "title"],
                 "Cost findings (dearer predictions after a deploy, idle GPUs, over-provisioned "
                 "memory) and resource anomalies (memory leaks, CPU saturation, GPU memory)."),
    saved_search("logsight-search-fired-alerts", "logsight: fired alerts", "logsight-alerts",
                 "state:fired", ["rule.id", "rule.severity", "value", "threshold", "message"],
                 "Alerts fired by logsight's rules (built-in evaluator or Watcher)."),
]


# -- Lens columns --------------------------------------------------------------------------------
def c_date(field: str = "@timestamp") -> dict[str, Any]:
    return {"dataType": "date", "isBucketed": True, "label": field,
            "operationType": "date_histogram", "scale": "interval", "sourceField": field,
            "params": {"dropPartials": False, "includeEmptyRows": True, "interval": "auto"}}


def c_terms(field: str, size: int, order_by: str | None = None) -> dict[str, Any]:
    order = ({"type": "column", "columnId": order_by} if order_by
             else {"type": "alphabetical", "fallback": True})
    return {"dataType": "string", "isBucketed": True, "label": f"Top {size} values of {field}",
            "operationType": "terms", "scale": "ordinal", "sourceField": field,
            "params": {"size": size, "orderBy": order, "orderDirection": "desc",
                       "otherBucket": True, "missingBucket": False,
                       "parentFormat": {"id": "terms"}}}


def c_count(label: str, lucene: str | None = None) -> dict[str, Any]:
    col: dict[str, Any] = {"dataType": "number", "isBucketed": False, "label": label,
                           "customLabel": True, "operationType": "count", "scale": "ratio",
                           "sourceField": RECORDS, "params": {"emptyAsNull": True}}
    if lucene:
        col["filter"] = {"query": lucene, "language": "lucene"}
    return col


def c_metric(op: str, field: str, label: str, *, lucene: str | None = None,
             percentile: int | None = None) -> dict[str, Any]:
    col: dict[str, Any] = {"dataType": "number", "isBucketed": False, "label": label,
                           "customLabel": True, "operationType": op, "scale": "ratio",
                           "sourceField": field, "params": {"emptyAsNull": True}}
    if percentile is not None:
        col["params"] = {"percentile": percentile}
    if lucene:
        col["filter"] = {"query": lucene, "language": "lucene"}
    return col


def c_ratio_formula(cid: str, label: str, num: str, den: str | None) -> dict[str, dict[str, Any]]:
    """A Lens formula ``count(lucene=num) / count([lucene=den])`` with its hidden parts."""
    den_call = f"count(lucene='{den}')" if den else "count()"
    formula = f"count(lucene='{num}') / {den_call}"
    x0 = dict(c_count(f"Part of {label}", num), customLabel=True)
    x1 = dict(c_count(f"Part of {label}", den), customLabel=True)
    x2 = {"dataType": "number", "isBucketed": False, "label": f"Part of {label}",
          "customLabel": True, "operationType": "math", "scale": "ratio",
          "references": [f"{cid}X0", f"{cid}X1"],
          "params": {"tinymathAst": {"type": "function", "name": "divide",
                                     "args": [f"{cid}X0", f"{cid}X1"],
                                     "location": {"min": 0, "max": len(formula)},
                                     "text": formula}}}
    main = {"dataType": "number", "isBucketed": False, "label": label, "customLabel": True,
            "operationType": "formula", "scale": "ratio", "references": [f"{cid}X2"],
            "params": {"formula": formula, "isFormulaBroken": False,
                       "format": {"id": "percent", "params": {"decimals": 1}}}}
    return {cid: main, f"{cid}X0": x0, f"{cid}X1": x1, f"{cid}X2": x2}


def _hidden(column_id: str) -> bool:
    """Formula parts (``<id>X0``...) are computed by Lens, not shown."""
    return re.fullmatch(r".+X\d+", column_id) is not None


def _column_order(columns: dict[str, dict[str, Any]], vis_type: str) -> list[str]:
    """Bucketed columns first, then metrics, then formula parts (Lens nests the aggregations in
    this order). On a chart, a break-down's top values come before the date histogram, as
    Lens puts them: the top N over the whole time range, not per interval."""
    buckets = [c for c in columns if columns[c]["isBucketed"]]
    if vis_type == "lnsXY":
        buckets.sort(key=lambda c: columns[c]["operationType"] == "date_histogram")
    metrics = [c for c in columns if not columns[c]["isBucketed"] and not _hidden(c)]
    return buckets + metrics + [c for c in columns if _hidden(c)]


# -- Lens panels -----------------------------------------------------------------------------------
def lens(title: str, view: str, vis_type: str, columns: dict[str, dict[str, Any]],
         visualization: dict[str, Any], query: str = "") -> dict[str, Any]:
    layer = "layer1"
    order = _column_order(columns, vis_type)
    return {
        "title": title,
        "description": "",
        "visualizationType": vis_type,
        "type": "lens",
        "references": [{"type": "index-pattern", "id": view,
                        "name": f"indexpattern-datasource-layer-{layer}"}],
        "state": {
            "visualization": dict(visualization, layerId=layer) if vis_type != "lnsXY"
            else visualization,
            "query": {"query": query, "language": "lucene"},
            "filters": [],
            "datasourceStates": {"formBased": {"layers": {layer: {
                "columns": columns, "columnOrder": order, "incompleteColumns": {},
                "sampling": 1}}}},
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


def xy(columns: dict[str, dict[str, Any]], x: str, ys: list[str], split: str | None,
       series: str = "line") -> dict[str, Any]:
    layer: dict[str, Any] = {"layerId": "layer1", "layerType": "data", "seriesType": series,
                             "xAccessor": x, "accessors": ys, "position": "top",
                             "showGridlines": False}
    if split:
        layer["splitAccessor"] = split
    return {"legend": {"isVisible": True, "position": "right"}, "valueLabels": "hide",
            "preferredSeriesType": series, "fittingFunction": "None", "layers": [layer]}


def table(columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"layerType": "data", "columns": [{"columnId": c, "isTransposed": False}
                                             for c in columns if not _hidden(c)]}


GRID_COLUMNS = 48  # the dashboard grid's width


class Dashboard:
    def __init__(self, id_: str, title: str, description: str) -> None:
        self.id, self.title, self.description = id_, title, description
        self.panels: list[dict[str, Any]] = []
        self.refs: list[dict[str, str]] = []
        self.y = 0
        self.x = 0
        self.row_h = 0

    def _grid(self, w: int, h: int) -> dict[str, int | str]:
        """Left to right, 48 columns a row; a new row starts below the row's tallest panel."""
        if self.x + w > GRID_COLUMNS:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        grid = {"x": self.x, "y": self.y, "w": w, "h": h, "i": f"p{len(self.panels) + 1}"}
        self.x += w
        self.row_h = max(self.row_h, h)
        return grid

    def add_lens(self, attrs: dict[str, Any], w: int = 24, h: int = 14) -> None:
        grid = self._grid(w, h)
        pid = str(grid["i"])
        self.panels.append({"version": PANEL_VERSION, "type": "lens", "gridData": grid,
                            "panelIndex": pid,
                            "embeddableConfig": {"attributes": attrs, "enhancements": {}},
                            "title": attrs["title"]})
        for ref in attrs["references"]:
            self.refs.append(dict(ref, name=f"{pid}:{ref['name']}"))

    def add_search(self, search_id: str, title: str, w: int = 48, h: int = 15) -> None:
        grid = self._grid(w, h)
        pid = str(grid["i"])
        self.panels.append({"version": PANEL_VERSION, "type": "search", "gridData": grid,
                            "panelIndex": pid, "embeddableConfig": {"enhancements": {}},
                            "title": title, "panelRefName": f"panel_{pid}"})
        self.refs.append({"id": search_id, "name": f"{pid}:panel_{pid}", "type": "search"})

    def build(self) -> dict[str, Any]:
        return _obj("dashboard", self.id, {
            "description": self.description,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                {"query": {"query": "", "language": "lucene"}, "filter": []})},
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False,
                                       "syncCursor": True, "syncTooltips": False,
                                       "hidePanelTitles": False}),
            "panelsJSON": json.dumps(self.panels),
            "refreshInterval": {"pause": False, "value": 60000},
            "timeFrom": "now-24h", "timeTo": "now", "timeRestore": True,
            "title": self.title, "version": 1,
        }, self.refs)


ERRORS = "log.level:(error OR critical)"


def service_health() -> dict[str, Any]:
    d = Dashboard("logsight-dashboard-service-health", "logsight: Service health",
                  "Log rate, error ratio and latency percentiles per service.")
    cols = {"t": c_date(), "n": c_count("Log lines"), "s": c_terms("service.name", 10, "n")}
    d.add_lens(lens("Log rate per service", "logsight-logs", "lnsXY", cols,
                    xy(cols, "t", ["n"], "s", "bar_stacked")))
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            **c_ratio_formula("r", "Error ratio", ERRORS, None)}
    d.add_lens(lens("Error ratio per service", "logsight-logs", "lnsXY", cols,
                    xy(cols, "t", ["r"], "s")))
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            "p": c_metric("percentile", "span.duration_ms", "p95 latency (ms)", percentile=95)}
    d.add_lens(lens("p95 latency per service (server spans)", "logsight-traces", "lnsXY", cols,
                    xy(cols, "t", ["p"], "s"), query="span.kind:server"))
    cols = {"s": c_terms("service.name", 20, "n"), "n": c_count("Server spans"),
            "p50": c_metric("percentile", "span.duration_ms", "p50 (ms)", percentile=50),
            "p95": c_metric("percentile", "span.duration_ms", "p95 (ms)", percentile=95),
            "p99": c_metric("percentile", "span.duration_ms", "p99 (ms)", percentile=99),
            **c_ratio_formula("e", "Failed spans", "span.status:error", None)}
    d.add_lens(lens("Latency percentiles per service", "logsight-traces", "lnsDatatable", cols,
                    table(cols), query="span.kind:server"))
    d.add_search("logsight-search-error-logs", "Error logs")
    return d.build()


def log_anomalies() -> dict[str, Any]:
    d = Dashboard("logsight-dashboard-log-anomalies", "logsight: Log anomalies",
                  "Anomaly score over time, new templates, log findings.")
    cols = {"t": c_date(), "s": c_terms("service", 10),
            "m": c_metric("max", "score", "Anomaly score (max)")}
    d.add_lens(lens("Log anomaly score", "logsight-findings", "lnsXY", cols,
                    xy(cols, "t", ["m"], "s"), query="kind:log_anomaly"))
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            "u": c_metric("unique_count", "logsight.template_id", "Distinct templates")}
    d.add_lens(lens("Distinct message templates per service", "logsight-logs", "lnsXY", cols,
                    xy(cols, "t", ["u"], "s")))
    cols = {"tmpl": c_terms("subject", 20, "m"), "s": c_terms("service", 5),
            "m": c_metric("max", "score", "Score (max)"), "n": c_count("Windows")}
    d.add_lens(lens("New and changed templates", "logsight-findings", "lnsDatatable", cols,
                    table(cols), query="kind:template_drift"))
    cols = {"tmpl": c_terms("logsight.template_id", 20, "n"),
            "s": c_terms("service.name", 5), "n": c_count("Error lines")}
    d.add_lens(lens("Top error templates", "logsight-logs", "lnsDatatable", cols, table(cols),
                    query=ERRORS))
    d.add_search("logsight-search-log-findings", "Log findings")
    return d.build()


def trace_bottlenecks() -> dict[str, Any]:
    d = Dashboard("logsight-dashboard-trace-bottlenecks", "logsight: Trace bottlenecks",
                  "Critical-path share per operation and the slowest traces.")
    cols = {"op": c_terms("span.name", 15, "share"), "svc": c_terms("service.name", 3),
            "share": c_metric("average", "critical_path_share", "Critical-path share")}
    d.add_lens(lens("Critical-path share per operation", "logsight-critical-path", "lnsXY",
                    cols, xy(cols, "op", ["share"], "svc", "bar_horizontal_stacked")))
    cols = {"op": c_terms("span.name", 25, "share"), "svc": c_terms("service.name", 3),
            "share": c_metric("average", "critical_path_share", "Critical-path share"),
            "cp": c_metric("average", "critical_path_ms", "Critical path (ms)"),
            "self": c_metric("max", "self_time_p95_ms", "Self time p95 (ms)"),
            "lat": c_metric("max", "latency_p95_ms", "Latency p95 (ms)"),
            "err": c_metric("average", "error_rate", "Error rate")}
    d.add_lens(lens("Operations on the critical path", "logsight-critical-path",
                    "lnsDatatable", cols, table(cols)))
    cols = {"tr": c_terms("trace.id", 20, "d"), "svc": c_terms("service.name", 1),
            "d": c_metric("max", "span.duration_ms", "Duration (ms)")}
    d.add_lens(lens("Slowest traces (root spans)", "logsight-traces", "lnsDatatable", cols,
                    table(cols), query="NOT _exists_:parent.id"))
    cols = {"t": c_date(), "op": c_terms("span.name", 10),
            "p": c_metric("percentile", "span.duration_ms", "p95 (ms)", percentile=95)}
    d.add_lens(lens("p95 latency per operation", "logsight-traces", "lnsXY", cols,
                    xy(cols, "t", ["p"], "op")))
    d.add_search("logsight-search-trace-findings", "Trace findings")
    return d.build()


def model_drift() -> dict[str, Any]:
    d = Dashboard("logsight-dashboard-model", "logsight: Model drift & performance",
                  "Per-feature drift, accuracy and calibration per version, label coverage.")
    cols = {"t": c_date(), "f": c_terms("feature", 15, "m"),
            "m": c_metric("max", "score", "Drift score (max)")}
    d.add_lens(lens("Drift per feature", "logsight-findings", "lnsXY", cols,
                    xy(cols, "t", ["m"], "f", "bar_stacked"), query="kind:feature_drift"))
    cols = {"f": c_terms("feature", 30, "m"), "mod": c_terms("model", 5),
            "m": c_metric("max", "score", "Drift score (max)"), "n": c_count("Windows drifted")}
    d.add_lens(lens("Drifted features", "logsight-findings", "lnsDatatable", cols, table(cols),
                    query="kind:(feature_drift OR prediction_drift)"))
    cols = {"t": c_date(), "v": c_terms("ml.model.version", 5),
            "a": c_metric("average", "ml.kpi.value", "Accuracy")}
    d.add_lens(lens("Accuracy per model version", "logsight-mlevents", "lnsXY", cols,
                    xy(cols, "t", ["a"], "v"),
                    query="ml.event_type:kpi AND ml.kpi.name:accuracy"))
    pred = "ml.event_type:prediction"
    cols = {"v": c_terms("ml.model.version", 10, "n"),
            "n": c_count("Predictions", pred),
            "conf": c_metric("average", "ml.score", "Mean confidence", lucene=pred),
            "acc": c_metric("average", "ml.kpi.value", "Accuracy (KPI)",
                            lucene="ml.kpi.name:accuracy"),
            "lat": c_metric("percentile", "ml.latency_ms", "Latency p95 (ms)", lucene=pred,
                            percentile=95)}
    d.add_lens(lens("Calibration per version (confidence vs accuracy)", "logsight-mlevents",
                    "lnsDatatable", cols, table(cols)))
    cols = {"t": c_date(), **c_ratio_formula("cov", "Label coverage",
                                             "ml.event_type:feedback", pred)}
    d.add_lens(lens("Label coverage (feedback / predictions)", "logsight-mlevents", "lnsXY",
                    cols, xy(cols, "t", ["cov"], None)))
    cols = {"t": c_date(), "k": c_terms("kind", 4),
            "m": c_metric("max", "score", "Loss increase (max)")}
    d.add_lens(lens("Performance findings", "logsight-findings", "lnsXY", cols,
                    xy(cols, "t", ["m"], "k", "bar_stacked"),
                    query="kind:(performance_degradation OR version_regression)"))
    d.add_search("logsight-search-model-findings", "Model findings")
    return d.build()


def cost_resources() -> dict[str, Any]:
    d = Dashboard("logsight-dashboard-cost", "logsight: Cost & resources",
                  "Cost over time by service, model version and stage; utilisation against "
                  "what was requested; memory, CPU throttling and GPU use per service.")
    cols = {"t": c_date(), "s": c_terms("service", 10, "c"),
            "c": c_metric("sum", "total_cost", "Cost")}
    d.add_lens(lens("Cost per service", "logsight-cost", "lnsXY", cols,
                    xy(cols, "t", ["c"], "s", "bar_stacked")))
    cols = {"t": c_date(), "st": c_terms("stage", 5, "c"),
            "c": c_metric("sum", "total_cost", "Cost")}
    d.add_lens(lens("Cost per stage (training / inference)", "logsight-cost", "lnsXY", cols,
                    xy(cols, "t", ["c"], "st", "bar_stacked")))
    cols = {"m": c_terms("model", 10, "c"), "v": c_terms("model_version", 10, "c"),
            "st": c_terms("stage", 3), "c": c_metric("sum", "total_cost", "Cost"),
            "p": c_metric("sum", "predictions", "Predictions"),
            "k": c_metric("average", "cost_per_1k_predictions", "Cost per 1,000 (mean of "
                          "windows)"),
            "g": c_metric("sum", "gpu_cost", "GPU cost")}
    d.add_lens(lens("Cost per model version", "logsight-cost", "lnsDatatable", cols,
                    table(cols)))
    cols = {"t": c_date(), "tm": c_terms("team", 10, "c"),
            "c": c_metric("sum", "total_cost", "Cost")}
    d.add_lens(lens("Cost per team", "logsight-cost", "lnsXY", cols,
                    xy(cols, "t", ["c"], "tm", "bar_stacked")))
    cols = {"s": c_terms("service.name", 20, "cpu"),
            "cpu": c_metric("average", "container.cpu.pct", "CPU used (% of a core)"),
            "req": c_metric("average", "container.cpu.request_cores", "CPU requested (cores)"),
            "lim": c_metric("average", "container.cpu.limit_cores", "CPU limit (cores)"),
            "thr": c_metric("average", "container.cpu.throttled_ratio", "Throttled ratio"),
            "mem": c_metric("percentile", "container.memory.usage_bytes",
                            "Memory p95 (bytes)", percentile=95),
            "mlim": c_metric("average", "container.memory.limit_bytes", "Memory limit (bytes)"),
            "gpu": c_metric("average", "gpu.utilization_pct", "GPU busy (%)")}
    d.add_lens(lens("Utilisation vs requested per service", "logsight-metrics",
                    "lnsDatatable", cols, table(cols), query="_exists_:container.cpu.pct"),
               w=48)
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            "m": c_metric("max", "container.memory.usage_bytes", "Memory in use (max)")}
    d.add_lens(lens("Container memory per service", "logsight-metrics", "lnsXY", cols,
                    xy(cols, "t", ["m"], "s")))
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            "r": c_metric("average", "container.cpu.throttled_ratio", "Throttled ratio")}
    d.add_lens(lens("CPU throttling per service", "logsight-metrics", "lnsXY", cols,
                    xy(cols, "t", ["r"], "s")))
    cols = {"t": c_date(), "s": c_terms("service.name", 10),
            "g": c_metric("average", "gpu.utilization_pct", "GPU busy (%)")}
    d.add_lens(lens("GPU utilisation per service", "logsight-metrics", "lnsXY", cols,
                    xy(cols, "t", ["g"], "s"), query="gpu.count:>0"))
    d.add_search("logsight-search-cost-findings", "Cost & resource findings")
    return d.build()


FILES = {
    "data-views.ndjson": lambda: [data_view(*v) for v in DATA_VIEWS],
    "searches.ndjson": lambda: SEARCHES,
    "dashboards.ndjson": lambda: [service_health(), log_anomalies(), trace_bottlenecks(),
                                  model_drift(), cost_resources()],
}


def render() -> dict[str, str]:
    """File name -> NDJSON text (one object per line, keys sorted: stable diffs)."""
    return {name: "".join(json.dumps(o, sort_keys=True) + "\n" for o in make())
            for name, make in FILES.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote kibana/{name} ({text.count(chr(10))} objects)")
