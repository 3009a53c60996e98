"""Alert rules: our one rule format (YAML), its loader, and the search every backend runs.

A rule is *a query over one of our streams* (Lucene filter, time window, optional baseline
window and group-by field), *a metric* computed per group (count, ratio, avg/max/min/sum,
percentile, or the number of new terms versus the baseline), *a condition* on that metric, a
*throttle* and *actions*. Every backend - Elasticsearch Watcher, OpenSearch Alerting monitors and
logsight's own evaluator - runs the same search body built by :func:`search_body`; the
backends differ only in where the condition is evaluated (Painless in the cluster, or
:func:`evaluate_response` here), and both follow the same rules, written once per metric type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from logsight import names
from logsight.findings import SEVERITIES
from logsight.timeutil import age_seconds

MetricType = Literal["count", "ratio", "avg", "max", "min", "sum", "percentile", "new_terms"]
METRIC_TYPES: tuple[str, ...] = (
    "count", "ratio", "avg", "max", "min", "sum", "percentile", "new_terms",
)
FIELD_METRICS = ("avg", "max", "min", "sum", "percentile", "new_terms")
Op = Literal["gt", "gte", "lt", "lte"]
OPS: dict[str, str] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
ACTION_TYPES = ("webhook", "log", "index")
NO_GROUP = "-"  # group key of documents without the group-by field, and of ungrouped rules

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RuleError(ValueError):
    """A rule file that does not follow the rule format; the message says what and where."""


def parse_duration(value: str | int, *, what: str = "duration") -> int:
    """``"15m"`` -> 900 seconds (units s, m, h, d, w, as :func:`logsight.timeutil.age_seconds`
    reads them; a bare int is seconds)."""
    if isinstance(value, bool):
        raise RuleError(f"{what}: expected a duration like 15m, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise RuleError(f"{what}: must be positive, got {value}")
        return value
    text = str(value).strip()
    # timeutil's age grammar, less its "now-" prefix (a rule duration is a length, not a time)
    seconds = None if text.startswith("now") else age_seconds(text)
    # tolerance: 0.1h is 360.00000000000006 in floating point
    if seconds is None or seconds < 0.5 or abs(seconds - round(seconds)) > 1e-6:
        raise RuleError(f"{what}: expected a positive duration in whole seconds like 30s, 15m, "
                        f"1.5h, 1d; got {value!r}")
    return round(seconds)


def format_duration(seconds: int) -> str:
    """900 -> ``"15m"`` (the largest unit that divides exactly)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class RuleQuery:
    """What to read: ``index`` (a stream pattern such as ``logs-logsight-*`` or a plain index),
    a Lucene ``filter`` ("" = everything), the ``window`` that is judged and, for metrics that
    compare, the ``baseline`` window right before it."""

    index: str = names.stream_pattern(names.LOGS)
    filter: str = ""
    time_field: str = "@timestamp"
    window_s: int = 900
    baseline_s: int = 0
    group_by: str | None = None
    group_size: int = 50


@dataclass(frozen=True)
class Metric:
    """What is computed per group over the window. ``ratio`` = share of the window's documents
    that also match ``numerator`` (Lucene); ``new_terms`` = number of distinct ``field`` values
    in the window that the baseline window did not have; ``compare: baseline`` divides the
    window's value by the baseline window's."""

    type: MetricType = "count"
    field: str | None = None
    percent: float | None = None
    numerator: str | None = None
    compare: Literal["none", "baseline"] = "none"
    terms_size: int = 1000

    @property
    def percent_key(self) -> str:
        """How the engines key a percentile in the response (``95`` -> ``"95.0"``)."""
        return str(float(self.percent if self.percent is not None else 95.0))

    def describe(self) -> str:
        base = {
            "count": "documents",
            "ratio": f"share matching {self.numerator!r}",
            "percentile": f"p{self.percent:g} of {self.field}" if self.percent else "",
            "new_terms": f"new {self.field} values",
        }.get(self.type, f"{self.type} of {self.field}")
        return f"{base} vs baseline" if self.compare == "baseline" else base


@dataclass(frozen=True)
class Condition:
    """Fire a group when ``value <op> threshold`` and the window has at least ``min_docs``
    documents (and, when comparing, the baseline at least ``min_baseline_docs``)."""

    op: Op = "gt"
    threshold: float = 0.0
    min_docs: int = 1
    min_baseline_docs: int = 1

    def holds(self, value: float) -> bool:
        return {
            "gt": value > self.threshold,
            "gte": value >= self.threshold,
            "lt": value < self.threshold,
            "lte": value <= self.threshold,
        }[self.op]


@dataclass(frozen=True)
class Action:
    """``webhook`` (POST the alert as JSON to ``url``; ``${ENV}`` references are expanded when
    the action runs), ``log`` (a log record at ``level``) or ``index`` (the alert document into
    ``index``)."""

    type: Literal["webhook", "log", "index"]
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    level: str = "warning"
    index: str = names.ALERTS_INDEX

    def resolved_url(self, env: Mapping[str, str]) -> str | None:
        """The URL with ``${VAR}`` filled from ``env``; None when a variable is unset."""
        if self.url is None:
            return None
        missing = [v for v in _ENV.findall(self.url) if not env.get(v)]
        if missing:
            return None
        return _ENV.sub(lambda m: env[m.group(1)], self.url)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    description: str
    severity: str
    query: RuleQuery
    metric: Metric
    condition: Condition
    schedule_s: int = 60
    throttle_s: int = 1800
    actions: tuple[Action, ...] = ()
    runbook: str = ""
    tags: tuple[str, ...] = ()

    @property
    def grouped(self) -> bool:
        return self.query.group_by is not None

    @property
    def needs_baseline(self) -> bool:
        return self.metric.compare == "baseline" or self.metric.type == "new_terms"

    def runbook_url(self, base_url: str | None = None) -> str:
        """Link to the rule's runbook: ``base_url/<id>.md`` or the repository path."""
        if base_url:
            return f"{base_url.rstrip('/')}/{self.id}.md"
        return self.runbook or f"docs/runbooks/{self.id}.md"


# -- loading ---------------------------------------------------------------------------------
def _get(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str,
         default: Any = ...) -> Any:
    if key not in d or d[key] is None:
        if default is ...:
            raise RuleError(f"{where}: missing required key {key!r}")
        return default
    value = d[key]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
        names_ = "/".join(t.__name__ for t in _tuple(types))
        raise RuleError(f"{where}: {key!r} must be {names_}, got {type(value).__name__}")
    return value


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _check_keys(d: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise RuleError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def rule_from_dict(data: Mapping[str, Any], *, source: str = "<rule>") -> Rule:
    """Validate one rule mapping (as read from YAML) and build the :class:`Rule`."""
    if not isinstance(data, Mapping):
        raise RuleError(f"{source}: a rule must be a mapping, got {type(data).__name__}")
    _check_keys(data, ("id", "name", "description", "severity", "schedule", "query", "metric",
                       "condition", "throttle", "actions", "runbook", "tags"), source)
    rid = _get(data, "id", str, source)
    if not _ID.match(rid):
        raise RuleError(f"{source}: id {rid!r} must be lower-case letters, digits and '-'")
    where = f"{source} ({rid})"
    severity = _get(data, "severity", str, where, "medium")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity must be one of {SEVERITIES}, got {severity!r}")

    q = _get(data, "query", dict, where)
    _check_keys(q, ("index", "stream", "filter", "time_field", "window", "baseline", "group_by",
                    "group_size"), f"{where} query")
    if "stream" in q and "index" in q:
        raise RuleError(f"{where} query: give either 'stream' or 'index', not both")
    if "stream" in q:
        try:
            index = names.stream_pattern(str(q["stream"]))
        except ValueError as e:
            raise RuleError(f"{where} query: {e}") from None
    else:
        index = _get(q, "index", str, f"{where} query", names.stream_pattern(names.LOGS))
    query = RuleQuery(
        index=index,
        filter=_get(q, "filter", str, f"{where} query", ""),
        time_field=_get(q, "time_field", str, f"{where} query", "@timestamp"),
        window_s=parse_duration(_get(q, "window", (str, int), f"{where} query", "15m"),
                                what=f"{where} query.window"),
        baseline_s=(parse_duration(q["baseline"], what=f"{where} query.baseline")
                    if q.get("baseline") is not None else 0),
        group_by=_get(q, "group_by", str, f"{where} query", None),
        group_size=_get(q, "group_size", int, f"{where} query", 50),
    )

    mdata = _get(data, "metric", dict, where, {"type": "count"})
    _check_keys(mdata, ("type", "field", "percent", "numerator", "compare", "terms_size"),
                f"{where} metric")
    mtype = _get(mdata, "type", str, f"{where} metric")
    if mtype not in METRIC_TYPES:
        raise RuleError(f"{where} metric: type must be one of {METRIC_TYPES}, got {mtype!r}")
    compare = _get(mdata, "compare", str, f"{where} metric", "none")
    if compare not in ("none", "baseline"):
        raise RuleError(f"{where} metric: compare must be 'none' or 'baseline', got {compare!r}")
    percent = mdata.get("percent")
    metric = Metric(
        type=mtype,
        field=_get(mdata, "field", str, f"{where} metric", None),
        percent=float(percent) if percent is not None else (95.0 if mtype == "percentile"
                                                            else None),
        numerator=_get(mdata, "numerator", str, f"{where} metric", None),
        compare=compare,
        terms_size=_get(mdata, "terms_size", int, f"{where} metric", 1000),
    )
    if mtype in FIELD_METRICS and not metric.field:
        raise RuleError(f"{where} metric: type {mtype!r} needs a 'field'")
    if mtype == "ratio" and not metric.numerator:
        raise RuleError(f"{where} metric: type 'ratio' needs a 'numerator' (Lucene query)")
    if metric.percent is not None and not 0 < metric.percent < 100:
        raise RuleError(f"{where} metric: percent must be in (0, 100), got {metric.percent}")
    if (compare == "baseline" or mtype == "new_terms") and not query.baseline_s:
        raise RuleError(f"{where}: metric {mtype!r} with compare={compare!r} needs "
                        "query.baseline (the window it is compared with)")
    if compare == "baseline" and mtype == "new_terms":
        raise RuleError(f"{where} metric: new_terms already compares with the baseline")

    c = _get(data, "condition", dict, where)
    _check_keys(c, ("op", "threshold", "min_docs", "min_baseline_docs"), f"{where} condition")
    op = _get(c, "op", str, f"{where} condition", "gt")
    if op not in OPS:
        raise RuleError(f"{where} condition: op must be one of {sorted(OPS)}, got {op!r}")
    threshold = _get(c, "threshold", (int, float), f"{where} condition")
    if not math.isfinite(float(threshold)):
        raise RuleError(f"{where} condition: threshold must be a finite number")
    condition = Condition(
        op=op,
        threshold=float(threshold),
        min_docs=_get(c, "min_docs", int, f"{where} condition", 1),
        min_baseline_docs=_get(c, "min_baseline_docs", int, f"{where} condition", 1),
    )

    actions: list[Action] = []
    for i, a in enumerate(_get(data, "actions", list, where, [{"type": "index"}])):
        aw = f"{where} actions[{i}]"
        if not isinstance(a, Mapping):
            raise RuleError(f"{aw}: an action must be a mapping")
        _check_keys(a, ("type", "url", "headers", "level", "index"), aw)
        atype = _get(a, "type", str, aw)
        if atype not in ACTION_TYPES:
            raise RuleError(f"{aw}: type must be one of {ACTION_TYPES}, got {atype!r}")
        if atype == "webhook" and not a.get("url"):
            raise RuleError(f"{aw}: a webhook needs a 'url' (may be '${{ENV_VAR}}')")
        level = _get(a, "level", str, aw, "warning")
        if level not in ("debug", "info", "warning", "error"):
            raise RuleError(f"{aw}: level must be debug, info, warning or error")
        actions.append(Action(
            type=atype,
            url=_get(a, "url", str, aw, None),
            headers=dict(_get(a, "headers", dict, aw, {})),
            level=level,
            index=_get(a, "index", str, aw, names.ALERTS_INDEX),
        ))
    tags = _get(data, "tags", list, where, [])
    return Rule(
        id=rid,
        name=_get(data, "name", str, where),
        description=_get(data, "description", str, where, ""),
        severity=severity,
        query=query,
        metric=metric,
        condition=condition,
        schedule_s=parse_duration(_get(data, "schedule", (str, int), where, "1m"),
                                  what=f"{where} schedule"),
        throttle_s=parse_duration(_get(data, "throttle", (str, int), where, "30m"),
                                  what=f"{where} throttle"),
        actions=tuple(actions),
        runbook=_get(data, "runbook", str, where, f"docs/runbooks/{rid}.md"),
        tags=tuple(str(t) for t in tags),
    )


def load_rule_file(path: str | Path) -> Rule:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise RuleError(f"{p}: not valid YAML: {e}") from None
    return rule_from_dict(data, source=str(p))


def builtin_rules_dir() -> Path:
    return Path(str(resources.files("logsight.alerts") / "rules"))


def load_rules(
    paths: Sequence[str | Path] | None = None, *, ids: Sequence[str] | None = None
) -> list[Rule]:
    """Rules from files or directories of ``*.yaml`` (default: the shipped rules), sorted by
    id; ``ids`` keeps only those (an unknown id is an error)."""
    files: list[Path] = []
    for p in [Path(x) for x in (paths or [builtin_rules_dir()])]:
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")))
        elif p.is_file():
            files.append(p)
        else:
            raise RuleError(f"{p}: no such rule file or directory")
    rules = sorted((load_rule_file(f) for f in files), key=lambda r: r.id)
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RuleError(f"rule id {r.id!r} is defined twice")
        seen.add(r.id)
    if ids:
        unknown = sorted(set(ids) - seen)
        if unknown:
            raise RuleError(f"unknown rule id(s) {unknown}; known: {sorted(seen)}")
        rules = [r for r in rules if r.id in set(ids)]
    return rules


# -- the search every backend runs ------------------------------------------------------------
def _range(field: str, gte: str, lt: str, date_format: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"gte": gte, "lt": lt}
    if date_format:
        body["format"] = date_format
    return {"range": {field: body}}


def _lucene(query: str) -> dict[str, Any]:
    return {"query_string": {"query": query}}


def _metric_aggs(rule: Rule) -> dict[str, Any]:
    m = rule.metric
    if m.type == "ratio":
        return {"num": {"filter": _lucene(m.numerator or "*")}}
    if m.type == "percentile":
        return {"m": {"percentiles": {"field": m.field, "percents": [float(m.percent or 95)]}}}
    if m.type in ("avg", "max", "min", "sum"):
        return {"m": {m.type: {"field": m.field}}}
    if m.type == "new_terms":
        return {"terms": {"terms": {"field": m.field, "size": m.terms_size}}}
    return {}


def search_body(
    rule: Rule,
    *,
    anchor: str,
    date_format: str | None = None,
    extra_filters: Sequence[Mapping[str, Any]] = (),
    samples: int = 3,
) -> dict[str, Any]:
    """The search the rule runs, with its windows ending at ``anchor``: an ISO time for the
    built-in evaluator, ``{{ctx.trigger.scheduled_time}}`` for Watcher, ``{{period_end}}``
    (``date_format="epoch_millis"``) for OpenSearch monitors."""
    q, tf = rule.query, rule.query.time_field
    w, b = q.window_s, q.baseline_s if rule.needs_baseline else 0
    filters: list[dict[str, Any]] = [_range(tf, f"{anchor}||-{w + b}s", anchor, date_format)]
    if q.filter.strip():
        filters.append(_lucene(q.filter))
    filters.extend(dict(f) for f in extra_filters)
    sub = _metric_aggs(rule)
    current: dict[str, Any] = {
        "filter": _range(tf, f"{anchor}||-{w}s", anchor, date_format),
        "aggs": dict(sub),
    }
    if samples:
        current["aggs"]["samples"] = {
            "top_hits": {"size": samples, "sort": [{tf: {"order": "desc"}}]}
        }
    per_group: dict[str, Any] = {"current": current}
    if b:
        per_group["baseline"] = {
            "filter": _range(tf, f"{anchor}||-{w + b}s", f"{anchor}||-{w}s", date_format),
            "aggs": dict(sub),
        }
    if not per_group["current"]["aggs"]:
        del per_group["current"]["aggs"]
    aggs: dict[str, Any] = per_group
    if q.group_by:
        aggs = {"groups": {"terms": {"field": q.group_by, "size": q.group_size,
                                     "missing": NO_GROUP}, "aggs": per_group}}
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": filters}},
        "aggs": aggs,
    }


@dataclass
class GroupResult:
    """One group's verdict: ``value`` is None when the group had too little data to judge, and
    ``note`` then says why (``"below min_docs 5"``)."""

    group: str | None
    value: float | None
    fired: bool
    count: int
    current_value: float | None = None
    baseline_value: float | None = None
    baseline_count: int | None = None
    new_terms: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def _metric_value(rule: Rule, agg: Mapping[str, Any]) -> float | None:
    t = rule.metric.type
    n = int(agg.get("doc_count", 0))
    if t == "count":
        return float(n)
    if t == "ratio":
        return agg["num"]["doc_count"] / n if n else None
    if t == "percentile":
        v = (agg["m"].get("values") or {}).get(rule.metric.percent_key)
    else:
        v = agg["m"].get("value")
    return float(v) if v is not None and math.isfinite(float(v)) else None


def evaluate_response(rule: Rule, response: Mapping[str, Any]) -> list[GroupResult]:
    """Judge each group of a :func:`search_body` response, with the same rules as the Painless
    scripts the cluster backends run (logsight.alerts.painless)."""
    aggs = response.get("aggregations")
    if not aggs:  # the rule's index pattern matched no index: nothing to judge
        return []
    buckets = aggs["groups"]["buckets"] if rule.grouped else [aggs]
    cond = rule.condition
    out: list[GroupResult] = []
    for bucket in buckets:
        group = str(bucket["key"]) if rule.grouped else None
        cur = bucket["current"]
        count = int(cur["doc_count"])
        samples = [h.get("_source", {}) for h in cur.get("samples", {}).get("hits", {})
                   .get("hits", [])]
        res = GroupResult(group=group, value=None, fired=False, count=count, samples=samples)
        out.append(res)
        if count < cond.min_docs:
            res.note = f"below min_docs {cond.min_docs}"
            continue
        base = bucket.get("baseline")
        if rule.metric.type == "new_terms":
            seen = {t["key"] for t in base["terms"]["buckets"]} if base else set()
            res.new_terms = sorted(str(t["key"]) for t in cur["terms"]["buckets"]
                                   if t["key"] not in seen)
            res.value = float(len(res.new_terms))
            res.baseline_count = int(base["doc_count"]) if base else 0
        else:
            value = _metric_value(rule, cur)
            res.current_value = value
            if value is None:
                res.note = f"no {rule.metric.describe()} in the window"
                continue
            if rule.metric.compare == "baseline" and base is not None:
                res.baseline_count = int(base["doc_count"])
                if res.baseline_count < cond.min_baseline_docs:
                    res.note = f"baseline below min_baseline_docs {cond.min_baseline_docs}"
                    continue
                bv = _metric_value(rule, base)
                res.baseline_value = bv
                if bv is None or bv <= 0:
                    res.note = "no positive baseline value"
                    continue
                value = value / bv
            res.value = value
        res.fired = cond.holds(res.value)
    return out
